"""``export_bundle``: locks + store -> one signed, uncompressed tar (the payload is already compressed).

The bundle is written to a temp file beside ``out`` and renamed into place only when complete and synced,
so no half-written bundle ever carries the real name. Blobs are streamed (memory stays flat) and re-hashed on
the way: a blob that rotted in the store stops the export instead of crossing the gap.

``since`` (the inside's state file, :mod:`.state`) makes a *delta*: only the blobs the state does not list with
the same size (the manifest summarizes the others as ``expected``), and each lock and the SBOM as a line delta
against the inside's copy (:mod:`.linedelta`) when the state holds that copy and the delta is smaller; the manifest
still lists every complete file with its size and sha256. A delta's tar is not padded to tar's 10 kB record.
``chunk_size`` writes the bundle as parts plus an index (:mod:`.chunks`) instead of one file.

Sequences and reissues: each export is recorded in the outside store's ``state/export.json`` (``exports``, one
record per bundle written: lineage, sequence, bundle id, the first issue's id, the selection's digest, kind, base
state, file name, time; ``lineages`` keeps the highest sequence per lineage). The *selection* is what decides
the view the inside will serve: the lineage, each profile's lock bytes, the key statements carried and the base
state. Exporting the selection of the lineage's latest export again (in parts for a smaller medium, with another
expiry) keeps its sequence and says so in the manifest (``reissues``), so the inside takes either file as the same
bundle instead of refusing the earlier one as a rollback; anything else, ``--sequence`` or ``new_sequence`` takes
a new number.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mirrorctl import __version__
from mirrorctl.crossing.signing import key_id, load_private_key, sign
from mirrorctl.crossing.trust import outgoing_statements
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.inside.store import Store, fsync_dir
from mirrorctl.lockfile import Lock, merge_artifacts, refuse_path_collisions
from mirrorctl.progress import SILENT, Progress, ProgressTask

from .chunks import PartWriter
from .container import ContainerWriter
from .linedelta import make_delta
from .manifest import (
    DELTA_SUFFIX,
    KIND_DELTA,
    KIND_FULL,
    MANIFEST_NAME,
    MAX_SEQUENCE,
    PROFILE_NAME,
    SBOM_NAME,
    SIGNATURE_NAME,
    DeltaBase,
    FileEntry,
    Manifest,
    ProfileEntry,
    Rebuilt,
    Reissue,
    blob_member,
    expected_digest,
    format_time,
    lock_member,
    new_bundle_id,
    sorted_files,
)
from .sbom import build_sbom

if TYPE_CHECKING:
    from .state import InsideState

EXPORT_STATE = "export"
_CHUNK = 1024 * 1024

LockInput = tuple[str, Lock, bytes]  # (profile name, parsed lock, the exact lock bytes that travel)


@dataclass(frozen=True, slots=True)
class ExportReport:
    path: Path
    bundle_id: str
    lineage: str
    sequence: int
    created: str
    expires: str | None
    profiles: tuple[str, ...]
    artifacts: int
    blobs: int  # blobs carried in the bundle
    size: int  # bytes of the bundle (all parts together when chunked)
    kind: str = KIND_FULL
    expected_blobs: int = 0  # deltas: blobs left out because the inside has them
    carried_bytes: int = 0  # bytes of the blobs carried
    base_state: str | None = None  # deltas: the state file's digest
    index: Path | None = None  # chunked: the parts index
    parts: tuple[Path, ...] = ()  # chunked: the parts, in order
    reissues: Reissue | None = None  # the same selection as the lineage's latest export: its sequence is kept
    first_exported: str | None = None  # reissues: when its first issue was exported


@dataclass(frozen=True, slots=True)
class ExportRecord:
    """One bundle written, as ``state/export.json`` keeps it (``exports``)."""

    lineage: str
    sequence: int
    bundle_id: str
    issue: str  # the first issue's bundle id (its own unless it is a reissue)
    selection: str  # sha256 of what decides the served view (selection_digest)
    created: str

    @classmethod
    def from_dict(cls, doc: Mapping[str, object]) -> ExportRecord:
        return cls(
            str(doc["lineage"]), int(str(doc["sequence"])), str(doc["bundle-id"]), str(doc["issue"]),
            str(doc["selection"]), str(doc["created"]),
        )


def selection_digest(
    lineage: str, locks: Mapping[str, bytes], statements: Mapping[str, bytes], base_state: str | None
) -> str:
    """The sha256 of what decides the view a bundle makes inside (not its expiry, chunking or bundle id)."""
    doc = {
        "lineage": lineage,
        "locks": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(locks.items())},
        "statements": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(statements.items())},
        "base": base_state,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def export_records(store: Store, lineage: str | None = None) -> list[ExportRecord]:
    """The bundles this store exported, oldest first (of ``lineage`` only, when given)."""
    out = [ExportRecord.from_dict(r) for r in store.read_state(EXPORT_STATE).get("exports", [])]
    return [r for r in out if lineage is None or r.lineage == lineage]


def _reissue_of(store: Store, lineage: str, selection: str) -> ExportRecord | None:
    """The lineage's latest export when it had this selection and still holds the lineage's highest sequence."""
    records = export_records(store, lineage)
    if not records:
        return None
    latest = records[-1]
    if latest.selection != selection or latest.sequence != last_exported_sequence(store, lineage):
        return None
    return latest


def last_exported_sequence(store: Store, lineage: str) -> int:
    return int(store.read_state(EXPORT_STATE).get("lineages", {}).get(lineage, 0))


def export_bundle(
    locks: Sequence[LockInput],
    store: Store,
    signing_key_path: Path,
    out: Path,
    *,
    sequence: int | None = None,
    expires: datetime | None = None,
    now: datetime | None = None,
    since: InsideState | None = None,
    chunk_size: int | None = None,
    progress: Progress = SILENT,
    ecosystems: Mapping[str, Ecosystem],
    new_sequence: bool = False,
) -> ExportReport:
    """Write a signed bundle of ``locks`` to ``out`` (a delta against ``since``; in parts of ``chunk_size``).
    ``ecosystems`` (the installed adapters) give the SBOM's package URLs. The same selection as the lineage's
    latest export keeps its sequence (a reissue) unless ``sequence`` is given or ``new_sequence``.

    Example: ``export_bundle([("web", lock, lock_bytes)], rt.store, Path("keys/k"), Path("web.bundle"),
    ecosystems=rt.ecosystems)``.
    """
    if not locks:
        raise UserError("no profiles to export", hint="name at least one profile with a lock")
    names = [name for name, _, _ in locks]
    for name in names:
        if not PROFILE_NAME.match(name):
            raise UserError(
                f"profile name {name!r} cannot be carried in a bundle",
                hint="use lowercase letters, digits, '-' and '_'",
            )
    if len(set(names)) != len(names):
        raise UserError(
            f"profile listed twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}"
        )
    private = load_private_key(signing_key_path)
    # After `mirrorctl key rotate` a new key continues its lineage; every bundle carries the key statements.
    lineage, statements = outgoing_statements(store, key_id(private.public_key()))
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    if expires is not None and expires <= created:
        raise UserError(
            f"expiry {format_time(expires)} is not after the creation time {format_time(created)}"
        )
    if sequence is not None and not 0 <= sequence <= MAX_SEQUENCE:
        raise UserError(f"--sequence must be from 0 to {MAX_SEQUENCE}, got {sequence}")

    artifacts = merge_artifacts(lock.artifacts for _, lock, _ in locks)
    refuse_path_collisions(artifacts, f"profiles {', '.join(names)}", UserError)
    blobs: dict[str, int] = {}
    for a in artifacts:
        for sha, size, _ in a.blobs():
            blobs[sha] = size
    base = _delta_base(since, lineage, sequence) if since is not None else None
    # A delta leaves out what the inside has with the same size; those need not be in this store either.
    expected = {sha: size for sha, size in blobs.items() if since is not None and since.blobs.get(sha) == size}
    carried = {sha: size for sha, size in blobs.items() if sha not in expected}
    missing = [
        (sha, size, fn)
        for a in artifacts
        for sha, size, fn in a.blobs()
        if sha in carried and not store.has_blob(sha, size)
    ]
    if missing:
        listed = ", ".join(f"{fn} (sha256 {sha[:12]}…)" for sha, _, fn in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(
            f"{len(missing)} blob(s) missing from the store {store.root}: {listed}{more}",
            hint="run `mirrorctl snapshot` for these profiles first",
        )

    selection = selection_digest(
        lineage, {name: data for name, _, data in locks}, statements, since.digest if since is not None else None
    )
    with store.exclusive():
        first = _reissue_of(store, lineage, selection) if sequence is None and not new_sequence else None
        reissues = Reissue(first.sequence, first.issue) if first is not None else None
        seq = sequence if sequence is not None else last_exported_sequence(store, lineage) + 1
        if base is not None and sequence is None:
            seq = max(seq, base.sequence + 1)  # the delta continues the lineage the inside has
        if first is not None:
            seq = first.sequence
        if seq > MAX_SEQUENCE:
            raise UserError(
                f"lineage {lineage} is at sequence {seq - 1}, the highest a bundle may carry ({MAX_SEQUENCE})",
                hint="start a new lineage: generate a new key and trust it inside (docs/signing.md, section 3)",
            )
        bundle_id = new_bundle_id()
        sbom = build_sbom(
            artifacts,
            bundle_id=bundle_id,
            timestamp=format_time(created),
            tool_version=__version__,
            profiles=names,
            ecosystems=ecosystems,
        )
        small: dict[str, bytes] = {SBOM_NAME: sbom, **statements}
        for name, _, lock_bytes in locks:
            small[lock_member(name)] = lock_bytes
        entries = [FileEntry(p, len(b), hashlib.sha256(b).hexdigest()) for p, b in small.items()]
        rebuilt = _line_deltas(small, since) if since is not None else []
        for r in rebuilt:  # the complete file stays listed (entries); its delta travels in its place
            del small[r.path]
            delta = small[r.delta]
            entries.append(FileEntry(r.delta, len(delta), hashlib.sha256(delta).hexdigest()))
        entries += [FileEntry(blob_member(sha), size, sha) for sha, size in carried.items()]
        files = sorted_files(entries)
        by_path = {f.path: f for f in files}
        manifest = Manifest(
            bundle_id=bundle_id,
            lineage=lineage,
            sequence=seq,
            created=created,
            expires=expires,
            mirrorctl_version=__version__,
            profiles={
                name: ProfileEntry(
                    lock_member(name), by_path[lock_member(name)].size, by_path[lock_member(name)].sha256
                )
                for name in sorted(names)
            },
            files=files,
            kind=KIND_DELTA if base is not None else KIND_FULL,
            base=base,
            expected=expected_digest(expected) if base is not None else None,
            rebuilt=tuple(rebuilt),
            reissues=reissues,
        )
        manifest_bytes = manifest.to_bytes()
        signature = sign(private, manifest_bytes)

        out = out.absolute()
        if out.is_dir():
            raise UserError(f"{out}: is a directory", hint="give a file name, e.g. --out web.bundle")
        if not out.parent.is_dir():
            raise UserError(f"{out.parent}: directory does not exist")
        mtime = int(created.timestamp())
        index: Path | None = None
        parts: tuple[Path, ...] = ()
        if chunk_size is not None:
            writer = PartWriter(out, chunk_size)
            try:
                _write_tar(writer, out.parent, manifest_bytes, signature, manifest, small, store, mtime, progress)
                index = writer.commit(bundle_id=bundle_id, signature=signature)
            except BaseException:
                writer.abort()
                raise
            parts = tuple(out.with_name(p.name) for p in writer.parts)
            size = writer.tell()
        else:
            tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.partial")
            try:
                with _open_new(tmp) as raw:
                    _write_tar(raw, out.parent, manifest_bytes, signature, manifest, small, store, mtime, progress)
                os.replace(tmp, out)
                fsync_dir(out.parent)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            size = out.stat().st_size
        state = store.read_state(EXPORT_STATE)
        lineages = dict(state.get("lineages", {}))
        lineages[lineage] = max(int(lineages.get(lineage, 0)), seq)
        record = {
            "lineage": lineage, "sequence": seq, "bundle-id": bundle_id, "issue": manifest.issue,
            "selection": selection, "created": format_time(created), "kind": manifest.kind,
            "base": since.digest if since is not None else None, "file": out.name,
        }  # fmt: skip
        exports = [*state.get("exports", []), record]
        store.write_state(EXPORT_STATE, {**state, "lineages": lineages, "exports": exports})

    return ExportReport(
        path=out,
        bundle_id=bundle_id,
        lineage=lineage,
        sequence=seq,
        created=format_time(created),
        expires=format_time(expires) if expires else None,
        profiles=tuple(sorted(names)),
        artifacts=len(artifacts),
        blobs=len(carried),
        size=size,
        kind=manifest.kind,
        expected_blobs=len(expected),
        carried_bytes=sum(carried.values()),
        base_state=since.digest if since is not None else None,
        index=index,
        parts=parts,
        reissues=reissues,
        first_exported=_first_exported(store, lineage, reissues),
    )


def _first_exported(store: Store, lineage: str, reissues: Reissue | None) -> str | None:
    if reissues is None:
        return None
    found = next((r for r in export_records(store, lineage) if r.bundle_id == reissues.bundle_id), None)
    return found.created if found is not None else None


def _line_deltas(small: dict[str, bytes], since: InsideState) -> list[Rebuilt]:
    """Each lock and the SBOM whose inside copy the state holds (and lists as a blob) and whose delta is smaller."""
    out: list[Rebuilt] = []
    for path in sorted(small):
        base = since.bases.get(path)
        if base is None or path.startswith("keys/"):
            continue
        base_sha = hashlib.sha256(base).hexdigest()
        if since.blobs.get(base_sha) != len(base):  # the inside must hold that copy as a blob to rebuild from it
            continue
        delta = make_delta(base, small[path])
        if delta is not None:
            small[path + DELTA_SUFFIX] = delta
            out.append(Rebuilt(path, path + DELTA_SUFFIX, base_sha, len(base)))
    return out


def _delta_base(since: InsideState, lineage: str, sequence: int | None) -> DeltaBase:
    rec = since.lineages.get(lineage)
    where = since.path or "the state file"
    if rec is None or rec.bundle_id is None:
        known = ", ".join(sorted(since.lineages)) or "none"
        raise UserError(
            f"{where}: the inside has imported nothing signed by this key (lineage {lineage}; "
            f"lineages it has: {known}), so a delta cannot continue it",
            hint="export a full bundle (without --since) for the first import of this lineage",
        )
    if sequence is not None and sequence <= rec.sequence:
        raise UserError(
            f"--sequence {sequence} does not continue lineage {lineage}: the inside is at sequence {rec.sequence}",
            hint=f"use a sequence above {rec.sequence}, or leave --sequence out",
        )
    return DeltaBase(since.digest, lineage, rec.sequence, rec.bundle_id)


@contextlib.contextmanager
def _open_new(path: Path) -> Iterator[BinaryIO]:
    with open(path, "xb") as raw:
        yield raw
        raw.flush()
        os.fsync(raw.fileno())


def _write_tar(
    raw: BinaryIO | PartWriter,
    folder: Path,
    manifest_bytes: bytes,
    signature: bytes,
    manifest: Manifest,
    small: dict[str, bytes],
    store: Store,
    mtime: int,
    progress: Progress,
) -> None:
    files = manifest.members  # a file rebuilt from a line delta is listed, not carried
    total = sum(f.size for f in files) + len(manifest_bytes) + len(signature)
    task = progress.task("writing bundle", total, unit="bytes")
    # A full bundle keeps tar's padding to 10 kB records (its bytes stay those of format-version 1); a delta
    # ends right after the two zero blocks that mark the end of the archive: up to 10 kB less for a small bump.
    try:
        with ContainerWriter(raw, padded=manifest.kind != KIND_DELTA, mtime=mtime) as tar:
            for name, data in ((MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, signature)):
                tar.add_bytes(name, data)
                task.advance(len(data))
            for f in files:
                if f.path in small:
                    tar.add_bytes(f.path, small[f.path])
                    task.advance(f.size)
                    continue
                with open(store.blob_path(f.sha256), "rb") as src:
                    reader = _HashingReader(src, task)
                    tar.add(f.path, f.size, reader)  # type: ignore[arg-type]
                if reader.hexdigest() != f.sha256 or reader.read_bytes != f.size:
                    raise IntegrityError(
                        f"{store.blob_path(f.sha256)}: stored blob does not match its digest",
                        hint="delete it and run `mirrorctl snapshot` again to fetch it afresh",
                    )
    except OSError as exc:
        raise UserError(
            f"{folder}: cannot write the bundle ({exc.strerror or exc})",
            hint="check free space and permissions where --out points",
        ) from exc
    finally:
        task.close()


class _HashingReader:
    """A file object that hashes what the container writer copies out of it, so the blob is read once."""

    def __init__(self, src: BinaryIO, task: ProgressTask) -> None:
        self._src, self._task = src, task
        self._hash = hashlib.sha256()
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n if n >= 0 else _CHUNK)
        self._hash.update(data)
        self.read_bytes += len(data)
        self._task.advance(len(data))
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
