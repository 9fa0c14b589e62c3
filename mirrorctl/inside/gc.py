"""``mirrorctl gc`` and ``snapshots prune``: remove snapshots and blobs nothing retained needs, and only those.

Retained snapshots: every snapshot a channel (``current`` included) points at, every snapshot a channel's
rollback history names (so ``rollback --channel`` never finds its blobs gone), and the ``keep`` most recent (all of
them when ``keep`` is None, the default); ``history_steps`` shortens the rollback histories first. Retained blobs:
every blob a retained snapshot needs (artifacts, companions, profile locks, the bundle's files) plus every blob the
given lock files name (outside, the profiles' locks: what the next ``bundle export`` will read).

Everything runs under the store's exclusive lock, so an import staging or committing blobs at the same time
waits (and its blobs are then referenced by its view before gc looks). Snapshot folders are removed first, then
blobs: a crash in between leaves only unreferenced blobs, which the next gc removes. A snapshot or lock that
cannot be read stops gc before anything is deleted.

Example: ``report = collect(Store(root), keep=5, dry_run=True, lock_files=[Path("profiles/web.lock")])``
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mirrorctl.errors import MirrorctlError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import retained_by_channels, trim_history, view_blobs
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import read_lock
from mirrorctl.progress import SILENT, Progress

_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class GcReport:
    dry_run: bool
    snapshots_kept: tuple[str, ...]
    snapshots_removed: tuple[str, ...]
    blobs_kept: int
    bytes_kept: int
    blobs_removed: int
    bytes_removed: int


def _stored_blobs(store: Store) -> dict[str, int]:
    """sha256 -> size of every blob file; anything else under blobs/ is left alone."""
    out: dict[str, int] = {}
    base = store.root / "blobs" / "sha256"
    if not base.is_dir():
        return out
    for shard in base.iterdir():
        if not shard.is_dir():
            continue
        for f in shard.iterdir():
            if _SHA.match(f.name) and f.name[:2] == shard.name and f.is_file():
                out[f.name] = f.stat().st_size
    return out


def plan_snapshots(
    store: Store, keep: int | None, history_steps: int | None = None
) -> tuple[list[str], list[str]]:
    """(kept, removable) snapshot ids, oldest first."""
    for flag, value in (("--keep", keep), ("--keep-history", history_steps)):
        if value is not None and value < 0:
            raise UserError(f"{flag} {value}: must be 0 or more")
    ids = store.view_ids()
    if keep is None:
        return ids, []
    kept = retained_by_channels(store, history_steps) | set(ids[len(ids) - keep :] if keep else [])
    return [i for i in ids if i in kept], [i for i in ids if i not in kept]


def collect(
    store: Store,
    *,
    keep: int | None = None,
    dry_run: bool = False,
    lock_files: Sequence[Path] = (),
    blobs: bool = True,
    history_steps: int | None = None,
    progress: Progress = SILENT,
) -> GcReport:
    """Remove unretained snapshots (only with ``keep``), then (with ``blobs``) every blob no retained snapshot
    and no lock in ``lock_files`` needs. ``history_steps``: first shorten every channel's rollback history to
    that many steps (only with ``keep``). ``dry_run``: report what would go, change nothing."""
    try:
        with store.exclusive():
            report = _collect_locked(store, keep, dry_run, lock_files, blobs, history_steps)
    except MirrorctlError as exc:
        if not dry_run:
            audit.record(store, "gc", progress, result="refused", error=exc.message)
        raise
    if not dry_run:
        audit.record(
            store, "gc", progress, keep=keep, **{
                "keep-history": history_steps,
                "snapshots-removed": list(report.snapshots_removed),
                "blobs-removed": report.blobs_removed,
                "bytes-removed": report.bytes_removed,
            },
            result="ok",
        )
    return report


def _collect_locked(
    store: Store, keep: int | None, dry_run: bool, lock_files: Sequence[Path], blobs: bool, history_steps: int | None
) -> GcReport:
    if history_steps is not None and keep is None:
        raise UserError("--keep-history goes with --keep: without --keep every snapshot is kept anyway")
    kept_ids, removable = plan_snapshots(store, keep, history_steps)
    referenced: set[str] = set()
    for view_id in kept_ids:
        referenced.update(view_blobs(store, store.load_view(view_id)))
    for path in lock_files:  # a lock that cannot be read stops gc: its blobs might be needed
        for art in read_lock(path, legacy_paths=store.legacy_paths()).artifacts:
            referenced.update(sha for sha, _, _ in art.blobs())
    stored = _stored_blobs(store) if blobs else {}
    doomed = {sha: size for sha, size in stored.items() if sha not in referenced}
    if not dry_run:
        if history_steps is not None:
            trim_history(store, history_steps)
        for view_id in removable:
            # One rename takes the snapshot out of views/ at once; the copy in tmp/ is then deleted at leisure.
            src = store.root / "views" / view_id
            trash = store.tmp_dir / f"gc-{view_id}-{secrets.token_hex(4)}"
            os.replace(src, trash)
            shutil.rmtree(trash, ignore_errors=True)
        for sha in sorted(doomed):
            store.blob_path(sha).unlink(missing_ok=True)
    kept_blobs = {sha: size for sha, size in stored.items() if sha not in doomed}
    return GcReport(
        dry_run=dry_run,
        snapshots_kept=tuple(kept_ids),
        snapshots_removed=tuple(removable),
        blobs_kept=len(kept_blobs),
        bytes_kept=sum(kept_blobs.values()),
        blobs_removed=len(doomed),
        bytes_removed=sum(doomed.values()),
    )
