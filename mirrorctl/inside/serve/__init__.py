"""The embedded mirror: serves the store's current view to the real clients (``mirrorctl serve``)."""

from mirrorctl.inside.serve.app import StoreContent, StoreView, create_app

__all__ = ["StoreContent", "StoreView", "create_app"]
