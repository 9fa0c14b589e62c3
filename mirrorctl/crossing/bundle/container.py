"""The bundle's container: the only code that reads or writes its tar framing.

A bundle is exactly: ustar headers (with a PAX extended header where a name or size needs one), the members'
data padded with zeros to 512-byte blocks, the end-of-archive marker (two zero blocks), and at most one tar
record (10 KiB) of zeros after it. Anything else is refused, and each refusal is decided from a bounded number
of bytes: an extended header is read only when its size header says at most :data:`MAX_EXTENDED_HEADER`, at most
:data:`MAX_EXTENDED_CHAIN` of them may precede a member, and a name may be at most :data:`MAX_NAME` bytes. A file
that ends before the end-of-archive marker is named as a truncated copy.

:class:`ContainerReader` walks the headers of a stream one at a time and hands out each member's data as a
bounded stream; it never decides what a member means (``verify.py`` does, against the signed manifest).
:class:`ContainerWriter` writes what export adds, in the same framing (full bundles padded to tar's 10 KiB
record, deltas ending right after the end-of-archive marker).

Example::

    with path.open("rb") as raw:
        reader = ContainerReader(raw, str(path))
        while (member := reader.next()) is not None:
            for chunk in reader.data(member): ...
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Protocol

from mirrorctl.errors import BundleRefused

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default record; writers pad the archive to a multiple of it
MAX_EXTENDED_HEADER = 8 * 1024
MAX_EXTENDED_CHAIN = 4
MAX_NAME = 4 * 1024
_CHUNK = 1024 * 1024
_ZERO = bytes(BLOCK)
# PAX keys a tar writer may set for a plain file; anything else (comment, GNU.sparse.*, charset) is refused.
_PAX_KEYS = frozenset({"path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"})

REGULAR_TYPES = (b"0", b"\x00")
_KINDS = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a device",
    b"4": "a device",
    b"5": "a directory",
    b"6": "a fifo",
    b"7": "a contiguous file",
    b"S": "a sparse file",
}


@dataclass(frozen=True, slots=True)
class Member:
    """One member's header: its name, tar type flag, data size, link target, and where its data starts."""

    name: str
    type: bytes
    size: int
    linkname: str
    offset: int  # of its first header (an extended header, when it has one)
    offset_data: int

    @property
    def is_file(self) -> bool:
        return self.type in REGULAR_TYPES

    @property
    def is_link(self) -> bool:
        return self.type in (b"1", b"2")

    def kind(self) -> str:
        """What the member is, for a refusal: "a symbolic link", "a directory", "of tar type 'Z'"."""
        if self.is_file:
            return "a regular file"
        return _KINDS.get(self.type, f"of tar type {self.type.decode('latin-1')!r}")


