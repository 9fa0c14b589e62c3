"""``mirrorctl verify``: re-hash what the store serves (or holds) and name every blob that is not what it
claims to be. Run it on a schedule inside: disks rot, and a mirror should say so before a client does.

Snapshots are immutable: each import records the sha256 of the snapshot's ``view.json`` in its audit entry,
and verify compares every snapshot on disk with it, so a snapshot edited afterwards (an artifact added,
removed or pointed at other bytes) is named. A snapshot that is *served* (``current`` or a channel) with no
recorded digest is refused too: its import was killed between the switch and its journal entry (or it was
imported before digests were recorded), and an edit of it would otherwise pass. Importing its bundle again
records it, if the view is still what that bundle makes. Snapshots no one serves that were imported before the
record existed are counted as unrecorded, not refused.

The file tree of each served snapshot (``views/<id>/files``, what ``serve --front nginx`` sends; see
mirrorctl/inside/filetree.py) is checked too, when the adapters are given: every entry a file the snapshot serves
at that URL, with its blob's bytes (a hard link of a blob that verifies, or a copy that hashes to it), none
missing, nothing else in it (no extra file, no link)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import served_views
from mirrorctl.inside.filetree import BlobLayout, check_tree, tree_dir, tree_entries
from mirrorctl.inside.store import Store
from mirrorctl.progress import Progress

UNRECORDED_SERVED = (
    "served, but no import journalled its digest (an import killed after the switch, or one from before "
    "digests were recorded)"
)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    bytes: int
    damaged: tuple[tuple[str, str, str], ...]  # (file name, sha256, what is wrong)
    snapshots: int = 0  # snapshots whose view.json matched the digest their import recorded
    unrecorded: int = 0  # snapshots with no recorded digest (imported before verify recorded them)
    trees: int = 0  # file trees of served snapshots checked


def _served_blobs(store: Store) -> Iterator[tuple[str, int, str]]:
    """Every blob a channel serves (``current``, and each channel an import or promote switched)."""
    views = served_views(store)
    if not views:
        raise UserError(
            f"{store.root}: nothing imported yet, so nothing is served", hint="pass --all to check every blob"
        )
    seen: set[str] = set()
    for view in views:
        for artifact in view.artifacts:
            for sha, size, name in artifact.blobs():
                if sha not in seen:
                    seen.add(sha)
                    yield sha, size, name


def _all_blobs(store: Store) -> Iterator[tuple[str, int, str]]:
    for path in sorted((store.root / "blobs" / "sha256").glob("*/*")):
        yield path.name, path.stat().st_size, path.name


def _served_view_ids(store: Store) -> set[str]:
    ids = {store.channel_view_id(name) for name in store.channel_names()} | {store.current_view_id()}
    return {i for i in ids if i is not None}


def _changed_snapshots(store: Store) -> tuple[int, int, list[tuple[str, str, str]]]:
    recorded = audit.recorded_view_digests(store)
    served = _served_view_ids(store)
    if served - set(recorded):
        # An import finishing right now journals its view before it lets go of the store's lock: wait for it
        # (where this user may take the lock) rather than name a view that is about to be recorded.
        with contextlib.suppress(OSError), store.shared():
            recorded, served = audit.recorded_view_digests(store), _served_view_ids(store)
    checked, unrecorded, changed = 0, 0, []
    for view_id in store.view_ids():
        want = recorded.get(view_id)
        if want is None and view_id in served:
            got = hashlib.sha256((store.root / "views" / view_id / "view.json").read_bytes()).hexdigest()
            changed.append((f"snapshot {view_id} (views/{view_id}/view.json)", got,
                            UNRECORDED_SERVED))  # fmt: skip
            continue
        if want is None:
            unrecorded += 1
            continue
        checked += 1
        got = hashlib.sha256((store.root / "views" / view_id / "view.json").read_bytes()).hexdigest()
        if got != want:
            changed.append((f"snapshot {view_id} (views/{view_id}/view.json)", want,
                            f"changed since its import (sha256 now {got[:16]}…)"))  # fmt: skip
    return checked, unrecorded, changed


def _tree_problems(
    store: Store, layouts: Mapping[str, BlobLayout], blobs: list[tuple[str, int, str]]
) -> tuple[int, list[tuple[str, str, str]]]:
    """(trees checked, problems) for the file trees of the served snapshots; the blobs their hard links share
    are added to ``blobs``, so each is hashed once."""
    have = {sha for sha, _, _ in blobs}
    checked, problems = 0, []
    for view_id in sorted(_served_view_ids(store)):
        if not tree_dir(store, view_id).is_dir():
            continue
        checked += 1
        for p in check_tree(store, view_id, layouts):
            problems.append((f"file tree of snapshot {view_id} (views/{view_id}/{p.path})", p.sha256 or "-" * 16,
                             p.problem))  # fmt: skip
        for rel, file in tree_entries(store, store.load_view(view_id), layouts).items():
            if file.sha256 not in have:
                have.add(file.sha256)
                blobs.append((file.sha256, file.size, rel.rsplit("/", 1)[-1]))
    return checked, problems


async def verify_store(
    store: Store, progress: Progress, *, everything: bool = False, layouts: Mapping[str, BlobLayout] | None = None
) -> VerifyReport:
    """Check size, then sha256, of every blob a channel serves (``current`` and every named one; ``everything``:
    every blob stored), and, with ``layouts`` (the ecosystem adapters), the file tree of every served snapshot.
    Raises IntegrityError listing each damaged blob; returns the report when all are sound."""
    if not (store.root / "blobs").exists() and not everything and not store.channel_names():
        raise UserError(f"{store.root}: no store here", hint="check [store] path in mirrorctl.toml")
    blobs = list(_all_blobs(store) if everything else _served_blobs(store))
    checked, unrecorded, damaged = await asyncio.to_thread(_changed_snapshots, store)
    trees, tree_damage = (0, []) if layouts is None else await asyncio.to_thread(_tree_problems, store, layouts, blobs)
    damaged += tree_damage
    task = progress.task("verifying store", sum(size for _, size, _ in blobs), unit="bytes")
    try:
        for sha, size, name in blobs:
            # Hashing is CPU and disk work: keep it off the event loop.
            problem = await asyncio.to_thread(store.verify_blob, sha, size)
            if problem is not None:
                damaged.append((name, sha, problem))
            task.advance(size)
    finally:
        task.close()
    if damaged:
        lines = "\n".join(f"  {name} ({sha[:16]}…): {problem}" for name, sha, problem in damaged)
        snaps = sum(1 for name, _, _ in damaged if name.startswith("snapshot "))
        wrong = len(tree_damage)
        bare = sum(1 for _, _, problem in damaged if problem == UNRECORDED_SERVED)
        hint = (
            "inside: `mirrorctl import --repair BUNDLE` with the bundle being served replaces damaged blobs; "
            "outside: delete them and run `mirrorctl snapshot` again"
        )
        if snaps - bare:
            hint += (
                "; a changed snapshot is not served as its import made it: keep it as evidence, point channels "
                "at another (`mirrorctl promote`), and import its bundle again"
            )
        if bare:
            hint += (
                "; a served snapshot with no recorded digest: import the bundle it came from again, which "
                "journals it if the snapshot is still what that bundle makes"
            )
        if wrong:
            hint += (
                "; a damaged file tree is rebuilt from its snapshot by `import --repair` (after mending blobs) "
                "and by the next `mirrorctl serve --front nginx` (or remove the tree's folder, views/<id>/files)"
            )
        raise IntegrityError(
            f"{store.root}: {len(damaged) - snaps - wrong} of {len(blobs)} blobs are damaged, {snaps - bare} of "
            f"{checked} recorded snapshots changed"
            + (f", {bare} served snapshot(s) with no recorded digest" if bare else "")
            + (f", {wrong} file tree entr{'y' if wrong == 1 else 'ies'} wrong" if wrong else "")
            + f":\n{lines}",
            hint=hint,
        )
    return VerifyReport(len(blobs), sum(size for _, size, _ in blobs), (), checked, unrecorded, trees)
