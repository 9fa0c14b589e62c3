"""``import_bundle``: a verified bundle becomes the served view, all or nothing.

Steps, under the store's exclusive lock:

1. read and verify the manifest (signature, expiry); decide no-op / rollback from the lineage's history;
2. check free space, then stream every member into a private staging folder under ``store.tmp_dir``, hashing
   as it goes (blobs already in the store are only hashed); check the locks and their artifacts;
3. move staged blobs into the store (``commit_blob``; content-addressed, so a crash leaves harmless orphans);
4. write the new view (with the signed manifest beside it, for audits), then switch the import's channel
   (``current``, or the first ``--channel``: only those named move, never ``current`` then): the single
   atomic commit point;
5. record the lineage's sequence in store state. Readers of the history also consider every channel's view,
   so a crash between 4 and 5 cannot open a rollback window.

The staging folder is removed on every failure (and stale ones from killed runs at the next import). The
bundle file is only ever opened for reading.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from mirrorctl.crossing.signing import TrustedKey
from mirrorctl.crossing.trust_gate import TrustGate
from mirrorctl.errors import BundleRefused, MirrorctlError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import (
    require_existing_or_create,
    served_view_of,
    served_views,
    switch_locked,
    validate_channel_name,
)
from mirrorctl.inside.store import CURRENT, Store, View, atomic_write, fsync_dir
from mirrorctl.lockfile import merge_artifacts
from mirrorctl.progress import SILENT, Progress

from .delta import IMPORT_STATE, check_delta_base, check_expected_blobs, lineage_history
from .issues import imported_record, record_entry, refuse_other_content, same_issue_served
from .manifest import KIND_DELTA, FileEntry, Manifest, format_time
from .verify import (
    ArtifactValidator,
    BundleReader,
    check_contents,
    expected_blobs,
    rebuild_files,
    store_bases,
)

CRASH_ENV = "MIRRORCTL_TEST_CRASH_AT"
STAGING_PREFIX = "import-"
_SPACE_MARGIN = 256 * 1024  # headroom for the view and state files written after staging


@dataclass(frozen=True, slots=True)
class ImportReport:
    bundle_id: str
    lineage: str
    sequence: int
    view_id: str | None  # None when nothing changed
    profiles: tuple[str, ...]
    artifacts: int
    new_blobs: int
    new_bytes: int
    noop: bool = False
    rollback: bool = False
    warnings: tuple[str, ...] = ()  # trust decisions to print loudly: expiry override, rotation, revocation
    served_as: str | None = None  # a no-op reissue: the bundle of the same issue whose view is served
    issue: str | None = None  # a reissue: the first issue's bundle id


def _crash_point(step: str) -> None:
    """Tests kill the process here (``MIRRORCTL_TEST_CRASH_AT=<step>``) to prove every step is crash-safe."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def import_bundle(
    path: Path,
    store: Store,
    trusted_keys: Sequence[TrustedKey],
    ecosystems: Mapping[str, ArtifactValidator],
    *,
    now: datetime,
    allow_rollback: bool = False,
    repair: bool = False,
    progress: Progress = SILENT,
    channels: Sequence[str] = (),
    create_channels: bool = True,
    accept_expired_until: datetime | None = None,
    view_files: Callable[[Path, View], object] | None = None,
) -> ImportReport:
    """Verify ``path`` completely and serve it, or change nothing.

    ``view_files``: writes what is derived from a new view into its folder (given the staged folder and the view,
    after every blob is committed, before the folder is renamed into ``views/``): the CLI's writes the file tree
    ``serve --front`` hands to nginx (mirrorctl/inside/filetree.py), so a view is never served without it.

    ``accept_expired_until``: an expired bundle is accepted while the local clock is not past this time;
    logged loudly and in the audit journal (mirrorctl/crossing/trust_gate.py).

    ``channels``: point these channels (mirrorctl/inside/channels.py) at the imported snapshot *instead of*
    ``current`` (an import "to staging" moves staging only, never what the plain layout serves); none: ``current``.
    One that does not exist yet is refused before anything is read unless ``create_channels`` (the CLI passes
    its ``--create``). The same bundle again (a channel already serves it) makes no new snapshot: it only points
    the channels at the one that exists.

    ``repair``: ``path`` must be a bundle a channel serves; every stored blob it carries that does not verify
    (missing, wrong size or wrong sha256: what ``mirrorctl verify`` names) is replaced by the bundle's verified
    bytes, one atomic rename each. The served view does not change.

    Example: ``import_bundle(Path("web.bundle"), Store(root), keys, load_ecosystems(), now=now)``
    """
    # Every outcome goes to the audit journal (outside the served view, so a refusal still changes nothing
    # that is served); the refusal itself is raised unchanged.
    event = "import-repair" if repair else "import"
    try:
        for channel in channels:
            validate_channel_name(channel)
            require_existing_or_create(store, channel, create=create_channels)
        report = _import_bundle(
            path, store, trusted_keys, ecosystems,
            now=now, allow_rollback=allow_rollback, repair=repair, progress=progress, channels=channels,
            accept_expired_until=accept_expired_until, view_files=view_files,
        )
    except OSError as exc:  # before staging completed (the later steps convert their own): nothing was changed
        where = exc.filename or store.root
        error = UserError(
            f"{where}: cannot import ({exc.strerror or exc}); nothing was changed",
            hint="free space or inodes (df -i) on the store's file system, or fix its permissions or the bundle's "
            "medium, and import again",
        )
        audit.record(store, event, progress, bundle=path.name, result="refused", error=error.message)
        raise error from exc
    except Exception as exc:
        result = "refused" if isinstance(exc, MirrorctlError) else "failed"
        message = exc.message if isinstance(exc, MirrorctlError) else f"{type(exc).__name__}: {exc}"
        audit.record(store, event, progress, bundle=path.name, result=result, error=message)
        raise
    if report.noop or repair:  # a new view's entry is written under the store's lock, by _import_bundle
        _record_outcome(store, event, progress, path, report, channels)
    return report


