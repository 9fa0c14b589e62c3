"""The lock service: profiles -> hashed, host-free lock files (``profiles/<name>.lock``), and the check that
``mirrorctl lock --check`` runs in CI (every lock present, made from the profile as it is now, still
satisfying it).

Example::

    results = await lock_profiles(profiles, load_ecosystems(), settings, client, SILENT)
    problems = check_locks(profiles, load_ecosystems())
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirrorctl.config import Settings
from mirrorctl.ecosystems.base import Ecosystem, ResolveContext
from mirrorctl.errors import ProfileError
from mirrorctl.lockfile import Artifact, Lock, dump_lock, read_lock
from mirrorctl.profiles import Profile
from mirrorctl.progress import Progress
from mirrorctl.store import Store, atomic_write


@dataclass(frozen=True, slots=True)
class LockResult:
    profile: str
    path: Path
    artifacts: int
    targets: tuple[str, ...]
    changed: bool
    size: int  # bytes the locked files add up to (companions included)


async def lock_profiles(
    profiles: Sequence[Profile],
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    client: httpx.AsyncClient,
    progress: Progress,
) -> list[LockResult]:
    """Resolve every profile and write its lock. All profiles resolve first: nothing is written unless
    every one succeeded, so a failure leaves every lock as it was."""
    for profile in profiles:
        for eco_name in profile.specs:
            settings.upstream(eco_name)  # refuse a missing upstream before any network traffic
    locks = await asyncio.gather(
        *(_resolve_profile(p, ecosystems, settings, client, progress) for p in profiles)
    )
    results = []
    for profile, lock in zip(profiles, locks, strict=True):
        text = dump_lock(lock, source=_display(profile.path))
        path = profile.lock_path
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        if old != text:
            atomic_write(path, text.encode("utf-8"))
        size = sum(s for a in lock.artifacts for _, s, _ in a.blobs())
        results.append(LockResult(profile.name, path, len(lock.artifacts), lock.targets, old != text, size))
    return results


async def _resolve_profile(
    profile: Profile,
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    client: httpx.AsyncClient,
    progress: Progress,
) -> Lock:
    artifacts: list[Artifact] = []
    targets: list[str] = []
    for eco_name, spec in sorted(profile.specs.items()):
        eco = ecosystems[eco_name]
        ctx = ResolveContext(
            client, settings.upstream(eco_name), progress, profile.name,
            store=Store(settings.store_path), fetch=settings.fetch,
        )
        arts = await eco.resolve(spec, ctx)
        artifacts.extend(arts)
        declared = (
            spec.target_ids() if hasattr(spec, "target_ids") else sorted({t for a in arts for t in a.targets})
        )
        targets.extend(f"{eco_name}:{t}" for t in declared)
    return Lock(profile.name, profile.inputs_digest, tuple(sorted(targets)), tuple(artifacts))


def check_locks(profiles: Sequence[Profile], ecosystems: Mapping[str, Ecosystem]) -> list[str]:
    """Why the committed locks do not match the profiles (empty when they all do). Reads no network."""
    problems: list[str] = []
    for profile in profiles:
        path = profile.lock_path
        if not path.exists():
            problems.append(f"{path}: missing; run `mirrorctl lock {profile.name}`")
            continue
        try:
            lock = read_lock(path)
        except ProfileError as exc:
            problems.append(f"{exc.message}")
            continue
        if lock.profile != profile.name:
            problems.append(f"{path}: was made for profile {lock.profile!r}, not {profile.name!r}")
        if lock.inputs != profile.inputs_digest:
            problems.append(
                f"{path}: {profile.path} changed since the lock was made; run `mirrorctl lock {profile.name}`"
            )
        for eco_name, spec in sorted(profile.specs.items()):
            for problem in ecosystems[eco_name].check_lock(spec, lock.for_ecosystem(eco_name)):
                problems.append(f"{path}: {problem}")
    return problems


def _display(path: Path) -> str:
    """The profile as the lock header names it (``profiles/web.toml``): the same bytes wherever the
    repository is checked out and whatever the working folder is."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
