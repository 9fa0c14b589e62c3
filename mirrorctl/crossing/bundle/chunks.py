"""Chunked media: a bundle written as ``FILE.part0001``, ``FILE.part0002``, … plus an index ``FILE.parts.json``.

Writing (:class:`PartWriter`): the exporter's tar stream is cut into parts of at most ``chunk size`` bytes as it
is written (each part: temp name -> fsync -> rename when the bundle is complete), then the index is written
last. So a half-written export leaves no part under its real name, and disk use is that of one bundle.

Reading (:func:`open_chunked`): the index is used only to *locate* parts (in the index's folder and every
``--from`` folder, any order) and to check each one (size, then sha256) before anything reads it; a part that
is missing or damaged is named. The result is a :class:`ChunkedBundle`: a path whose ``open()`` gives one
seekable stream over the parts where they lie (nothing is copied together, disk use stays flat). The signed
manifest inside that stream remains the authority: a forged index (its hashes changed to match forged parts)
still meets the bundle's signature and per-member hashes.

Index (JSON)::

    {"format": "mirrorctl-parts", "format-version": 1, "bundle": "web.bundle", "bundle-id": "…",
     "size": <total bytes>, "sha256": "<of the whole bundle>", "chunk-size": <bytes>,
     "manifest-signature-sha256": "<of manifest.json.sig>",
     "parts": [{"name": "web.bundle.part0001", "size": …, "sha256": "…"}, …]}
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PosixPath
from typing import IO, Any

from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside.store import atomic_write, fsync_dir
from mirrorctl.progress import SILENT, Progress

FORMAT = "mirrorctl-parts"
FORMAT_VERSION = 1
INDEX_SUFFIX = ".parts.json"
MAX_PARTS = 9999  # four digits in the part names
MAX_INDEX_SIZE = 4 * 1024 * 1024
_PART_SUFFIX = re.compile(r"\.part(\d{4})$")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_size(text: str) -> int:
    """``4G`` -> 4 GiB. Suffixes K, M, G, T are powers of 1024 (``4GiB`` and ``4g`` too); no suffix: bytes."""
    m = _SIZE.match(text)
    if not m or int(m.group(1)) <= 0:
        raise UserError(f"--chunk-size {text!r}: expected a positive size like 4G, 700M or 64K")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def part_name(bundle_name: str, number: int) -> str:
    return f"{bundle_name}.part{number:04d}"


def index_path(out: Path) -> Path:
    return out.with_name(out.name + INDEX_SUFFIX)


# --- writing ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Part:
    name: str
    size: int
    sha256: str


class PartWriter:
    """A write-only file object that cuts what it is given into parts of ``chunk_size`` bytes beside ``out``."""

    def __init__(self, out: Path, chunk_size: int) -> None:
        if chunk_size <= 0:
            raise UserError(f"chunk size must be positive, got {chunk_size}")
        self.out, self.chunk_size = out, chunk_size
        self._token = secrets.token_hex(6)
        self._temps: list[Path] = []
        self.parts: list[Part] = []
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._in_part = 0
        self._total = 0
        self.total_hash = hashlib.sha256()

    def _temp(self, number: int) -> Path:
        return self.out.with_name(f".{part_name(self.out.name, number)}.{self._token}.partial")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            if self._file is None:
                number = len(self._temps) + 1
                if number > MAX_PARTS:
                    raise UserError(
                        f"--chunk-size {self.chunk_size} bytes would need more than {MAX_PARTS} parts",
                        hint="choose a larger --chunk-size",
                    )
                tmp = self._temp(number)
                self._temps.append(tmp)
                self._file = open(tmp, "xb")
            room = self.chunk_size - self._in_part
            piece = view[written : written + room]
            self._file.write(piece)
            self._hash.update(piece)
            self.total_hash.update(piece)
            self._in_part += len(piece)
            self._total += len(piece)
            written += len(piece)
            if self._in_part == self.chunk_size:
                self._close_part()
        return written

    def tell(self) -> int:
        return self._total

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def _close_part(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        number = len(self._temps)
        self.parts.append(Part(part_name(self.out.name, number), self._in_part, self._hash.hexdigest()))
        self._hash = hashlib.sha256()
        self._in_part = 0

    def finish(self) -> None:
        if self._file is not None:
            self._close_part()

    def commit(self, *, bundle_id: str, signature: bytes) -> Path:
        """Rename every part to its real name, then write the index (the last step); returns the index path."""
        self.finish()
        for tmp, part in zip(self._temps, self.parts, strict=True):
            os.replace(tmp, self.out.with_name(part.name))
        index = {
            "format": FORMAT,
            "format-version": FORMAT_VERSION,
            "bundle": self.out.name,
            "bundle-id": bundle_id,
            "size": self._total,
            "sha256": self.total_hash.hexdigest(),
            "chunk-size": self.chunk_size,
            "manifest-signature-sha256": hashlib.sha256(signature).hexdigest(),
            "parts": [{"name": p.name, "size": p.size, "sha256": p.sha256} for p in self.parts],
        }
        target = index_path(self.out)
        atomic_write(target, json.dumps(index, indent=1, sort_keys=True).encode() + b"\n")
        # Parts of an earlier export under the same name but beyond this one's count would confuse a reader.
        number = len(self.parts) + 1
        while (stale := self.out.with_name(part_name(self.out.name, number))).is_file():
            stale.unlink()
            number += 1
        fsync_dir(self.out.parent)
        return target

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for tmp in self._temps:
            tmp.unlink(missing_ok=True)


# --- reading ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PartsIndex:
    path: Path
    bundle: str
    bundle_id: str
    size: int
    sha256: str
    parts: tuple[Part, ...]


def read_index(path: Path) -> PartsIndex:
    """Parse an index strictly; part names must be exactly ``<bundle>.part0001``… in order (no folders)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INDEX_SIZE + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: parts index not found") from None
    if len(data) > MAX_INDEX_SIZE:
        raise BundleRefused(f"{path}: parts index is larger than {MAX_INDEX_SIZE} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BundleRefused(f"{path}: parts index is not valid JSON ({exc})") from None
    keys = {"format", "format-version", "bundle", "bundle-id", "size", "sha256", "chunk-size",
            "manifest-signature-sha256", "parts"}  # fmt: skip
    if not isinstance(doc, dict) or set(doc) != keys:
        raise BundleRefused(f"{path}: not a mirrorctl parts index (expected fields {', '.join(sorted(keys))})")
    if doc["format"] != FORMAT or doc["format-version"] != FORMAT_VERSION:
        raise BundleRefused(f"{path}: format {doc['format']!r} version {doc['format-version']!r} is not supported")
    bundle = doc["bundle"]
    if not isinstance(bundle, str) or bundle in ("", ".", "..") or any(c in bundle for c in "/\\\x00"):
        raise BundleRefused(f"{path}: bundle name {bundle!r} is not a plain file name")
    raw_parts = doc["parts"]
    if not isinstance(raw_parts, list) or not raw_parts or len(raw_parts) > MAX_PARTS:
        raise BundleRefused(f"{path}: parts must be a list of 1 to {MAX_PARTS} entries")
    parts: list[Part] = []
    for i, item in enumerate(raw_parts, start=1):
        expected = part_name(bundle, i)
        if (
            not isinstance(item, dict)
            or set(item) != {"name", "size", "sha256"}
            or item["name"] != expected
            or not _is_size(item["size"])
            or not isinstance(item["sha256"], str)
            or not _SHA256.match(item["sha256"])
        ):
            raise BundleRefused(f"{path}: parts[{i - 1}] must be {{name: {expected!r}, size, sha256}}")
        parts.append(Part(item["name"], item["size"], item["sha256"]))
    if not _is_size(doc["size"]) or sum(p.size for p in parts) != doc["size"]:
        raise BundleRefused(f"{path}: size {doc['size']!r} is not the sum of the parts' sizes")
    if not isinstance(doc["sha256"], str) or not _SHA256.match(doc["sha256"]):
        raise BundleRefused(f"{path}: sha256 must be 64 lowercase hex digits")
    return PartsIndex(path, bundle, str(doc["bundle-id"]), doc["size"], doc["sha256"], tuple(parts))


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _folders(index: Path, search: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for folder in (index.parent, *search):
        folder = folder.absolute()
        if folder not in out:
            out.append(folder)
    return out


def open_chunked(index: Path, search: Sequence[Path] = (), *, progress: Progress = SILENT) -> ChunkedBundle:
    """Locate and check every part the index at ``index`` names; the result opens as the whole bundle.

    Example: ``verify_bundle(open_chunked(Path("/media/a/web.bundle.parts.json"), [Path("/media/b")]), ...)``
    """
    idx = read_index(index)
    folders = _folders(index, search)
    where = ", ".join(str(f) for f in folders)
    count = len(idx.parts)
    located: list[tuple[Path, int]] = []
    missing: list[str] = []
    for number, part in enumerate(idx.parts, start=1):
        found = [f / part.name for f in folders if (f / part.name).is_file()]
        right_size = [p for p in found if p.stat().st_size == part.size]
        if right_size:
            located.append((right_size[0], part.size))
        elif found:
            raise BundleRefused(
                f"part {number} of {count} ({part.name}) in {found[0].parent} is damaged: "
                f"{found[0].stat().st_size} bytes, the index says {part.size}",
                hint="copy that part again from the outside",
            )
        else:
            missing.append(f"part {number} of {count} ({part.name})")
    if missing:
        # Name every missing part (a few at most in practice): the user fetches them in one go.
        also = f"; also missing: {', '.join(m.split(' (')[1][:-1] for m in missing[1:])}" if len(missing) > 1 else ""
        raise UserError(
            f"{missing[0]} missing in {where}{also}",
            hint="copy the missing part(s) from the outside, or point --from at the folder that holds them",
        )
    task = progress.task("checking parts", idx.size, unit="bytes")
    total = hashlib.sha256()
    try:
        for number, ((path, _), part) in enumerate(zip(located, idx.parts, strict=True), start=1):
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    total.update(chunk)
                    task.advance(len(chunk))
            if digest.hexdigest() != part.sha256:
                raise BundleRefused(
                    f"part {number} of {count} ({part.name}) in {path.parent} is damaged: "
                    f"sha256 {digest.hexdigest()}, the index says {part.sha256}",
                    hint="copy that part again from the outside",
                )
    finally:
        task.close()
    if total.hexdigest() != idx.sha256:
        raise BundleRefused(f"{index}: the parts together do not match the index's sha256 (the index was edited)")
    bundle = ChunkedBundle(index)
    bundle.chunk_files = tuple(located)
    return bundle


class ChunkedBundle(PosixPath):
    """The index's path, which ``open()`` reads as the concatenated parts (what BundleReader does)."""

    chunk_files: tuple[tuple[Path, int], ...]  # (where the part lies, its size), in order

    def open(self, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if mode != "rb":
            raise ValueError("a chunked bundle opens only for reading (rb)")
        return io.BufferedReader(SpanningReader(self.chunk_files), buffer_size=_CHUNK)


class SpanningReader(io.RawIOBase):
    """A read-only, seekable stream over several files taken one after another."""

    def __init__(self, parts: Sequence[tuple[Path, int]]) -> None:
        self._paths = [p for p, _ in parts]
        self._starts: list[int] = []
        pos = 0
        for _, size in parts:
            self._starts.append(pos)
            pos += size
        self._size = pos
        self._pos = 0
        self._open_index = -1
        self._file: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        end = self._starts[i + 1] if i + 1 < len(self._starts) else self._size
        if i != self._open_index:
            if self._file is not None:
                self._file.close()
            self._file = open(self._paths[i], "rb")
            self._open_index = i
        assert self._file is not None
        self._file.seek(self._pos - self._starts[i])
        view = memoryview(buffer).cast("B")
        want = min(len(view), end - self._pos)
        n = self._file.readinto(view[:want]) or 0  # 0: the part shrank since it was checked -> reads end early
        self._pos += n
        return n

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


def resolve_bundle(path: Path, search: Sequence[Path] = (), *, progress: Progress = SILENT) -> Path:
    """What the user named -> something BundleReader can open.

    ``web.bundle.parts.json`` or ``web.bundle.part0001`` (any part) -> the checked parts; ``web.bundle`` that
    does not exist but whose index does (beside it or in a ``--from`` folder) -> the same; otherwise ``path``.
    """
    name = path.name
    if name.endswith(INDEX_SUFFIX):
        return open_chunked(path, search, progress=progress)
    m = _PART_SUFFIX.search(name)
    if m:
        bundle_name = name[: m.start()]
    elif not path.exists():
        bundle_name = name
    else:
        return path
    wanted = bundle_name + INDEX_SUFFIX
    for folder in _folders(path, search):
        if (folder / wanted).is_file():  # parts are looked for beside the named one too
            return open_chunked(folder / wanted, [path.parent, *search], progress=progress)
    if m:
        folders = ", ".join(str(f) for f in _folders(path, search))
        raise UserError(
            f"{path}: is a part, but its index {wanted} is in none of {folders}",
            hint="copy the .parts.json file too, or point --from at its folder",
        )
    return path
