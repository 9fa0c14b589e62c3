"""Find the archives the local apt uses, for ``mirrorctl init``: every enabled ``deb`` source with an http(s) URI in
``/etc/apt/sources.list.d/*.sources`` (deb822, read with python-debian), then ``/etc/apt/sources.list`` and
``*.list`` files (one-line format), in apt's reading order, each with the keyring its ``Signed-By`` names.

The first source becomes ``[upstreams.apt]`` (url and keyring; it carries any suite no other archive names, as
before several archives); every other source (a security archive, a vendor repository) becomes
``[upstreams.apt.archives.<name>]`` with its url, keyring and the suites it lists, so a profile naming
``bookworm-security`` locks it from the archive the machine's apt reads it from. A suite an earlier source already
carries (a second mirror of it) is not taken again.

Nothing is assumed about hosts: the URIs and keyrings are exactly what the machine's apt is configured with.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from debian.deb822 import Deb822

from mirrorctl.ecosystems.base import DiscoveredUpstream

APT_ETC = Path("/etc/apt")


@dataclass(frozen=True)
class _Source:
    uri: str
    keyring: str | None
    suites: tuple[str, ...]
    where: str


def discover_upstream(environ: Mapping[str, str], *, etc: Path = APT_ETC) -> DiscoveredUpstream | None:
    from .spec import valid_suite

    found = [s for s in _sources(etc) if s.uri.startswith(("http://", "https://"))]
    if not found:
        return None
    first = found[0]
    settings: dict[str, object] = {"keyring": first.keyring} if first.keyring else {}
    carried = set(first.suites)
    archives: dict[str, dict[str, object]] = {}
    for src in found[1:]:
        suites = [s for s in dict.fromkeys(src.suites) if valid_suite(s) and s not in carried]
        if not suites:
            continue  # another mirror of suites already taken, or none usable
        carried.update(suites)
        url = _plain(src.uri)
        same = next((a for a in archives.values() if a["url"] == url and a.get("keyring") == src.keyring), None)
        if same is not None:  # one archive listed in several stanzas (other suites or components)
            same["suites"] = [*_list(same["suites"]), *suites]
            continue
        table: dict[str, object] = {"url": url}
        if src.keyring:
            table["keyring"] = src.keyring
        table["suites"] = suites
        archives[_name(url, archives)] = table
    if archives:
        settings["archives"] = archives
    return DiscoveredUpstream(_slash(first.uri), first.where, settings)


def _list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _slash(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def _plain(uri: str) -> str:
    # An extra archive is reached without credentials (see settings.py): never write them into mirrorctl.toml.
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        uri = urlunsplit(parts._replace(netloc=host))
    return _slash(uri)


def _name(url: str, taken: Mapping[str, object]) -> str:
    """A table name from the URL's last path segment (``.../debian-security/`` -> ``debian-security``)."""
    parts = urlsplit(url)
    segment = next((p for p in reversed(parts.path.split("/")) if p), "") or (parts.hostname or "").split(".")[0]
    base = re.sub(r"[^a-z0-9_-]+", "-", segment.lower()).strip("-_")[:40] or "archive"
    if not base[0].isalnum():
        base = "a" + base
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _sources(etc: Path) -> Iterator[_Source]:
    """Every enabled binary source, in apt's reading order."""
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
            suites = tuple(para.get("Suites", "").split())
            for uri in para.get("URIs", "").split():
                yield _Source(uri, keyring, suites, f"{path} (URIs)")
    one_line = [etc / "sources.list"] + (sorted(parts.glob("*.list")) if parts.is_dir() else [])
    for path in one_line:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            entry = _one_line(line)
            if entry is not None:
                yield _Source(entry[0], entry[1], entry[2], f"{path} (deb line)")


def _keyring(value: str | None) -> str | None:
    # Signed-By is a path (or several fingerprints/paths), or an inline armored key; only a path can be
    # written into mirrorctl.toml.
    if not value or "BEGIN PGP" in value:
        return None
    first = value.split()[0].strip(",")
    return first if first.startswith("/") else None


def _one_line(line: str) -> tuple[str, str | None, tuple[str, ...]] | None:
    """``deb [signed-by=/k.gpg arch=amd64] http://host/debian bookworm main`` -> (uri, keyring, (suite,))."""
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
    return words[0], _keyring(options.get("signed-by")), tuple(words[1:2])
