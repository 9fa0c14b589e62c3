"""A wheel's ``*.dist-info/METADATA`` read with HTTP Range requests, without downloading the wheel (as pip's
"lazy wheel" does): the zip's end (end-of-central-directory record and central directory) with one suffix
request, then just the METADATA entry (local header + compressed data) with a second one, when the first did
not already cover it.

Anything unexpected (the server ignores Range, a Content-Range that does not fit, a zip structure that does
not add up, an encrypted or oddly compressed entry) raises :class:`NotLazy`, and the caller downloads the
whole file instead. Metadata read this way cannot be checked against the file's sha256 (only the whole file
can): that is acceptable for *resolution* only, because ``mirrorctl snapshot`` verifies every file's sha256
before anything is stored or bundled.

Example::

    raw = await read_wheel_metadata(fetch_range, size=record.size)   # bytes of METADATA
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# The first request asks for this many bytes from the end: for most wheels it holds the whole central
# directory and the METADATA entry (dist-info comes last in a wheel), so one round trip is enough.
TAIL = 128 * 1024
MAX_METADATA = 16 * 1024 * 1024  # a METADATA larger than this is not believed (zip-bomb guard)
_MAX_CD = 64 * 1024 * 1024

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CD_ENTRY = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")


class NotLazy(Exception):
    """This file cannot be read lazily here; download it whole."""


@dataclass(frozen=True, slots=True)
class RangeReply:
    """The bytes a Range request returned: ``data`` starts at ``start``; ``total`` is the file's size."""

    start: int
    data: bytes
    total: int


# fetch(first, last) -> bytes first..last inclusive; fetch(None, n) -> the last n bytes. Raises NotLazy when
# the server answers anything but a fitting 206.
RangeFetch = Callable[[int | None, int], Awaitable[RangeReply]]


class _Reader:
    """Serves byte ranges from what was already fetched, fetching only what is missing."""

    def __init__(self, fetch: RangeFetch, first: RangeReply) -> None:
        self.fetch = fetch
        self.total = first.total
        self.start, self.buf = first.start, first.data
        self.requests = 1

    async def read(self, offset: int, length: int) -> bytes:
        end = offset + length
        if offset < 0 or length < 0 or end > self.total:
            raise NotLazy(f"zip structure points outside the file ({offset}+{length} > {self.total})")
        if self.start <= offset and end <= self.start + len(self.buf):
            return self.buf[offset - self.start : end - self.start]
        if length == 0:
            return b""
        reply = await self.fetch(offset, end - 1)
        self.requests += 1
        if reply.start != offset or len(reply.data) != length or reply.total != self.total:
            raise NotLazy("the server answered another range than the one asked for")
        if reply.start + len(reply.data) == self.start:  # keep one contiguous buffer when they touch
            self.start, self.buf = reply.start, reply.data + self.buf
        return reply.data


async def read_wheel_metadata(
    fetch: RangeFetch, *, size: int | None, tail: int | None = None
) -> tuple[bytes, int]:
    """The raw METADATA of the wheel at the other end of ``fetch``, and how many requests it took."""
    tail = tail or TAIL
    first = await fetch(None, tail if size is None else min(tail, size))
    if size is not None and first.total != size:
        raise NotLazy(f"the server says the file has {first.total} bytes, the index says {size}")
    if first.start + len(first.data) != first.total:
        raise NotLazy("the suffix range does not end at the end of the file")
    reader = _Reader(fetch, first)
    cd_offset, cd_size = await _central_directory(reader, first)
    if cd_size > _MAX_CD:
        raise NotLazy(f"central directory of {cd_size} bytes")
    entry = _find_metadata(await reader.read(cd_offset, cd_size))
    raw = await _entry_bytes(reader, entry)
    return raw, reader.requests