class ContainerReader:
    """One forward pass over the members of a bundle's tar; ``where`` names the bundle in refusals.

    The stream must be seekable only to skip data the caller did not read; headers and data are read in order."""

    def __init__(self, raw: IO[bytes], where: str) -> None:
        self._raw = raw
        self._where = where
        self._pos = 0
        self._next_header = 0  # where the next header starts, once the current member's data is passed
        self._done = False
        self._count = 0

    # --- headers -------------------------------------------------------------------------------------------
    def next(self) -> Member | None:
        """The next member, or None at the end-of-archive marker (and nothing but zero padding after it)."""
        if self._done:
            return None
        self._skip_to(self._next_header)
        start = self._pos
        pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        chain = 0
        while True:
            offset = self._pos
            block = self._read_block(offset)
            if block == _ZERO:
                if chain:
                    self._damaged(f"an extended header at offset {start} is followed by the end of the archive")
                self._end(offset)
                return None
            fields = self._parse_header(block, offset)
            kind, size = fields["type"], fields["size"]
            if kind in (b"x", b"g", b"L", b"K"):
                chain += 1
                if kind == b"g":
                    self._damaged(f"a global extended header (pax 'g') at offset {offset}; bundles have none")
                if chain > MAX_EXTENDED_CHAIN:
                    self._damaged(f"more than {MAX_EXTENDED_CHAIN} extended headers in a row at offset {start}")
                if size > MAX_EXTENDED_HEADER:
                    self._damaged(
                        f"an extended header at offset {offset} is {size} bytes, more than the "
                        f"{MAX_EXTENDED_HEADER} allowed"
                    )
                data = self._read_exact(size, "an extended header")
                self._read_padding(size)
                if kind == b"x":
                    pax.update(self._parse_pax(data, offset))
                elif kind == b"L":
                    long_name = _cstr(data)
                else:
                    long_link = _cstr(data)
                continue
            break
        name = pax.get("path") or long_name or fields["name"]
        link = pax.get("linkpath") or long_link or fields["linkname"]
        if "size" in pax:
            if not pax["size"].isdigit():
                self._damaged(f"the extended header at offset {start} has a bad size {pax['size'][:32]!r}")
            size = int(pax["size"])
        for what, value in (("name", name), ("link target", link)):
            if len(value.encode("utf-8", "surrogateescape")) > MAX_NAME:
                self._damaged(f"a member {what} at offset {start} is longer than {MAX_NAME} bytes")
        if kind == b"5":
            name = name.rstrip("/")  # writers mark a folder with a trailing slash too
        member = Member(name, kind, size, link, start, self._pos)
        self._next_header = self._pos + _padded(size)
        self._count += 1
        return member

    def _parse_header(self, block: bytes, offset: int) -> dict[str, Any]:
        stored = block[148:156]
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:] if b > 127)  # old writers sign bytes
        try:
            checksum = _number(stored)
        except ValueError:
            checksum = -1
        if checksum not in (unsigned, signed) or block[257:262] != b"ustar":
            if self._count == 0 and offset == 0:
                raise BundleRefused(f"{self._where}: not an (uncompressed) tar archive (no tar header at its start)")
            self._damaged(f"the header at offset {offset} is not a tar header (bad checksum or magic)")
        try:
            size = _number(block[124:136])
        except ValueError:
            self._damaged(f"the header at offset {offset} has a bad size field")
        name = _cstr(block[0:100])
        prefix = _cstr(block[345:500]) if block[257:263] == b"ustar\x00" else ""
        return {
            "name": f"{prefix}/{name}" if prefix else name,
            "linkname": _cstr(block[157:257]),
            "type": block[156:157],
            "size": size,
        }

    def _parse_pax(self, data: bytes, offset: int) -> dict[str, str]:
        out: dict[str, str] = {}
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos, pos + 12)
            length_text = data[pos:space] if space > 0 else b""
            if not length_text.isdigit() or int(length_text) <= space - pos:
                self._damaged(f"the extended header at offset {offset} is malformed")
            end = pos + int(length_text)
            record = data[space + 1 : end]
            if end > len(data) or not record.endswith(b"\n") or b"=" not in record:
                self._damaged(f"the extended header at offset {offset} is malformed")
            key, _, value = record[:-1].partition(b"=")
            key_text = key.decode("utf-8", "replace")
            if key_text not in _PAX_KEYS:
                self._damaged(
                    f"the extended header at offset {offset} sets {key_text[:64]!r}, which a bundle never uses"
                )
            out[key_text] = value.decode("utf-8", "surrogateescape")
            pos = end
        return out

    def _end(self, offset: int) -> None:
        second = self._raw.read(BLOCK)
        self._pos += len(second)
        if len(second) < BLOCK:
            self._truncated(offset)
        if second != _ZERO:
            self._damaged(f"a lone zero block at offset {offset} (tar's end-of-archive marker is two)")
        tail = self._raw.read(RECORD + 1)
        if len(tail) > RECORD or tail.count(0) != len(tail):
            self._damaged(
                f"bytes follow the end-of-archive marker at offset {offset + 2 * BLOCK}",
                hint="a bundle ends with the marker and zero padding; get an untouched copy",
            )
        self._done = True

    # --- data ----------------------------------------------------------------------------------------------
    def data(self, member: Member, size: int | None = None) -> Iterator[bytes]:
        """Exactly ``size`` (default: the member's) bytes of its data, at most 1 MiB at a time; then its padding,
        which must be zeros. A file that ends early is refused naming the member."""
        size = member.size if size is None else size
        self._skip_to(member.offset_data)
        remaining = size
        while remaining:
            chunk = self._raw.read(min(_CHUNK, remaining))
            if not chunk:
                raise BundleRefused(f"{self._where}: {member.name} is truncated (the bundle file ends early)")
            remaining -= len(chunk)
            self._pos += len(chunk)
            yield chunk
        if size == member.size:
            self._read_padding(size)

    def read_all(self, member: Member, cap: int) -> bytes:
        if member.size > cap:
            raise BundleRefused(
                f"{self._where}: {member.name} is {member.size} bytes, more than the {cap} allowed"
            )
        return b"".join(self.data(member))

    # --- bytes ---------------------------------------------------------------------------------------------
    def _skip_to(self, pos: int) -> None:
        if pos != self._pos:
            self._raw.seek(pos)
            self._pos = pos

    def _read_block(self, offset: int) -> bytes:
        block = self._raw.read(BLOCK)
        self._pos += len(block)
        if len(block) < BLOCK:
            if offset == 0 and self._count == 0:
                raise BundleRefused(f"{self._where}: not an (uncompressed) tar archive (shorter than one header)")
            self._truncated(offset)
        return block

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._raw.read(size)
        self._pos += len(data)
        if len(data) < size:
            self._truncated(self._pos)
        return data

    def _read_padding(self, size: int) -> None:
        pad = _padded(size) - size
        if pad:
            data = self._read_exact(pad, "padding")
            if data.count(0) != pad:
                self._damaged(f"the padding before offset {self._pos} is not zeros")

    def _truncated(self, offset: int) -> None:
        raise BundleRefused(
            f"{self._where}: the bundle ends at offset {offset} without tar's end-of-archive marker: "
            "a truncated copy",
            hint="copy the bundle again from the outside and compare its size",
        )

    def _damaged(self, what: str, hint: str = "get an untouched copy of the bundle") -> None:
        raise BundleRefused(f"{self._where}: damaged tar archive: {what}", hint=hint)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _cstr(field: bytes) -> str:
    end = field.find(b"\x00")
    return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """A tar numeric field: octal digits (NUL- or space-terminated), or GNU base-256 for large values."""
    if field[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(field[1:], "big")
        if field[:1] == b"\xff":
            raise ValueError("negative")
        return value
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    if any(c not in b"01234567" for c in text):
        raise ValueError(f"not octal: {text!r}")
    return int(text, 8)


# --- writing ---------------------------------------------------------------------------------------------------
class _Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


class ContainerWriter:
    """Writes members in the bundle framing to ``raw``; ``padded=False`` ends right after the end-of-archive
    marker (a delta: up to 10 KiB less for a small bump), else the archive is padded to tar's 10 KiB record."""

    def __init__(self, raw: _Sink, *, padded: bool, mtime: int) -> None:
        self._sink = raw if padded else _Unpadded(raw)
        self._mtime = mtime
        self._tar = tarfile.open(fileobj=self._sink, mode="w", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.close()
        else:
            self._tar.closed = True  # nothing more is written on the way out of a failure

    def add(self, name: str, size: int, source: BinaryIO) -> None:
        """A regular file of ``size`` bytes read from ``source``. A source that ends early is not an error here:
        the caller, which counts what it handed out, decides (export names the damaged blob)."""
        try:
            self._tar.addfile(_info(name, size, self._mtime), source)
        except OSError as exc:
            if exc.errno is not None:
                raise
            # tarfile's "unexpected end of data": the source is shorter than ``size``

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, len(data), io.BytesIO(data))

    def close(self) -> None:
        if isinstance(self._sink, _Unpadded):
            self._sink.limit = self._tar.offset + 2 * BLOCK  # the end-of-archive marker, then nothing
        self._tar.close()


class _Unpadded:
    """Passes writes through until ``limit`` bytes; drops what tarfile writes after it (record padding)."""

    def __init__(self, raw: _Sink) -> None:
        self._raw = raw
        self.written = 0
        self.limit: int | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self.limit is not None:
            data = memoryview(data)[: max(0, self.limit - self.written)]
        if len(data):
            self._raw.write(data)
        self.written += n
        return n

    def tell(self) -> int:
        return self.written


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    # Fixed metadata: no local user names, ids or times leak into the bundle.
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
