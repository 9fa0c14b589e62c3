"""Whether an npm lock still fits its profile, without the network (``mirrorctl lock --check``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import nodesemver

from mirrorctl.lockfile import Artifact

from .spec import NpmSpec, classify

DIST_TAGS_ATTR = "dist-tags"


def check_lock(spec: NpmSpec, artifacts: Sequence[Artifact], targets: Collection[str] | None = None) -> list[str]:
    """Problems that make the locked set no longer fit the spec (reads no network): a missing or extra
    platform, a profile package or package-lock pin the locked versions no longer meet, a dist-tag the profile
    names that the lock does not record (an older lock: resolved again). A lock without any ``dist-tags`` attr
    is otherwise accepted: the mirror then publishes ``latest`` only, as the highest mirrored release.

    ``targets``: the platforms the lock records as resolved (None: those its artifacts name). A recorded
    platform without artifacts is an empty closure (its only packages are optional ones it does not install),
    which is valid."""
    problems: list[str] = []
    wanted = set(spec.target_ids())
    locked_targets = {t for a in artifacts for t in a.targets} | set(targets or ())
    for extra in sorted(locked_targets - wanted):
        problems.append(f"npm: the lock has platform {extra}, which the profile no longer declares")
    for plat in spec.target_ids():
        if plat not in locked_targets:
            problems.append(f"npm platform {plat}: not in the lock")
    by_name: dict[str, list[Artifact]] = {}
    for a in artifacts:
        by_name.setdefault(a.name, []).append(a)
    for root in spec.roots:
        have = by_name.get(root.name, [])
        if root.exact:
            ok = any(a.version == root.spec for a in have)
        elif classify(root.spec) == "tag":
            # Where a tag points is the upstream's to say (checked when locking), but the mirror must be able
            # to serve the tag: a lock made before tags were recorded serves only ``latest``.
            tag = root.spec.strip()
            ok = bool(have)
            if ok and tag != "latest" and not any(tag in _tags_of(a) for a in have):
                problems.append(
                    f"npm: {root.origin}: {root.label}: the lock records no dist-tag {tag!r} (made before "
                    f"dist-tags were recorded), so the mirror could not serve {root.name}@{tag}; lock again"
                )
                continue
        else:
            rng = root.spec.strip() or "*"
            ok = any(_satisfies(a.version, rng) for a in have)
        if not ok and not (root.optional and not have):
            problems.append(f"npm: {root.origin}: {root.label} is not met by the locked versions")
    return problems


def _tags_of(a: Artifact) -> list[str]:
    value = a.attrs.get(DIST_TAGS_ATTR)
    return value.split(",") if isinstance(value, str) and value else []


def _satisfies(version: str, rng: str) -> bool:
    try:
        return bool(nodesemver.satisfies(version, rng, loose=True))
    except ValueError:
        return False
