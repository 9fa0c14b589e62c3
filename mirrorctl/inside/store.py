"""The content-addressed store and its served views.

Layout under the store root::

    blobs/sha256/ab/abcdef...     every file, named by its sha256; written temp -> fsync -> rename
    tmp/                          partial downloads and staging; never served, safe to delete when idle
    views/<view-id>/view.json     an immutable description of one served state (what was imported)
    views/<view-id>/files/        its file tree: hard links of the blobs it serves as files (inside/filetree.py)
    current -> views/<view-id>    the served view; switched atomically with one rename of a symlink
    channels/<name> -> ../views/<view-id>   named channels (dev, prod, ...), switched the same way
    state/                        small bookkeeping files (export sequence numbers, ...)
    .lock                         an flock held by whoever changes views (imports are serialized)

A blob is only ever visible under its real name once its bytes are complete, synced and verified, so a crash
leaves at worst an orphan in ``tmp/``. A view is only served once ``current`` points at it, so a reader sees
the old view or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.lockfile import Artifact, LegacyPaths

_CHUNK = 1024 * 1024
CURRENT = "current"  # the default channel: what an import switches and a plain `mirrorctl serve` serves

_SHA256 = re.compile(r"[0-9a-f]{64}")  # a blob name: the lower-case hex sha256 of its bytes


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class View:
    """One served state: the artifacts of the profiles a bundle carried, and where it came from."""

    view_id: str
    bundle_id: str
    sequence: int
    lineage: str
    created: str
    profiles: Mapping[str, str]  # profile name -> lock sha256
    artifacts: tuple[Artifact, ...]

    def for_ecosystem(self, ecosystem: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.ecosystem == ecosystem]

    def to_json(self) -> bytes:
        doc = {
            "view-id": self.view_id,
            "bundle-id": self.bundle_id,
            "sequence": self.sequence,
            "lineage": self.lineage,
            "created": self.created,
            "profiles": dict(sorted(self.profiles.items())),
            "artifacts": [a.to_dict() for a in sorted(self.artifacts, key=Artifact.sort_key)],
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, where: str, *, legacy_paths: LegacyPaths | None = None) -> View:
        """Read a view.json; one written before paths (its artifacts carry ``filename``) gets each path from the
        adapters in ``legacy_paths``, as a lock-version 1 does. The file itself is never rewritten."""
        doc = json.loads(data)
        records = doc["artifacts"]
        return cls(
            view_id=doc["view-id"],
            bundle_id=doc["bundle-id"],
            sequence=int(doc["sequence"]),
            lineage=doc["lineage"],
            created=doc["created"],
            profiles=doc["profiles"],
            artifacts=tuple(
                Artifact.from_dict(a, f"{where}: artifacts[{i}]", legacy=None, legacy_paths=legacy_paths)
                for i, a in enumerate(records)
            ),
        )


class Store:
    """A store root on disk. Cheap to construct; creates its folders on first use."""

    def __init__(self, root: Path, *, adapters: Callable[[], LegacyPaths] | None = None) -> None:
        self.root = root
        self._adapters = adapters  # called only when a record written before paths is read

    def legacy_paths(self, data: bytes = b'"filename"') -> LegacyPaths | None:
        """The installed ecosystems, to read records written before artifact paths (an old view.json, a
        lock-version 1 lock blob) in ``data``; None when ``data`` holds none or the store was opened without them
        (the runtime's store has them; reading an old record without them is refused, naming it)."""
        if self._adapters is None or (b'"filename"' not in data and b"filename =" not in data):
            return None
        return self._adapters()

    # --- blobs -------------------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise IntegrityError(f"not a sha256 digest: {sha256!r}")
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(sha256).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    @property
    def tmp_dir(self) -> Path:
        d = self.root / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def commit_blob(self, tmp: Path, sha256: str) -> Path:
        """Move a complete, already-verified and fsynced temp file into place under its digest."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        return dest

    def verify_blob(self, sha256: str, size: int) -> str | None:
        """None if the blob is present with that size and digest, else what is wrong with it."""
        path = self.blob_path(sha256)
        try:
            actual_size = path.stat().st_size
        except FileNotFoundError:
            return "missing"
        if actual_size != size:
            return f"size {actual_size}, expected {size}"
        actual = sha256_file(path)
        return None if actual == sha256 else f"sha256 {actual}"

    # --- views -------------------------------------------------------------------------------------------
    @property
    def _current_link(self) -> Path:
        return self.root / "current"

    def current_view_id(self) -> str | None:
        try:
            return Path(os.readlink(self._current_link)).name
        except FileNotFoundError:
            return None

    def load_view(self, view_id: str) -> View:
        path = self.root / "views" / view_id / "view.json"
        try:
            data = path.read_bytes()
            return View.from_json(data, str(path), legacy_paths=self.legacy_paths(data))
        except FileNotFoundError:
            raise UserError(f"{path}: view not found") from None

    def current_view(self) -> View | None:
        view_id = self.current_view_id()
        return None if view_id is None else self.load_view(view_id)

    def write_view(self, view: View) -> None:
        """Write an immutable view (not yet served); fsynced before it returns."""
        atomic_write(self.root / "views" / view.view_id / "view.json", view.to_json())

    def switch_current(self, view_id: str) -> None:
        """Serve ``view_id`` from now on: one atomic rename of a symlink."""
        if not (self.root / "views" / view_id / "view.json").exists():
            raise UserError(f"view {view_id} does not exist in {self.root}")
        tmp = self.root / f".current.{secrets.token_hex(6)}"
        os.symlink(Path("views") / view_id, tmp)
        os.replace(tmp, self._current_link)
        fsync_dir(self.root)

    # --- channels: named links to views, switched like ``current`` (history in mirrorctl/inside/channels.py) --------
    def channel_link(self, name: str) -> Path:
        """The link of channel ``name``; the channel ``current`` is the store's ``current`` link itself."""
        return self._current_link if name == CURRENT else self.root / "channels" / name

    def channel_view_id(self, name: str) -> str | None:
        try:
            return Path(os.readlink(self.channel_link(name))).name
        except FileNotFoundError:
            return None

    def channel_names(self) -> list[str]:
        """``current`` (when something was imported) and every channel under ``channels/``, sorted."""
        names = [CURRENT] if os.path.lexists(self._current_link) else []
        folder = self.root / "channels"
        if folder.is_dir():
            names += sorted(p.name for p in folder.iterdir() if p.is_symlink() and not p.name.startswith("."))
        return names

    def switch_channel(self, name: str, view_id: str) -> None:
        """Point channel ``name`` at ``view_id``: one atomic rename of a symlink, like ``switch_current``."""
        if name == CURRENT:
            self.switch_current(view_id)
            return
        if not (self.root / "views" / view_id / "view.json").exists():
            raise UserError(f"view {view_id} does not exist in {self.root}")
        folder = self.root / "channels"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{secrets.token_hex(6)}"
        os.symlink(Path("..") / "views" / view_id, tmp)
        os.replace(tmp, folder / name)
        fsync_dir(folder)

    def remove_channel(self, name: str) -> None:
        """Remove channel ``name``'s link (never ``current``'s); its snapshot stays in the store."""
        if name == CURRENT:
            raise UserError(f"{self.root}: the channel {CURRENT} cannot be removed")
        folder = self.root / "channels"
        (folder / name).unlink()
        fsync_dir(folder)

    def view_ids(self) -> list[str]:
        """Every view on disk (with its view.json), oldest first: ids start with their UTC creation time."""
        folder = self.root / "views"
        if not folder.is_dir():
            return []
        found = [p for p in folder.iterdir() if not p.name.startswith(".") and (p / "view.json").is_file()]
        # Same second: the view.json written later is the newer one (ids then only differ by sequence/random).
        found.sort(key=lambda p: (p.name[:16], (p / "view.json").stat().st_mtime_ns, p.name))
        return [p.name for p in found]

    @staticmethod
    def new_view_id(sequence: int) -> str:
        return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{sequence:06d}-{secrets.token_hex(4)}"

    # --- state and locking -------------------------------------------------------------------------------
    def read_state(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.root / "state" / f"{name}.json").read_bytes()))
        except FileNotFoundError:
            return {}

    def write_state(self, name: str, data: Mapping[str, Any]) -> None:
        atomic_write(self.root / "state" / f"{name}.json", json.dumps(data, sort_keys=True, indent=1).encode())

    @contextlib.contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the store's change lock (serializes imports); ``wait=False`` refuses when it is held."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise UserError(
                    f"{self.root}: another mirrorctl process is changing this store",
                    hint="wait for it to finish, then run the command again",
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the change lock shared while adding blobs outside an import (``snapshot``, ``lock --snapshot``):
        several may run together, but ``gc`` (exclusive) waits for them, so it never deletes a blob that was just
        fetched and that no lock file names yet; and they wait for a gc that is running."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def missing_blobs(self, artifacts: Sequence[Artifact]) -> list[tuple[str, int, str]]:
        return [b for a in artifacts for b in a.blobs() if not self.has_blob(b[0], b[1])]