def _record_outcome(
    store: Store, event: str, progress: Progress, path: Path, report: ImportReport, channels: Sequence[str]
) -> None:
    audit.record(
        store, event, progress,
        bundle=path.name, **{"bundle-id": report.bundle_id, "view-id": report.view_id},
        **(audit.view_digest(store, report.view_id) if not report.noop and event == "import" else {}),
        sequence=report.sequence, lineage=report.lineage, rollback=report.rollback,
        result="noop" if report.noop else "ok", **({"channels": list(channels)} if channels else {}),
    )


def _import_bundle(
    path: Path,
    store: Store,
    trusted_keys: Sequence[TrustedKey],
    ecosystems: Mapping[str, ArtifactValidator],
    *,
    now: datetime,
    allow_rollback: bool,
    repair: bool,
    progress: Progress,
    channels: Sequence[str] = (),
    accept_expired_until: datetime | None = None,
    view_files: Callable[[Path, View], object] | None = None,
) -> ImportReport:
    # The trust gate reads the key statements a bundle carries; a rotation brings the key that signs it.
    with (
        store.exclusive(),
        TrustGate(store, trusted_keys, path, now=now, accept_expired_until=accept_expired_until) as gate,
        BundleReader(path, gate.keys) as reader,
    ):
        _remove_stale_staging(store)
        manifest, signer = reader.read_manifest(now, accept_expired_until=accept_expired_until)
        gate.check(manifest, signer, progress)  # lineage bound to its key, revocations, expiry override
        progress.note(
            f"bundle {manifest.bundle_id}: lineage {manifest.lineage} (key {signer.path}), sequence "
            f"{manifest.sequence}, created {format_time(manifest.created)}, "
            + (f"expires {format_time(manifest.expires)}" if manifest.expires else "no expiry")
            + f"; local clock {format_time(now)}"
        )
        targets = list(dict.fromkeys(channels)) or [CURRENT]  # the channels this import moves
        served = served_views(store)
        current = served_view_of(served, manifest.bundle_id)
        if (
            current is not None
            and not repair
            and any(store.channel_view_id(t) != current.view_id for t in targets)
            and current.sequence < lineage_history(store, manifest.lineage)[0]
        ):
            current = None  # an older bundle switches no channel back without the rollback check below
        if repair and current is None:
            bundles = sorted({v.bundle_id for v in served})
            raise UserError(
                f"{path}: --repair takes the bundle being served "
                f"({', '.join(bundles) or 'nothing is served yet'}); this is {manifest.bundle_id}",
                hint="import it without --repair, or repair with a bundle that is served",
            )
        if current is not None and not repair:
            progress.note(f"bundle {manifest.bundle_id} is already being served; nothing to do")
            for channel in targets:  # the same bundle again: point the channels at the snapshot that serves it
                switch_locked(store, channel, current.view_id, action="import")
            _complete_record(path, store, current, manifest, ecosystems, progress)
            return _report(manifest, None, 0, 0, noop=True)
        # Another bundle of the same issue (a reissue) that a channel serves: the same, as above.
        reissued = None if repair else next((v for v in served[::-1] if same_issue_served(store, manifest, v)), None)
        if reissued is not None and (
            all(store.channel_view_id(t) == reissued.view_id for t in targets)
            or reissued.sequence >= lineage_history(store, manifest.lineage)[0]
        ):
            progress.note(
                f"bundle {manifest.bundle_id} is sequence {manifest.sequence} issued as bundle {manifest.issue}, "
                f"already served from bundle {reissued.bundle_id} with the same locks; nothing to do"
            )
            for channel in targets:
                switch_locked(store, channel, reissued.view_id, action="import")
            return dataclasses.replace(_report(manifest, None, 0, 0, noop=True), served_as=reissued.bundle_id)
        rollback = False if repair else _check_history(store, manifest, allow_rollback, progress)
        if manifest.kind == KIND_DELTA and not repair:  # its base must be here; refused before staging
            check_delta_base(store, manifest, lineage_history(store, manifest.lineage))
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=store.tmp_dir))
        try:
            if repair:  # every blob re-hashed: a same-size damaged blob must be found too
                to_stage = {f.path for f in manifest.files if store.verify_blob(f.sha256, f.size) is not None}
            else:
                to_stage = {f.path for f in manifest.files if not store.has_blob(f.sha256, f.size)}
            _check_free_space(store, manifest, to_stage)
            staged: dict[str, FileEntry] = {}

            @contextlib.contextmanager
            def sink_for(entry: FileEntry) -> Iterator[IO[bytes] | None]:
                if entry.path not in to_stage:
                    yield None
                    return
                # Staged file names come from the signed digest, never from the archive's member name.
                dest = staging / entry.sha256
                if dest.exists():  # the same bytes under two names (an SBOM equal to a blob): hash only
                    yield None
                    return
                with open(dest, "xb") as out:
                    yield out
                    out.flush()
                    os.fsync(out.fileno())
                staged[entry.sha256] = entry

            try:
                lock_bytes = reader.read_members(sink_for=sink_for, progress=progress)
                # Locks and SBOM carried as line deltas: rebuilt from the stored copies, checked, staged as blobs.
                for name, data in rebuild_files(path, manifest, lock_bytes, store_bases(store)).items():
                    lock_bytes[name] = data
                    entry = manifest.file(name)
                    assert entry is not None
                    if name in to_stage and entry.sha256 not in staged:
                        with open(staging / entry.sha256, "xb") as out:
                            out.write(data)
                            out.flush()
                            os.fsync(out.fileno())
                        staged[entry.sha256] = entry
            except OSError as exc:
                raise UserError(
                    f"{store.tmp_dir}: cannot stage the bundle ({exc.strerror or exc}); nothing was changed",
                    hint="free some space (or fix permissions) on the store's file system and import again",
                ) from exc
            locks = check_contents(path, manifest, lock_bytes, ecosystems)
            if manifest.kind == KIND_DELTA and not repair:
                check_expected_blobs(store, manifest, expected_blobs(manifest, locks))
            _crash_point("staged")

            view = View(
                view_id=Store.new_view_id(manifest.sequence),
                bundle_id=manifest.bundle_id,
                sequence=manifest.sequence,
                lineage=manifest.lineage,
                created=format_time(now),
                profiles={name: entry.sha256 for name, entry in sorted(manifest.profiles.items())},
                artifacts=tuple(merge_artifacts(lock.artifacts for lock in locks.values())),
            )
            view_json = view.to_json()  # rendered before any blob moves: a record it cannot hold changes nothing
            committed: list[Path] = []  # blobs and folders this import added, removed again if it fails
            state_before: dict[Path, bytes] | None = None
            try:
                new_bytes = 0
                for i, (sha, entry) in enumerate(sorted(staged.items())):
                    if repair or not store.has_blob(sha, entry.size):
                        if not repair:
                            committed += _new_paths(store, store.blob_path(sha))
                        store.commit_blob(staging / sha, sha)  # replaces a damaged blob in one rename
                        new_bytes += entry.size
                    if i == 0:
                        _crash_point("blob-committed")
                _crash_point("blobs-committed")
                if repair:
                    assert current is not None
                    progress.note(
                        f"repaired {len(staged)} blob(s) of view {current.view_id}; the served view is unchanged"
                    )
                    return _report(manifest, current.view_id, len(staged), new_bytes, artifacts=len(current.artifacts))
                # The signed manifest travels with the view, so an audit can re-check it later with openssl. The
                # folder is written in staging and renamed into views/ whole: no view folder lacks its view.json.
                assert reader.signed is not None
                view_dir = store.root / "views" / view.view_id
                staged_view = staging / "view"
                staged_view.mkdir()
                for name, data in (
                    ("bundle-manifest.json", reader.signed[0]),
                    ("bundle-manifest.json.sig", reader.signed[1]),
                    ("view.json", view_json),
                ):
                    _write_synced(staged_view / name, data)
                if view_files is not None:
                    view_files(staged_view, view)
                committed += _new_paths(store, view_dir)
                view_dir.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staged_view, view_dir)
                fsync_dir(view_dir.parent)
                _crash_point("view-written")
                state_before = _state_files(store)
                switch_locked(store, targets[0], view.view_id, action="import")  # the commit point (+ history)
            except Exception as exc:
                if store.channel_view_id(targets[0]) == view.view_id:
                    raise  # switched: what failed came after the commit point, and the new view is served
                _undo(store, committed, state_before)
                if not isinstance(exc, OSError):
                    raise
                raise UserError(
                    f"{store.root}: cannot write to the store ({exc.strerror or exc}); nothing was changed",
                    hint="free space or inodes (df -i) on the store's file system, or fix its permissions, and "
                    "import again",
                ) from exc
            try:
                for channel in targets[1:]:
                    switch_locked(store, channel, view.view_id, action="import")
                _crash_point("switched")
                _record_history(store, manifest, reader.signed[0], now)
                gate.commit(manifest, signer, progress)  # rotations and revocations it carried, audited
            except OSError as exc:
                raise UserError(
                    f"{store.root}: now serving view {view.view_id}, but recording it failed "
                    f"({exc.strerror or exc}): its channels, history or carried key statements may be missing",
                    hint="free space or inodes (df -i) on the store's file system; the served view itself is "
                    "complete, and importing the same bundle again with --channel points channels at it",
                ) from exc
            _crash_point("recorded")
            report = _report(
                manifest, view.view_id, len(staged), new_bytes, artifacts=len(view.artifacts), rollback=rollback
            )
            # Journalled before the store's lock is released, so `verify` (which takes it shared) never sees
            # this view served without its digest unless the import was killed: then it refuses the view until
            # the bundle is imported again (_complete_record).
            _record_outcome(store, "import", progress, path, report, channels)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if targets == [CURRENT]:
            progress.note(f"now serving view {view.view_id} ({len(view.artifacts)} artifacts)")
        else:
            progress.note(f"channel(s) {', '.join(targets)} now point at view {view.view_id} "
                          f"({len(view.artifacts)} artifacts); {CURRENT} is unchanged")  # fmt: skip
        return dataclasses.replace(report, warnings=tuple(gate.warnings))


