"""Publish into Pulp 3 over its REST API (pulp_python for PyPI; one strategy per plugin in plugins.py)."""

from .plugins import PLUGINS, PulpPlugin, PythonPlugin
from .target import PulpTarget

__all__ = ["PLUGINS", "PulpPlugin", "PulpTarget", "PythonPlugin"]
