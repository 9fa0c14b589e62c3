"""Reading a bundle without trusting it: signature first, then every member accounted for.

Nothing here extracts anything. The tar framing is read by :mod:`.container` (bounded headers, one at a time,
exact framing), and each member's data is read with a hard limit of the size the *signed manifest* declares;
where the bytes go is decided by the caller (``sink_for``), never by a name in the archive.

Order of checks, each one refusing with a :class:`BundleRefused` that names the problem:

1. the first member is ``manifest.json`` (a regular file, size-capped), the second ``manifest.json.sig``;
2. the signature verifies against one of the trusted keys (fail closed: unsigned, unknown key, bad signature);
3. the manifest parses strictly; an expired bundle is refused (``expires < now``);
4. every further member is a regular file with a safe name, listed in the manifest, not seen before, whose
   size header equals the listed size; its bytes are streamed, counted and hashed against the listed sha256;
5. the archive ends with tar's end-of-archive marker and zero padding, nothing else; nothing listed is
   missing; a lock or SBOM that travels as a line delta is rebuilt from the inside's copy
   (a blob of the store) and must then have exactly its listed size and sha256;
6. each lock parses, its artifacts pass their ecosystem's name grammar, and every blob it needs (artifact and
   companions) is in the bundle with the size the lock says; for a delta, the blobs it needs that are not
   carried must match the manifest's ``expected`` summary (count and digest).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from mirrorctl.crossing.signing import SIGNATURE_SIZE, TrustedKey, find_signer, load_trusted_keys
from mirrorctl.errors import BundleRefused, ProfileError, UserError, shorten
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, LegacyRecord, Lock, merge_artifacts, parse_lock, refuse_path_collisions
from mirrorctl.progress import SILENT, Progress

from .container import ContainerReader, Member
from .delta import check_delta_base, check_expected_blobs, lineage_history
from .linedelta import apply_delta
from .manifest import (
    DELTA_SUFFIX,
    KIND_DELTA,
    LOCK_VERSION_OF,
    MANIFEST_NAME,
    MAX_LOCK_SIZE,
    MAX_MANIFEST_SIZE,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    blob_digest,
    blob_member,
    check_clock,
    expected_digest,
    format_time,
    parse_manifest,
)

_CHUNK = 1024 * 1024


class ArtifactValidator(Protocol):
    """The parts of an ecosystem adapter that verify and import need (every Ecosystem is one): the grammar, and
    the path of a record written before paths (a format-version 1 bundle's locks)."""

    def validate_artifact(self, artifact: Artifact) -> None: ...

    def legacy_path(self, record: LegacyRecord) -> str: ...


# Reads the inside's copy a line delta is against: (sha256, size) -> its bytes, or None when not held.
BaseReader = Callable[[str, int], bytes | None]


def store_bases(store: Store | None) -> BaseReader:
    def read(sha256: str, size: int) -> bytes | None:
        if store is None or not store.has_blob(sha256, size):
            return None
        with open(store.blob_path(sha256), "rb") as f:
            return f.read(size + 1)

    return read


# A sink receives a member's verified-as-it-goes bytes; None means "hash only, keep nothing".
Sink = Callable[[FileEntry], AbstractContextManager[IO[bytes] | None]]


@dataclass(frozen=True, slots=True)
class VerifiedManifest:
    """A bundle whose signature, members and locks all checked out."""

    path: Path
    manifest: Manifest
    signer: TrustedKey
    locks: Mapping[str, Lock] = field(default_factory=dict)

    @property
    def artifacts(self) -> list[Artifact]:
        return merge_artifacts(lock.artifacts for lock in self.locks.values())


def _nothing(_: FileEntry) -> AbstractContextManager[IO[bytes] | None]:
    return contextlib.nullcontext(None)


class BundleReader:
    """One pass over a bundle file. Use as a context manager; call :meth:`read_manifest` then
    :meth:`read_members`."""

    def __init__(self, path: Path, trusted_keys: Sequence[TrustedKey]) -> None:
        if not trusted_keys:
            load_trusted_keys(())  # raises the UserError that explains how to configure trust
        self.path = path
        self._trusted = trusted_keys
        try:
            # path.open, not open(path): a chunked bundle (bundle/chunks.py) opens as its concatenated parts.
            self._raw = path.open("rb")
        except FileNotFoundError:
            raise UserError(f"{path}: bundle not found") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a directory, not a bundle") from None
        self._tar = ContainerReader(self._raw, str(path))
        self._manifest: Manifest | None = None
        self.signed: tuple[bytes, bytes] | None = None  # (manifest bytes, signature) once verified

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()

    def _next(self) -> Member | None:
        return self._tar.next()

    def _read_all(self, member: Member, cap: int) -> bytes:
        return self._tar.read_all(member, cap)

    def read_manifest(
        self, now: datetime, *, accept_expired_until: datetime | None = None
    ) -> tuple[Manifest, TrustedKey]:
        """``accept_expired_until``: an expired bundle passes while the local clock is not past it (the
        importer logs that loudly, mirrorctl/crossing/trust_gate.py); without it, ``expires < now`` is refused."""
        first = self._next()
        if first is None or first.name != MANIFEST_NAME or not _is_plain_file(first):
            found = "nothing" if first is None else repr(shorten(first.name))
            raise BundleRefused(
                f"{self.path}: the first member must be {MANIFEST_NAME}, found {found}",
                hint="this is not a mirrorctl bundle, or it was repacked",
            )
        manifest_bytes = self._read_all(first, MAX_MANIFEST_SIZE)
        second = self._next()
        if second is None or second.name != SIGNATURE_NAME or not _is_plain_file(second):
            raise BundleRefused(
                f"{self.path}: bundle is unsigned ({SIGNATURE_NAME} does not follow {MANIFEST_NAME})",
                hint="only bundles signed by a trusted key are imported; export it with [signing] key set",
            )
        signature = self._read_all(second, SIGNATURE_SIZE)
        signer = find_signer(self._trusted, manifest_bytes, signature)
        if signer is None:
            raise self._signature_problem(manifest_bytes)
        manifest = parse_manifest(manifest_bytes)
        if manifest.lineage != signer.lineage:  # a key's own id, or the lineage a rotation bound it to
            raise BundleRefused(
                f"{self.path}: manifest claims lineage {manifest.lineage} "
                f"but is signed by key {signer.key_id}"
                + (f", which signs for lineage {signer.lineage}" if signer.lineage != signer.key_id else "")
            )
        check_clock(manifest, now, str(self.path))
        if manifest.expires is not None and manifest.expires < now:
            if accept_expired_until is None or now > accept_expired_until:
                past = (
                    f"; --accept-expired-until {format_time(accept_expired_until)} is past as well"
                    if accept_expired_until is not None
                    else ""
                )
                raise BundleRefused(
                    f"{self.path}: bundle expired at {format_time(manifest.expires)} "
                    f"(local clock says {format_time(now)}){past}",
                    hint="export a fresh bundle outside; if this machine's clock is wrong, fix the clock, or "
                    "accept it on purpose (logged): mirrorctl import --accept-expired-until TIME",
                )
        self._manifest = manifest
        self.signed = (manifest_bytes, signature)
        return manifest, signer

    def _signature_problem(self, manifest_bytes: bytes) -> BundleRefused:
        # The manifest is untrusted here: it is only read to say *which* key it claims, never to decide.
        trusted = ", ".join(f"{k.key_id} ({k.path})" for k in self._trusted)
        try:
            claimed = parse_manifest(manifest_bytes).lineage
        except BundleRefused:
            claimed = None
        if claimed is not None and claimed not in {k.key_id for k in self._trusted}:
            return BundleRefused(
                f"{self.path}: signed by unknown key {claimed}; trusted keys: {trusted}",
                hint="add that key's .pub to [trust] keys only if you know whose it is",
            )
        return BundleRefused(
            f"{self.path}: signature of {MANIFEST_NAME} does not verify with any trusted key "
            f"(the manifest was changed after signing, or the signature is not from {trusted})",
            hint="get an untouched copy of the bundle",
        )

    def read_members(self, *, sink_for: Sink = _nothing, progress: Progress = SILENT) -> dict[str, bytes]:
        """Check and stream every member after the signature; returns the bytes of the lock members."""
        manifest = self._manifest
        if manifest is None:
            raise RuntimeError("read_manifest() first")
        listed = {f.path: f for f in manifest.members}
        seen: set[str] = set()
        small: dict[str, bytes] = {}
        task = progress.task("verifying bundle", sum(f.size for f in listed.values()), unit="bytes")
        try:
            while (member := self._next()) is not None:
                name = shorten(member.name)  # for messages; a member name may be megabytes long
                _check_member(member, self.path)
                if member.name in seen or member.name in (MANIFEST_NAME, SIGNATURE_NAME):
                    raise BundleRefused(f"{self.path}: member {name} appears twice")
                seen.add(member.name)
                entry = listed.get(member.name)
                if entry is None:
                    raise BundleRefused(f"{self.path}: member {name} is not listed in the signed manifest")
                if member.size != entry.size:
                    raise BundleRefused(
                        f"{self.path}: {name} is {member.size} bytes, the manifest says {entry.size}"
                    )
                # deltas: size-capped by the manifest
                keep = member.name.startswith("locks/") or member.name.endswith(DELTA_SUFFIX)
                if keep and entry.size > MAX_LOCK_SIZE:
                    raise BundleRefused(f"{self.path}: {name} is larger than {MAX_LOCK_SIZE} bytes")
                digest = hashlib.sha256()
                buf = bytearray()
                with sink_for(entry) as out:
                    for chunk in self._tar.data(member, entry.size):
                        digest.update(chunk)
                        if out is not None:
                            out.write(chunk)
                        if keep:
                            buf += chunk
                        task.advance(len(chunk))
                    if digest.hexdigest() != entry.sha256:
                        raise BundleRefused(
                            f"{self.path}: {name} does not match its sha256 in the manifest "
                            f"(got {digest.hexdigest()})",
                            hint="the bundle was damaged or tampered with; get an untouched copy",
                        )
                if keep:
                    small[member.name] = bytes(buf)
        finally:
            task.close()
        absent = [p for p in listed if p not in seen]
        if absent:
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            raise BundleRefused(f"{self.path}: listed member(s) missing: {', '.join(absent[:5])}{more}")
        return small


def _is_plain_file(member: Member) -> bool:
    return member.is_file


def _check_member(member: Member, path: Path) -> None:
    """Refuse what must never become a file: links, devices, folders, and names that could leave a folder."""
    name = member.name
    said = shorten(name)
    if not _is_plain_file(member):
        target = f" to {shorten(member.linkname)!r}" if member.is_link else ""
        raise BundleRefused(f"{path}: member {said!r} is {member.kind()}{target}; only regular files are allowed")
    if "\x00" in name or "\\" in name:
        raise BundleRefused(f"{path}: member name {said!r} holds a NUL or backslash")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise BundleRefused(f"{path}: member name {said!r} is absolute or leaves its folder")


def rebuild_files(
    path: Path, manifest: Manifest, small: Mapping[str, bytes], read_base: BaseReader
) -> dict[str, bytes]:
    """The complete bytes of every file the manifest lists as rebuilt from a line delta (``small`` holds the delta
    members read by :meth:`BundleReader.read_members`), each checked against its listed size and sha256."""
    by_path = {f.path: f for f in manifest.files}
    out: dict[str, bytes] = {}
    for r in manifest.rebuilt:
        entry = by_path[r.path]
        base = read_base(r.base_sha256, r.base_size)
        if base is None:
            raise BundleRefused(
                f"{path}: {r.path} travels as a line delta ({r.delta}) against the inside's copy, blob "
                f"{r.base_sha256} ({r.base_size} bytes), which is not in this store; nothing was changed",
                hint="import the full bundle instead, or export a fresh state here and a new delta outside",
            )
        if len(base) != r.base_size or hashlib.sha256(base).hexdigest() != r.base_sha256:
            raise BundleRefused(
                f"{path}: {r.delta}: the stored copy it is rebuilt from (blob {r.base_sha256}) is damaged",
                hint="run `mirrorctl verify`; import the full bundle instead",
            )
        data = apply_delta(f"{path}: {r.delta}", small[r.delta], base, r.base_sha256, entry.size)
        got = hashlib.sha256(data).hexdigest()
        if len(data) != entry.size or got != entry.sha256:
            raise BundleRefused(
                f"{path}: {r.path} rebuilt from {r.delta} is {len(data)} bytes with sha256 {got}; "
                f"the manifest lists {entry.size} bytes, sha256 {entry.sha256}",
                hint="the bundle was damaged or tampered with; get an untouched copy",
            )
        out[r.path] = data
    return out


def expected_blobs(manifest: Manifest, locks: Mapping[str, Lock]) -> dict[str, int]:
    """A delta's blobs that are needed by its locks and not carried: sha256 -> size (the lock's)."""
    carried = {d for f in manifest.files if (d := blob_digest(f.path)) is not None}
    out: dict[str, int] = {}
    for lock in locks.values():
        for art in lock.artifacts:
            for sha, size, _ in art.blobs():
                if sha not in carried:
                    out[sha] = size
    return out


def check_contents(
    path: Path,
    manifest: Manifest,
    lock_bytes: Mapping[str, bytes],
    ecosystems: Mapping[str, ArtifactValidator] | None,
) -> dict[str, Lock]:
    """Parse each lock, validate its artifacts, and check the bundle holds exactly the blobs they need.

    For a delta, each needed blob that is not carried counts as expected from the inside's store (the importer
    checks it is there); together they must match the manifest's ``expected`` summary."""
    listed = {f.path: f for f in manifest.files}
    delta = manifest.kind == KIND_DELTA
    locks: dict[str, Lock] = {}
    needed: set[str] = set()
    for name, entry in sorted(manifest.profiles.items()):
        data = lock_bytes[entry.lock]
        if hashlib.sha256(data).hexdigest() != entry.sha256:  # already checked as a member; cheap to repeat
            raise BundleRefused(f"{path}: {entry.lock} does not match the manifest's profiles.{name}")
        where = f"{path}: {entry.lock}"
        try:
            lock = parse_lock(data.decode("utf-8"), where, legacy_paths=ecosystems)
        except UnicodeDecodeError:
            raise BundleRefused(f"{where}: not UTF-8 text") from None
        except ProfileError as exc:
            raise BundleRefused(exc.message, hint=exc.hint) from None
        if lock.profile != name:
            raise BundleRefused(f"{where}: is the lock of profile {lock.profile!r}, not {name!r}")
        if lock.version != LOCK_VERSION_OF[manifest.format_version]:
            raise BundleRefused(
                f"{where}: is lock-version {lock.version}, but a bundle of format-version "
                f"{manifest.format_version} carries lock-version {LOCK_VERSION_OF[manifest.format_version]}",
                hint="the bundle was made wrongly or tampered with; export it again",
            )
        for i, art in enumerate(lock.artifacts):
            # name, version and path come from the lock: bounded, as a refusal quotes them
            what = shorten(f"{art.ecosystem} {art.name} {art.version}")
            label = f"{where}: artifacts[{i}] ({what}, {shorten(art.path)!r})"
            if ecosystems is not None:
                eco = ecosystems.get(art.ecosystem)
                if eco is None:
                    raise BundleRefused(f"{label}: ecosystem {art.ecosystem!r} is not installed here")
                try:
                    eco.validate_artifact(art)
                except (BundleRefused, ProfileError) as exc:
                    raise BundleRefused(f"{label}: {exc.message}") from None
            for sha, size, blob_path in art.blobs():
                member = blob_member(sha)
                entry_f = listed.get(member)
                if entry_f is None and delta:
                    needed.add(member)
                    continue
                if entry_f is None:
                    raise BundleRefused(f"{label}: {blob_path} (blob {sha}) is not in the bundle")
                if entry_f.size != size:
                    raise BundleRefused(
                        f"{label}: {blob_path} is {size} bytes in the lock, {entry_f.size} in the bundle"
                    )
                needed.add(member)
        locks[name] = lock
    unused = [p for p in listed if p.startswith("blobs/") and p not in needed]
    if unused:
        raise BundleRefused(f"{path}: {unused[0]} is in the bundle but no lock refers to it")
    if delta:
        assert manifest.expected is not None
        derived = expected_digest(expected_blobs(manifest, locks))
        if derived != manifest.expected:
            raise BundleRefused(
                f"{path}: manifest.json: expected says {manifest.expected.count} blob(s) left out "
                f"(sha256 {manifest.expected.sha256[:16]}…), but the locks need {derived.count} that are not "
                f"carried (sha256 {derived.sha256[:16]}…)",
                hint="the bundle was made wrongly or tampered with; export the delta again",
            )
    refuse_path_collisions(merge_artifacts(lock.artifacts for lock in locks.values()), str(path), BundleRefused)
    return locks


def verify_bundle(
    path: Path,
    trusted_keys: Sequence[TrustedKey],
    now: datetime,
    *,
    ecosystems: Mapping[str, ArtifactValidator] | None = None,
    progress: Progress = SILENT,
    store: Store | None = None,
    like_import: bool = False,
) -> VerifiedManifest:
    """Check a bundle completely without changing anything.

    ``store``: where a delta's locks and SBOM carried as line deltas find the copies they are rebuilt from
    (read only); without it such a delta is refused, naming the file. ``like_import`` (`bundle verify`): a delta
    is also checked as import checks it, so that what passes imports: its base and every blob it expects must
    be in ``store``. Reading a bundle's contents (``diff``) needs neither.

    Example: ``verify_bundle(Path("web.bundle"), load_trusted_keys(settings.trusted_keys), now)``
    """
    with BundleReader(path, trusted_keys) as reader:
        manifest, signer = reader.read_manifest(now)
        lock_bytes = reader.read_members(progress=progress)
    judge = like_import and store is not None and manifest.kind == KIND_DELTA
    if judge:  # as import judges it: its base must be in this store
        assert store is not None
        try:
            check_delta_base(store, manifest, lineage_history(store, manifest.lineage))
        except BundleRefused as exc:  # most often: the outside checking its own delta before the media leaves
            raise BundleRefused(
                exc.message,
                hint=f"{exc.hint}; outside, check the delta against the state file it was exported against: "
                f"mirrorctl bundle verify --since STATE {path}",
            ) from None
    lock_bytes.update(rebuild_files(path, manifest, lock_bytes, store_bases(store)))
    locks = check_contents(path, manifest, lock_bytes, ecosystems)
    if judge:
        assert store is not None
        check_expected_blobs(store, manifest, expected_blobs(manifest, locks))
    return VerifiedManifest(path, manifest, signer, locks)
