"""Ecosystem adapters. Each is registered under the ``mirrorctl.ecosystems.v1`` entry-point group, built-ins
the same way a third party would be; :func:`mirrorctl.ecosystems.base.load_ecosystems` finds them."""