def _complete_record(
    path: Path, store: Store, current: View, manifest: Manifest, ecosystems: Mapping[str, ArtifactValidator],
    progress: Progress,
) -> None:
    """The bundle being served is imported again: journal that its view is served if a kill after the switch
    (or a run before the digest was journalled first) left no such entry. A digest already journalled is kept;
    one that is missing is taken from disk only if view.json is byte for byte what importing this bundle
    writes (its locks re-read from the store by their signed digests), so an edit is never recorded as made."""
    served, digests = audit.served_view_ids(store), audit.recorded_view_digests(store)
    if current.view_id in served and current.view_id in digests:
        return
    digest = digests.get(current.view_id)
    if digest is None:
        on_disk = (store.root / "views" / current.view_id / "view.json").read_bytes()
        lock_bytes: dict[str, bytes] = {}
        for entry in manifest.profiles.values():
            if store.verify_blob(entry.sha256, entry.size) is not None:
                progress.note(f"WARNING: view {current.view_id} has no recorded digest and its lock "
                              f"{entry.lock} is damaged in the store; run `mirrorctl verify`")  # fmt: skip
                return
            lock_bytes[entry.lock] = store.blob_path(entry.sha256).read_bytes()
        locks = check_contents(path, manifest, lock_bytes, ecosystems)
        expected = dataclasses.replace(
            current, artifacts=tuple(merge_artifacts(lock.artifacts for lock in locks.values())),
            profiles={name: entry.sha256 for name, entry in sorted(manifest.profiles.items())},
            bundle_id=manifest.bundle_id, sequence=manifest.sequence, lineage=manifest.lineage,
        )
        if expected.to_json() != on_disk:
            progress.note(
                f"WARNING: the served view {current.view_id} has no recorded digest and is not what importing "
                f"{manifest.bundle_id} writes: it was changed after its import; not recorded. Keep it as "
                "evidence and run `mirrorctl verify`"
            )
            return
        digest = hashlib.sha256(on_disk).hexdigest()
    audit.record(
        store, "import", progress,
        bundle=path.name, **{"bundle-id": current.bundle_id, "view-id": current.view_id, "view-sha256": digest},
        sequence=current.sequence, lineage=current.lineage, rollback=False, result="ok", recovered=True,
    )
    progress.note(f"recorded view {current.view_id} as served (its import was cut short before recording it)")


