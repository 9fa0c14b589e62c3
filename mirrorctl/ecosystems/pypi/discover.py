"""Find the index the local Python clients use, for ``mirrorctl init``.

Order: uv's and pip's environment variables, then pip's merged configuration files (``pip config list``), then
pip's own built-in default. The host is never written in this code: it comes from the client.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Mapping

from mirrorctl.ecosystems.base import DiscoveredUpstream

Runner = Callable[[list[str]], str | None]

_CONFIG_LINE = re.compile(r"^(?P<key>[^=]+)=(?P<q>['\"])(?P<value>.*)(?P=q)$")
_PIP_KEYS = (":env:.index-url", "install.index-url", "download.index-url", "global.index-url")


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def discover_upstream(
    environ: Mapping[str, str], *, python: str = sys.executable, run: Runner = _run
) -> DiscoveredUpstream | None:
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if environ.get(var):
            return DiscoveredUpstream(_simple(environ[var]), f"environment ({var})")
    listing = run([python, "-m", "pip", "config", "list"])
    if listing:
        found = dict(
            (m["key"].strip(), m["value"]) for line in listing.splitlines() if (m := _CONFIG_LINE.match(line.strip()))
        )
        for key in _PIP_KEYS:
            if found.get(key):
                return DiscoveredUpstream(_simple(found[key].split()[0]), f"pip config ({key})")
    default = run([python, "-c", "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"])
    if default and default.strip().startswith(("http://", "https://")):
        return DiscoveredUpstream(_simple(default.strip()), "pip's built-in default index")
    return None


def _simple(url: str) -> str:
    return url if url.endswith("/") else url + "/"
