"""Publish into Pulp 3 over its REST API: one strategy per Pulp plugin (plugins.py: pulp_python; deb.py: pulp_deb;
files.py: pulp_file for an ecosystem's static tree), registered as entry points of ``mirrorctl.targets.pulp.v1``."""

from .plugins import PulpPlugin, PythonPlugin
from .target import PulpTarget

__all__ = ["PulpPlugin", "PulpTarget", "PythonPlugin"]
