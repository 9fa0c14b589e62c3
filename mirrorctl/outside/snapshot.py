"""The snapshot service: every artifact that the locks name, downloaded into the store and verified.

Only the locks are trusted for what to fetch (names, sizes, digests); the ecosystem adapters only say where
on the configured upstream each file lives. Artifacts whose blobs are all in the store cost no request.

:func:`lock_and_snapshot` (``mirrorctl lock --snapshot``) starts each download as soon as the resolver pins
the file, then runs the same snapshot over the locks it wrote, which only has to fetch what is still missing.

Example::

    locks = load_locks([load_profile(path, ecosystems)])
    report = await snapshot(locks, rt.ecosystems, rt.settings, rt.store, client, SILENT)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from mirrorctl.config import Settings
from mirrorctl.ecosystems.base import Ecosystem, FetchContext, FetchItem
from mirrorctl.errors import IntegrityError, NetworkError, ProfileError, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, LegacyPaths, Lock, merge_artifacts, read_lock
from mirrorctl.outside.fetch import FetchReport, SpeculativeFetcher, fetch_all
from mirrorctl.outside.locking import LockResult, check_locks, lock_profiles
from mirrorctl.outside.profiles import Profile
from mirrorctl.progress import Progress

if TYPE_CHECKING:
    from mirrorctl.outside.fetch_worker import ProcessFetcher


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    """What a snapshot did. ``present_*`` counts blobs that were already stored (no request made)."""

    profiles: tuple[str, ...]
    artifacts: int
    downloaded: int
    downloaded_bytes: int
    present: int
    present_bytes: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class LockSnapshotReport:
    """``lock --snapshot``: the locks, the snapshot, and what was downloaded while resolving."""

    locks: list[LockResult]
    snapshot: SnapshotReport
    early_files: int  # downloads started for pinned files that completed while resolving or just after
    early_bytes: int
    early_cancelled: int  # candidates the resolver pinned, then dropped (their .part files stay)
    early_failed: int  # retried by the snapshot


def load_locks(
    profiles: Sequence[Profile], *, legacy_paths: LegacyPaths | None = None
) -> list[tuple[str, Lock]]:
    """Each profile's lock, refused when the profile changed since it was locked (the lock would lie).
    ``legacy_paths``: the installed ecosystems, to read a lock-version 1 lock."""
    locks: list[tuple[str, Lock]] = []
    for profile in profiles:
        lock = read_lock(profile.lock_path, legacy_paths=legacy_paths)
        if lock.inputs != profile.inputs_digest:
            raise ProfileError(
                f"{profile.lock_path}: lock is stale: {profile.path} changed since it was locked "
                f"(inputs {lock.inputs or 'missing'}, profile now {profile.inputs_digest})",
                hint=f"run mirrorctl lock {profile.name}, review the diff, then snapshot again",
            )
        locks.append((profile.name, lock))
    return locks


async def snapshot(
    locks: Sequence[tuple[str, Lock]],
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    progress: Progress,
) -> SnapshotReport:
    """Fetch every blob the locks name that the store does not hold yet; raise if any cannot be had.

    Holds the store's lock shared (see :meth:`Store.shared`): a ``gc`` waits until the blobs are in place."""
    with store.shared():  # taken before any request; waits only while a gc runs
        return await _snapshot(locks, ecosystems, settings, store, client, progress)


