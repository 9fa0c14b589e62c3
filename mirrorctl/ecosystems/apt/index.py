"""The lock's hot path over one Packages index: checked and decompressed while it downloads, then read for only the
fields resolution and the lock use.

A full bookworm index is ~63,000 stanzas and 50 MB of text, most of it Description; the lock needs 13 short fields
per stanza. :class:`IndexCheck` hashes and decompresses each chunk as it arrives (the network wait pays for the
decompression) and hands out the text only after the compressed bytes matched the Release's size and SHA256 line;
the decompressed text is bounded by, and checked against, the Release's line for the uncompressed index when the
Release lists one (it always does on Debian mirrors), so a decompression bomb stops at that size.
:func:`scan_index` then reads only Package, Architecture and Provides of every stanza and leaves the rest of each
stanza's text to be read (by :func:`read_index`: the needed fields with one compiled regex, values decoded in one
call) when resolution first looks at that package, a few hundred of 63,000.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from mirrorctl.errors import IntegrityError

from .release import IndexEntry, VerifiedRelease

# What resolution (resolve.BinaryPackage) and the lock (Filename, Size, SHA256) read from a stanza.
FIELDS = (
    "Package", "Version", "Architecture", "Multi-Arch", "Essential", "Priority",
    "Depends", "Pre-Depends", "Recommends", "Provides", "Filename", "Size", "SHA256",
)

# At a line start: one of FIELDS with its value and continuation lines (a line starting with space or tab), or an
# empty line (the stanza separator: "\n" followed by "\n"). Any other line (Description and its continuations,
# other fields) is skipped by the regex engine without a Python object. Field names are matched as Debian writes
# them (python-debian's reader is case-insensitive; Packages indexes never vary the case).
_FIELD_OR_BREAK = re.compile(
    rb"\n(?:(" + b"|".join(re.escape(f.encode()) for f in FIELDS) + rb"):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)|(?=\n))"
)
_NAMES = {f.encode(): f for f in FIELDS}


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _decompressor(path: str) -> _Decompressor | None:
    if path.endswith(".gz"):
        return zlib.decompressobj(wbits=31)
    if path.endswith(".xz"):
        return lzma.LZMADecompressor()
    if path.endswith(".bz2"):
        return bz2.BZ2Decompressor()
    return None


# Without an uncompressed line in the Release, the text may be at most this many times the compressed size (a
# Packages index compresses about 4x with gzip and 6x with xz).
_MAX_RATIO = 64


class IndexCheck:
    """Size, SHA256 and decompression of one index (``main/binary-amd64/Packages.gz``), fed chunk by chunk.

    Example::

        check = IndexCheck(release, "main/binary-amd64/Packages.gz")
        for chunk in chunks:
            check.feed(chunk)
        text = check.finish()   # raises IntegrityError naming the file unless every check passed
    """

    def __init__(
        self, release: VerifiedRelease, path: str, on_text: Callable[[bytes], None] | None = None
    ) -> None:
        """``on_text``, when given, receives the decompressed text in stanza-aligned pieces as it arrives (not yet
        verified: the receiver must not use it before :meth:`finish` returned); :meth:`finish` then returns b""."""
        entry = release.entries.get(path)
        if entry is None:
            raise IntegrityError(
                f"index {path} of suite {release.suite!r} is not listed in its Release",
                hint="the Release does not vouch for it; check the component and architecture",
            )
        self._suite = release.suite
        self.entry = entry
        self._hash = hashlib.sha256()
        self._size = 0
        self._dec = _decompressor(path)
        plain = release.entries.get(path.rsplit(".", 1)[0]) if self._dec is not None else None
        self._plain: IndexEntry | None = plain
        self._limit = plain.size if plain is not None else entry.size * _MAX_RATIO + 1024 * 1024
        self._out: list[bytes] = []
        self._out_size = 0
        self._on_text = on_text
        self._tail = b""  # text after the last stanza break, held back until the next piece or finish
        self._plain_hash = hashlib.sha256()
        self.seconds = 0.0  # spent in feed and finish, for the benchmark

    def _refuse(self, what: str, hint: str | None = None) -> IntegrityError:
        return IntegrityError(f"index {self.entry.path} of suite {self._suite!r}: {what}", hint=hint)

    def feed(self, chunk: bytes) -> None:
        started = time.perf_counter()
        try:
            self._feed(chunk)
        finally:
            self.seconds += time.perf_counter() - started

    def _feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.entry.size:
            raise self._refuse(f"more than the {self.entry.size} bytes its Release line says",
                               hint="the mirror serves something else than the signed Release describes")
        self._hash.update(chunk)
        if self._dec is None:
            self._text(chunk)
            return
        try:
            while chunk:
                out = self._dec.decompress(chunk, self._limit - self._out_size + 1)
                self._out_size += len(out)
                if self._out_size > self._limit:
                    raise self._refuse(f"decompresses to more than {self._limit} bytes",
                                       hint="the Release vouches for a smaller index")
                self._text(out)
                # A finished stream followed by more data: concatenated members, as gzip and xz allow.
                chunk = self._dec.unused_data if self._dec.eof else b""
                if chunk:
                    self._dec = _decompressor(self.entry.path)
                    assert self._dec is not None
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise self._refuse(f"cannot be decompressed: {exc}") from exc

    def _text(self, out: bytes) -> None:
        if not out:
            return
        self._plain_hash.update(out)
        if self._on_text is None:
            self._out.append(out)
            return
        buf = self._tail + out
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._tail = buf
            return
        self._tail = buf[cut + 2:]
        self._on_text(buf[:cut + 1])

    def finish(self) -> bytes:
        """The index text, once size and SHA256 matched the Release (and the uncompressed line, if listed)."""
        started = time.perf_counter()
        try:
            return self._finish()
        finally:
            self.seconds += time.perf_counter() - started

    def _finish(self) -> bytes:
        if self._size != self.entry.size:
            raise self._refuse(f"size {self._size}, Release says {self.entry.size}")
        digest = self._hash.hexdigest()
        if digest != self.entry.sha256:
            raise self._refuse(f"sha256 {digest}, Release says {self.entry.sha256}",
                               hint="the mirror served a different index than the signed Release describes")
        if self._dec is not None and not self._dec.eof:
            raise self._refuse("cannot be decompressed: the compressed stream ends early")
        if self._dec is None:
            self._out_size = self._size
        if self._plain is not None:
            plain_digest = self._plain_hash.hexdigest()
            if self._out_size != self._plain.size or plain_digest != self._plain.sha256:
                raise self._refuse(
                    f"decompresses to {self._out_size} bytes with sha256 {plain_digest}, the Release line for "
                    f"{self._plain.path} says {self._plain.size} bytes and {self._plain.sha256}")
        if self._on_text is not None:
            if self._tail:
                self._on_text(self._tail)
            self._tail = b""
            return b""
        text = b"".join(self._out)
        self._out = []
        return text


def check_index_bytes(release: VerifiedRelease, path: str, data: bytes) -> bytes:
    """:class:`IndexCheck` over bytes already in memory (tests, and indexes read from disk)."""
    check = IndexCheck(release, path)
    for start in range(0, len(data), 1 << 20):
        check.feed(data[start:start + (1 << 20)])
    return check.finish()


def read_index(text: bytes) -> list[dict[str, str]]:
    """The stanzas of a verified Packages index, each reduced to the :data:`FIELDS` it has.

    Measured on the 50 MB bookworm amd64 index: about 0.75 s, against about 1.5 s for
    :func:`.release.read_stanzas` (every field, every line) and about 15 s for python-debian's full reader. Versions
    and relations stay strings; :mod:`.resolve` parses them with python-debian for the packages it examines.
    """
    found = _FIELD_OR_BREAK.findall(b"\n" + text)
    # One decode for all values (a NUL never occurs in a Packages index: it is text), not one per field.
    try:
        values = b"\0".join([value for _, value in found]).decode("utf-8").split("\0")
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"Packages index: a field is not UTF-8: {exc}", hint="the index is not deb822") from exc
    if len(values) != len(found):
        raise IntegrityError("Packages index: a field value contains a NUL byte", hint="the index is not deb822")
    names = _NAMES
    stanzas: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for (name, _), value in zip(found, values, strict=True):
        if name:
            fields[names[name]] = value.rstrip()
        elif fields:
            stanzas.append(fields)
            fields = {}
    if fields:
        stanzas.append(fields)
    for fields in stanzas:
        if "Package" not in fields or "Version" not in fields:
            raise IntegrityError(f"Packages index: a stanza without Package or Version: {fields!r:.120}")
    return stanzas


# The fields every stanza is read for (the universe of names, architectures and virtual names); the others are read
# per stanza, only for the packages resolution examines. A line of one of these fields that is not plain
# ("Name: value" with one space, no continuation line) sends the whole index to :func:`read_index` instead, so both
# readers give the same values whatever the index looks like.
SCANNED = ("Package", "Architecture", "Provides")
_NOT_PLAIN = re.compile(rb"\n(?:Package|Architecture|Provides):(?:(?! [^ \t\n])|[^\n]*\n[ \t])")


class LazyStanza(Mapping[str, str]):
    """One stanza's fields: the scanned ones at once, the others parsed from the stanza's text on first use."""

    __slots__ = ("_full", "_known", "_text")

    def __init__(self, text: bytes, known: dict[str, str]) -> None:
        self._text = text
        self._known = known
        self._full: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._full is None:
            stanzas = read_index(self._text)
            if len(stanzas) != 1 or any(stanzas[0].get(k) != self._known.get(k) for k in SCANNED):
                raise IntegrityError(
                    f"Packages index: the stanza of {self._known.get('Package')!r} reads differently in full",
                    hint="the index is not well-formed deb822",
                )
            self._full = stanzas[0]
        return self._full

    def __getitem__(self, key: str) -> str:
        if key in SCANNED:
            return self._known[key]
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def scan_index(text: bytes) -> list[Mapping[str, str]]:
    """The stanzas of a verified Packages index, each a :class:`LazyStanza` (or, for an index whose scanned fields
    are not all plain one-line values, the dicts of :func:`read_index`).

    A stanza's other fields, Version included, are checked as :func:`read_index` checks them when it is read in
    full: a stanza without a Version is refused once resolution looks at it, and never matters otherwise.
    Measured on the 50 MB bookworm amd64 index: scan and packages about 0.7 s against 1.1 s for
    :func:`read_index` and packages; a lock reads the other fields of a few hundred stanzas out of 63,000 (an
    apt-bench lock: 3.0 s -> 2.3 s, 4.7 s -> 3.7 s of CPU).
    """
    if _NOT_PLAIN.search(b"\n" + text):
        return list(read_index(text))
    stanzas: list[Mapping[str, str]] = []
    try:
        for chunk in text.split(b"\n\n"):
            at = 0 if chunk.startswith(b"Package: ") else chunk.find(b"\nPackage: ") + 1
            if at == 0 and not chunk.startswith(b"Package: "):
                if chunk.strip():
                    raise IntegrityError(f"Packages index: a stanza without Package: {chunk[:120]!r}")
                continue
            end = chunk.find(b"\n", at)
            known = {"Package": chunk[at + 9 : end if end >= 0 else len(chunk)].decode("utf-8").rstrip()}
            for name, tag in (("Architecture", b"\nArchitecture: "), ("Provides", b"\nProvides: ")):
                i = chunk.find(tag)
                if i >= 0:
                    i += len(tag)
                    end = chunk.find(b"\n", i)
                    known[name] = chunk[i : end if end >= 0 else len(chunk)].decode("utf-8").rstrip()
            stanzas.append(LazyStanza(chunk, known))
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"Packages index: a field is not UTF-8: {exc}", hint="the index is not deb822") from exc
    return stanzas