def _report(
    manifest: Manifest,
    view_id: str | None,
    new_blobs: int,
    new_bytes: int,
    *,
    artifacts: int = 0,
    noop: bool = False,
    rollback: bool = False,
) -> ImportReport:
    return ImportReport(
        bundle_id=manifest.bundle_id,
        lineage=manifest.lineage,
        sequence=manifest.sequence,
        view_id=view_id,
        profiles=tuple(sorted(manifest.profiles)),
        artifacts=artifacts,
        new_blobs=new_blobs,
        new_bytes=new_bytes,
        noop=noop,
        rollback=rollback,
        issue=manifest.reissues.bundle_id if manifest.reissues is not None else None,
    )


def _check_history(store: Store, manifest: Manifest, allow_rollback: bool, progress: Progress) -> bool:
    """Refuse an older bundle of the same lineage (or a different bundle reusing the newest sequence, unless it
    is the same issue: a reissue of it, or the bundle it reissues)."""
    last = imported_record(store, manifest.lineage)
    if last is None:
        return False
    highest, highest_id = last.sequence, last.bundle_id
    older = manifest.sequence < highest
    reused = manifest.sequence == highest and highest_id is not None and highest_id != manifest.bundle_id
    if reused and last.issue == manifest.issue:
        refuse_other_content(manifest, f"bundle {highest_id}", last.profiles_sha256)
        return False  # the same bundle again, in another file: imported like it (its view is not served now)
    if not (older or reused):
        return False
    what = (
        f"sequence {manifest.sequence} is older than {highest}, "
        f"already imported for lineage {manifest.lineage}: superseded by {last.describe()}"
        if older
        else f"sequence {manifest.sequence} of lineage {manifest.lineage} "
        f"was already imported as {last.describe()}"
    )
    if not allow_rollback:
        raise BundleRefused(
            f"{manifest.bundle_id}: refused as a rollback: {what}",
            hint="import a newer bundle; to go back on purpose, pass --allow-rollback (it is logged)",
        )
    progress.note(f"ROLLBACK allowed by --allow-rollback: {what}")
    return True