async def _snapshot(
    locks: Sequence[tuple[str, Lock]],
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    progress: Progress,
) -> SnapshotReport:
    started = time.monotonic()
    artifacts = merge_artifacts(lock.artifacts for _, lock in locks)
    blobs = {sha: size for a in artifacts for sha, size, _ in a.blobs()}
    missing_by_eco: dict[str, list[Artifact]] = {}
    for a in artifacts:
        if any(not store.has_blob(sha, size) for sha, size, _ in a.blobs()):
            missing_by_eco.setdefault(a.ecosystem, []).append(a)

    present_blobs = {sha: size for sha, size in blobs.items() if store.has_blob(sha, size)}
    items: list[FetchItem] = []
    for eco_name in sorted(missing_by_eco):
        adapter = ecosystems.get(eco_name)
        if adapter is None:
            raise UserError(
                f"the locks name {eco_name} artifacts, but no {eco_name} ecosystem is installed",
                hint=f"installed ecosystems: {', '.join(sorted(ecosystems)) or 'none'}",
            )
        ctx = FetchContext(client, settings.upstream(eco_name), progress, store, settings.fetch)
        plan = await adapter.fetch_plan(missing_by_eco[eco_name], ctx)
        for item in plan:
            # The adapter says where, never what: a file the locks do not list is not fetched.
            if blobs.get(item.sha256) != item.size:
                raise IntegrityError(
                    f"{item.label}: the {eco_name} fetch plan lists sha256 {item.sha256} size {item.size}, "
                    "which no lock records",
                    hint="this is a bug in the ecosystem adapter; please report it",
                )
        items.extend(plan)

    report: FetchReport | None = None
    if items:
        report = await fetch_all(
            items, store, client,
            concurrency=settings.fetch.concurrency, retries=settings.fetch.retries, progress=progress,
        )
    still_missing = sorted(
        f"{a.ecosystem} {a.name} {a.version} ({fn})"
        for arts in missing_by_eco.values()
        for a in arts
        for sha, size, fn in a.blobs()
        if not store.has_blob(sha, size)
    )
    if still_missing:
        raise NetworkError(
            "no download was planned for: " + ", ".join(still_missing),
            hint="the ecosystem adapter did not find these files on the configured upstream",
        )
    downloaded = report.downloaded if report else 0
    downloaded_bytes = report.downloaded_bytes if report else 0
    return SnapshotReport(
        profiles=tuple(name for name, _ in locks),
        artifacts=len(artifacts),
        downloaded=downloaded,
        downloaded_bytes=downloaded_bytes,
        present=len(present_blobs),
        present_bytes=sum(present_blobs.values()),
        elapsed=time.monotonic() - started,
    )


async def lock_and_snapshot(
    profiles: Sequence[Profile],
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    progress: Progress,
    *,
    refresh: bool = False,
    in_process: bool = False,
) -> LockSnapshotReport:
    """Lock (as :func:`lock_profiles`: up-to-date locks are kept) while downloading each file the resolver
    pins, then snapshot the locks written. Only the locks decide what is kept: downloads of candidates that
    were dropped are cancelled (finished ones stay as unreferenced blobs, harmless), and the snapshot checks
    every locked blob and fetches whatever the early downloads did not bring.

    The early downloads run in a child process (see :mod:`mirrorctl.outside.fetch_worker` for why); ``in_process``
    runs them on this event loop instead (for tests and measurements)."""
    with store.shared():  # early downloads land before the lock names them: gc must wait for the lock file
        return await _lock_and_snapshot(
            profiles, ecosystems, settings, store, client, progress, refresh=refresh, in_process=in_process
        )


async def _lock_and_snapshot(
    profiles: Sequence[Profile],
    ecosystems: Mapping[str, Ecosystem],
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    progress: Progress,
    *,
    refresh: bool,
    in_process: bool,
) -> LockSnapshotReport:
    early: SpeculativeFetcher | ProcessFetcher
    if in_process or store.root != settings.store_path:
        early = SpeculativeFetcher(
            store, client, concurrency=settings.fetch.concurrency, retries=settings.fetch.retries,
            progress=progress,
        )
    else:
        from mirrorctl.outside.fetch_worker import ProcessFetcher

        early = ProcessFetcher(settings)
        if refresh or check_locks(profiles, ecosystems):
            # A lock will be resolved: start the child now, so that it is ready by the time the resolver
            # reads its first pages and hands over the first file (an up-to-date lock starts no process).
            early.start()
    try:
        results = await lock_profiles(
            profiles, ecosystems, settings, store, client, progress, refresh=refresh, prefetch=early.submit
        )
        locks = load_locks(profiles, legacy_paths=ecosystems)
        early.cancel_unless({sha for _, lock in locks for a in lock.artifacts for sha, _, _ in a.blobs()})
        # Runs while early downloads finish: the snapshot waits on their .part flock, then finds the blob.
        report = await snapshot(locks, ecosystems, settings, store, client, progress)
    except BaseException:
        await early.abort()
        raise
    await early.wait()
    return LockSnapshotReport(
        results, report, early.downloaded, early.downloaded_bytes, early.cancelled, early.failed
    )
