"""Which version npm installs for one range, as npm-pick-manifest chooses (see resolver.py's docstring)."""

from __future__ import annotations

import functools
from typing import Any

import nodesemver

from .registry import Packument
from .spec import classify


class Versions:
    """A packument's versions parsed once (loose, as npm parses them), for range matching."""

    def __init__(self, packument: Packument) -> None:
        self.parsed: list[tuple[Any, str]] = []
        for v in packument.versions:
            try:
                self.parsed.append((nodesemver.make_semver(v, loose=True), v))
            except ValueError:
                continue  # a version npm could not match either


def pick_version(packument: Packument, spec: str, versions: Versions | None = None) -> str | None:
    """The version npm would install for ``spec`` (a version, a range or a dist-tag), or None."""
    decided, picked, range_obj = pick_without_scan(packument, spec)
    if decided:
        return picked
    return scan(packument, range_obj, versions or Versions(packument))


@functools.lru_cache(maxsize=4096)
def _range(spec: str) -> Any:
    """node-semver's Range for ``spec`` (immutable: ``test`` keeps no state), parsed once per run; None if
    invalid. The same few hundred ranges recur across a closure."""
    try:
        return nodesemver.make_range(spec, loose=True)
    except ValueError:
        return None


def pick_without_scan(packument: Packument, spec: str) -> tuple[bool, str | None, Any]:
    """(decided, version, range): what needs no pass over every version (a tag, an exact version, the
    ``latest`` tag when it satisfies the range, which is npm's first choice); else the range to scan with."""
    kind = classify(spec)
    docs = packument.versions
    if kind == "tag":
        tagged = packument.dist_tags.get(spec.strip())
        return True, (tagged if tagged in docs else None), None
    if kind == "version":
        parsed = nodesemver.valid(spec.strip(), loose=True)
        exact = parsed.version + ("+" + ".".join(map(str, parsed.build)) if parsed.build else "") if parsed else None
        if exact in docs:
            return True, exact, None
        spec = exact or spec  # a registry may list 1.2.3 where the spec says =1.2.3 or v1.2.3
    if kind is None:
        return True, None, None
    range_obj = _range(spec.strip() or "*")
    if range_obj is None:
        return True, None, None
    latest = packument.dist_tags.get("latest")
    if latest is not None and latest in docs and not docs[latest].get("deprecated"):
        try:
            if range_obj.test(nodesemver.make_semver(latest, loose=True)):
                return True, latest, None
        except ValueError:
            pass
    return False, None, range_obj


def scan(packument: Packument, range_obj: Any, versions: Versions) -> str | None:
    docs = packument.versions
    best: tuple[bool, Any, str] | None = None  # (not deprecated, version, raw): npm prefers both, in order
    for sv, raw in versions.parsed:
        if not range_obj.test(sv):
            continue
        fresh = not docs[raw].get("deprecated")
        if best is None or fresh > best[0] or (fresh == best[0] and sv.compare(best[1]) > 0):
            best = (fresh, sv, raw)
    return best[2] if best else None