async def _central_directory(reader: _Reader, first: RangeReply) -> tuple[int, int]:
    buf = first.data
    pos = buf.rfind(b"PK\x05\x06", max(0, len(buf) - (_EOCD.size + 0xFFFF)))
    if pos < 0 or pos + _EOCD.size > len(buf):
        raise NotLazy("no end-of-central-directory record in the file's tail")
    _sig, disk, cd_disk, _n_disk, entries, cd_size, cd_offset, _clen = _EOCD.unpack_from(buf, pos)
    if disk != 0 or cd_disk != 0:
        raise NotLazy("multi-disk zip")
    if 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:
        loc_at = first.start + pos - _ZIP64_LOCATOR.size
        sig, _disk, z64_at, _ndisks = _ZIP64_LOCATOR.unpack(await reader.read(loc_at, _ZIP64_LOCATOR.size))
        if sig != b"PK\x06\x07":
            raise NotLazy("zip64 locator missing")
        rec = _ZIP64_EOCD.unpack(await reader.read(z64_at, _ZIP64_EOCD.size))
        if rec[0] != b"PK\x06\x06":
            raise NotLazy("zip64 end-of-central-directory record missing")
        cd_size, cd_offset = rec[8], rec[9]
    if cd_offset + cd_size > first.start + pos:
        raise NotLazy("central directory overlaps its end record")
    return cd_offset, cd_size


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    method: int
    flags: int
    crc: int
    compressed: int
    uncompressed: int
    local_offset: int
    name_len: int
    extra_len: int


def _find_metadata(cd: bytes) -> _Entry:
    found: list[_Entry] = []
    pos = 0
    while pos + _CD_ENTRY.size <= len(cd):
        fields = _CD_ENTRY.unpack_from(cd, pos)
        if fields[0] != b"PK\x01\x02":
            raise NotLazy("bad central directory entry")
        flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, local = fields[10], fields[11], fields[12], fields[16]
        head = pos + _CD_ENTRY.size
        raw_name = cd[head : head + name_len]
        extra = cd[head + name_len : head + name_len + extra_len]
        pos = head + name_len + extra_len + comment_len
        # Checked on the raw bytes first (the suffix is ASCII, the same in UTF-8 and cp437): decoding every
        # name of a big wheel's directory (thousands of entries; cp437 is a slow codec) was most of this loop.
        if not raw_name.endswith(b".dist-info/METADATA"):
            continue
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        # The top-level one, as the whole-file path picks it: <name>.dist-info/METADATA.
        if not (name.endswith(".dist-info/METADATA") and name.count("/") == 1):
            continue
        usize, csize, local = _zip64_sizes(extra, usize, csize, local)
        found.append(_Entry(name, method, flags, crc, csize, usize, local, name_len, extra_len))
    if pos != len(cd):
        raise NotLazy("central directory size does not add up")
    if not found:
        raise NotLazy("no .dist-info/METADATA in the central directory")
    return sorted(found, key=lambda e: len(e.name))[0]


def _zip64_sizes(extra: bytes, usize: int, csize: int, local: int) -> tuple[int, int, int]:
    if 0xFFFFFFFF not in (usize, csize, local):
        return usize, csize, local
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, pos)
        if tag == 0x0001:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            out = []
            for v in (usize, csize, local):
                out.append(values.pop(0) if v == 0xFFFFFFFF and values else v)
            return out[0], out[1], out[2]
        pos += 4 + length
    raise NotLazy("zip64 sizes missing")


async def _entry_bytes(reader: _Reader, e: _Entry) -> bytes:
    if e.flags & 0x1:
        raise NotLazy("encrypted METADATA entry")
    if e.method not in (0, 8) or e.uncompressed > MAX_METADATA or e.compressed > MAX_METADATA:
        raise NotLazy(f"METADATA entry method {e.method}, {e.uncompressed} bytes")
    # Local extra fields may differ from the central ones: ask for a little more than the central one says.
    guess = _LOCAL.size + e.name_len + e.extra_len + e.compressed + 256
    head = await reader.read(e.local_offset, min(guess, reader.total - e.local_offset))
    if len(head) < _LOCAL.size:
        raise NotLazy("local header truncated")
    local = _LOCAL.unpack_from(head, 0)
    if local[0] != b"PK\x03\x04":
        raise NotLazy("bad local header")
    data_at = _LOCAL.size + local[9] + local[10]
    if data_at + e.compressed <= len(head):
        data = head[data_at : data_at + e.compressed]
    else:
        data = await reader.read(e.local_offset + data_at, e.compressed)
    if e.method == 0:
        raw = data
    else:
        inflater = zlib.decompressobj(-15)
        try:
            raw = inflater.decompress(data, MAX_METADATA + 1)
        except zlib.error as exc:
            raise NotLazy(f"METADATA does not inflate: {exc}") from None
    if len(raw) != e.uncompressed or zlib.crc32(raw) != e.crc:
        raise NotLazy("METADATA size or CRC does not match the central directory")
    return raw
