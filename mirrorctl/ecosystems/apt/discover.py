"""Find the archive the local apt uses, for ``mirrorctl init``: the first ``deb`` source with an http(s) URI in
``/etc/apt/sources.list.d/*.sources`` (deb822, read with python-debian), then ``*.list`` files and
``/etc/apt/sources.list`` (one-line format), and the keyring its ``Signed-By`` names.

Nothing is assumed about hosts: the URI and keyring are exactly what the machine's apt is configured with.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path

from debian.deb822 import Deb822

from mirrorctl.ecosystems.base import DiscoveredUpstream

APT_ETC = Path("/etc/apt")


def discover_upstream(environ: Mapping[str, str], *, etc: Path = APT_ETC) -> DiscoveredUpstream | None:
    for uri, keyring, source in _sources(etc):
        if uri.startswith(("http://", "https://")):
            settings = {"keyring": keyring} if keyring else {}
            return DiscoveredUpstream(uri if uri.endswith("/") else uri + "/", source, settings)
    return None


def _sources(etc: Path) -> Iterator[tuple[str, str | None, str]]:
    """(uri, Signed-By keyring path or None, where) of every enabled binary source, in apt's reading order."""
    parts = etc / "sources.list.d"
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for para in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
            if "deb" not in para.get("Types", "").split() or para.get("Enabled", "yes").strip().lower() == "no":
                continue
            keyring = _keyring(para.get("Signed-By"))
            for uri in para.get("URIs", "").split():
                yield uri, keyring, f"{path} (URIs)"
    one_line = [etc / "sources.list"] + (sorted(parts.glob("*.list")) if parts.is_dir() else [])
    for path in one_line:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            entry = _one_line(line)
            if entry is not None:
                yield entry[0], entry[1], f"{path} (deb line)"


def _keyring(value: str | None) -> str | None:
    # Signed-By is a path (or several fingerprints/paths), or an inline armored key; only a path can be
    # written into mirrorctl.toml.
    if not value or "BEGIN PGP" in value:
        return None
    first = value.split()[0].strip(",")
    return first if first.startswith("/") else None


def _one_line(line: str) -> tuple[str, str | None] | None:
    """``deb [signed-by=/k.gpg arch=amd64] http://host/debian bookworm main`` -> (uri, keyring)."""
    line = line.split("#", 1)[0].strip()
    if not line.startswith("deb ") and not line.startswith("deb\t"):
        return None
    try:
        words = shlex.split(line[3:])
    except ValueError:
        return None
    options: dict[str, str] = {}
    if words and words[0].startswith("["):
        opts: list[str] = []
        while words:
            word = words.pop(0)
            opts.append(word.strip("[]"))
            if word.endswith("]"):
                break
        for opt in opts:
            key, _, value = opt.partition("=")
            options[key.strip().lower()] = value.strip()
    if not words:
        return None
    return words[0], _keyring(options.get("signed-by"))
