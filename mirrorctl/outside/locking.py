"""The lock service: profiles -> hashed, host-free lock files (``profiles/<name>.lock``), and the check that
``mirrorctl lock --check`` runs in CI (every lock present, made from the profile as it is now, still
satisfying it).

A lock that passes that check is kept as it is, without any request (as ``uv lock`` and ``poetry lock`` do):
only ``refresh=True`` (``mirrorctl lock --refresh``) resolves it again to take newer upstream releases. A lock
that cannot be read (a damaged file, merge-conflict markers) is resolved again and replaced: it is generated
output, and the pull request's diff shows what changed.

A lock of the previous format (lock-version 1, before artifact paths) is read, and ``--check`` reports it as out of
date ("format 1; run `mirrorctl lock`"): CI keeps failing until the file in the repository is the current format.
When format is its only problem, a plain ``mirrorctl lock`` rewrites it as lock-version 2 from the artifacts it
records, without any request (the paths come from the adapters' ``legacy_path``): the same artifacts, new format.

Example::

    results = await lock_profiles(profiles, rt.ecosystems, rt.settings, rt.store, client, SILENT)
    problems = check_locks(profiles, rt.ecosystems)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirrorctl.config import Settings
from mirrorctl.ecosystems.base import Ecosystem, FetchItem, ResolveContext
from mirrorctl.errors import ProfileError
from mirrorctl.inside.store import Store, atomic_write
from mirrorctl.lockfile import (
    LEGACY_LOCK_VERSION,
    LOCK_VERSION,
    Artifact,
    Lock,
    dump_lock,
    read_lock,
    refuse_path_collisions,
)
from mirrorctl.outside.profiles import Profile
from mirrorctl.progress import Progress


@dataclass(frozen=True, slots=True)
class LockResult:
    profile: str
    path: Path
    artifacts: int
    targets: tuple[str, ...]
    changed: bool
    size: int  # bytes the locked files add up to (companions included)
    resolved: bool = True  # False: the lock was up to date and kept without any request
    replaced_unreadable: str | None = None  # why the old lock could not be read, when it was replaced


def _size(lock: Lock) -> int:
    return sum(s for a in lock.artifacts for _, s, _ in a.blobs())


async def lock_profiles(
    profiles: Sequence[Profile],
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    progress: Progress,
    *,
    refresh: bool = False,
    prefetch: Callable[[FetchItem], None] | None = None,
) -> list[LockResult]:
    """Resolve every profile whose lock is missing, unreadable or out of date (every profile with
    ``refresh``) and write its lock; up-to-date locks are kept without a request. All profiles resolve
    first: nothing is written unless every one succeeded, so a failure leaves every lock as it was.

    ``store`` is where adapters keep their caches (and files verified while resolving); ``prefetch`` (see
    :class:`ResolveContext`) is handed to the adapters to download files they pin."""
    current: dict[str, Lock] = {}
    unreadable: dict[str, str] = {}
    if not refresh:
        for profile in profiles:
            lock, problems = _lock_state(profile, ecosystems)
            if lock is not None and (not problems or problems == [_old_format(profile.lock_path, lock)]):
                current[profile.name] = lock
            elif lock is None and problems and profile.lock_path.exists():
                unreadable[profile.name] = problems[0]
    stale = [p for p in profiles if p.name not in current]
    for profile in stale:
        for eco_name in profile.specs:
            settings.upstream(eco_name)  # refuse a missing upstream before any network traffic
    locks = await asyncio.gather(
        *(_resolve_profile(p, ecosystems, settings, store, client, progress, prefetch) for p in stale)
    )
    resolved = dict(zip((p.name for p in stale), locks, strict=True))
    results = []
    for profile in profiles:
        path = profile.lock_path
        if profile.name in current and current[profile.name].version == LOCK_VERSION:
            lock = current[profile.name]
            results.append(
                LockResult(profile.name, path, len(lock.artifacts), lock.targets, False, _size(lock), False)
            )
            continue
        if profile.name in current:  # up to date but of the old format: the same artifacts, written as v2
            lock = current[profile.name]
            atomic_write(path, dump_lock(lock, source=_display(profile.path)).encode("utf-8"))
            results.append(
                LockResult(profile.name, path, len(lock.artifacts), lock.targets, True, _size(lock), False)
            )
            continue
        lock = resolved[profile.name]
        data = dump_lock(lock, source=_display(profile.path)).encode("utf-8")
        try:
            old = path.read_bytes()
        except FileNotFoundError:
            old = None
        if old != data:
            atomic_write(path, data)
        results.append(
            LockResult(
                profile.name, path, len(lock.artifacts), lock.targets, old != data, _size(lock),
                replaced_unreadable=unreadable.get(profile.name),
            )
        )
    return results


async def _resolve_profile(
    profile: Profile,
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    progress: Progress,
    prefetch: Callable[[FetchItem], None] | None,
) -> Lock:
    artifacts: list[Artifact] = []
    targets: list[str] = []
    for eco_name, spec in sorted(profile.specs.items()):
        eco = ecosystems[eco_name]
        ctx = ResolveContext(
            client, settings.upstream(eco_name), progress, profile.name, store, settings.fetch, prefetch=prefetch,
            lock=settings.lock,
        )
        arts = await eco.resolve(spec, ctx)
        refuse_path_collisions(arts, f"{profile.path}: [{eco_name}] resolved", ProfileError)
        artifacts.extend(arts)
        targets.extend(f"{eco_name}:{t}" for t in spec.target_ids())
    return Lock(profile.name, profile.inputs_digest, tuple(sorted(targets)), tuple(artifacts))


def check_locks(profiles: Sequence[Profile], ecosystems: Mapping[str, Ecosystem]) -> list[str]:
    """Why the committed locks do not match the profiles (empty when they all do). Reads no network."""
    problems: list[str] = []
    for profile in profiles:
        problems.extend(_lock_state(profile, ecosystems)[1])
    return problems


def _lock_state(profile: Profile, ecosystems: Mapping[str, Ecosystem]) -> tuple[Lock | None, list[str]]:
    """The profile's lock (None when missing or unreadable) and why it does not match the profile."""
    problems: list[str] = []
    path = profile.lock_path
    if not path.exists():
        return None, [f"{path}: missing; run `mirrorctl lock {profile.name}`"]
    try:
        lock = read_lock(path, legacy_paths=ecosystems)
    except ProfileError as exc:
        return None, [exc.message]
    except ValueError as exc:  # not UTF-8
        return None, [f"{path}: unreadable lock: {exc}"]
    if lock.version == LEGACY_LOCK_VERSION:
        problems.append(_old_format(path, lock))
    if lock.profile != profile.name:
        problems.append(f"{path}: was made for profile {lock.profile!r}, not {profile.name!r}")
    if lock.inputs != profile.inputs_digest:
        problems.append(
            f"{path}: {profile.path} changed since the lock was made; run `mirrorctl lock {profile.name}`"
        )
    for eco_name, spec in sorted(profile.specs.items()):
        recorded = _recorded_targets(lock, eco_name)
        for problem in ecosystems[eco_name].check_lock(spec, lock.for_ecosystem(eco_name), targets=recorded):
            problems.append(f"{path}: {problem}")
    return lock, problems


def _recorded_targets(lock: Lock, ecosystem: str) -> frozenset[str]:
    """The targets the lock says were resolved for ``ecosystem``: its ``targets`` list (``pypi:<id>``), which
    names a target even when its closure is empty, and those its artifacts name (a lock written before
    every declared target was listed)."""
    prefix = f"{ecosystem}:"
    listed = {t[len(prefix):] for t in lock.targets if t.startswith(prefix)}
    return frozenset(listed | {t for a in lock.for_ecosystem(ecosystem) for t in a.targets})


def _old_format(path: Path, lock: Lock) -> str:
    return (
        f"{path}: is lock-version {lock.version} (before artifact paths); run `mirrorctl lock` "
        f"to write it as lock-version {LOCK_VERSION}"
    )


def _display(path: Path) -> str:
    """The profile as the lock header names it (``profiles/web.toml``): the same bytes wherever the
    repository is checked out and whatever the working folder is."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