def _record_history(store: Store, manifest: Manifest, manifest_bytes: bytes, now: datetime) -> None:
    state = store.read_state(IMPORT_STATE)
    lineages = dict(state.get("lineages", {}))
    prev = lineages.get(manifest.lineage, {})
    if manifest.sequence >= int(prev.get("sequence", -1)):
        lineages[manifest.lineage] = record_entry(manifest, manifest_bytes, now)
    store.write_state(IMPORT_STATE, {**state, "lineages": lineages})


def _check_free_space(store: Store, manifest: Manifest, to_stage: set[str]) -> None:
    needed = sum(f.size for f in manifest.files if f.path in to_stage)
    free = shutil.disk_usage(store.tmp_dir).free
    if needed + needed // 100 + _SPACE_MARGIN > free:
        raise UserError(
            f"{store.tmp_dir}: not enough free space to import: "
            f"{needed} bytes needed (+ margin), {free} free; "
            "nothing was changed",
            hint="free space on the store's file system, or move the store to a larger one",
        )


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _new_paths(store: Store, path: Path) -> list[Path]:
    """``path`` and each of its folders under the store's root that does not exist yet, deepest first."""
    out: list[Path] = []
    while path != store.root and not path.exists():
        out.append(path)
        path = path.parent
    return out


def _state_files(store: Store) -> dict[Path, bytes]:
    base = store.root / "state"
    return {p: p.read_bytes() for p in base.iterdir() if p.is_file()} if base.is_dir() else {}


def _undo(store: Store, added: list[Path], state_before: Mapping[Path, bytes] | None) -> None:
    """Put the store back as it was before a failed import's first write: the blobs, folders and view it added
    go (nothing refers to them: the switch did not happen), then the state files the switch began to write.
    Removing comes first, so that a file system out of space or inodes has room to restore the state files."""
    for path in added:  # deepest first: a blob before its new shard folder
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    if state_before is None:
        return
    for path in set(_state_files(store)) - set(state_before):
        path.unlink(missing_ok=True)
    for path, data in state_before.items():
        with contextlib.suppress(OSError):
            if path.read_bytes() != data:
                atomic_write(path, data)


def _remove_stale_staging(store: Store) -> None:
    # Imports are serialized by store.exclusive(), which we hold: a staging folder left is from a killed run.
    for leftover in store.tmp_dir.glob(f"{STAGING_PREFIX}*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
