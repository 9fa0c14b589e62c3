"""Find the registry the local npm uses, for ``mirrorctl init``: ``npm_config_registry`` in the environment,
then ``npm config get registry`` (which already merges npmrc files and npm's own default)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping

from mirrorctl.ecosystems.base import DiscoveredUpstream

Runner = Callable[[list[str]], str | None]


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def discover_upstream(environ: Mapping[str, str], *, run: Runner = _run) -> DiscoveredUpstream | None:
    for var in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        if environ.get(var):
            return DiscoveredUpstream(_slash(environ[var]), f"environment ({var})")
    out = run(["npm", "config", "get", "registry"])
    if out and out.strip().startswith(("http://", "https://")):
        return DiscoveredUpstream(_slash(out.strip()), "npm config (registry)")
    return None


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
