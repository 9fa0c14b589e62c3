"""Go's ``h1:`` hash (golang.org/x/mod ``sumdb/dirhash`` Hash1), what go.sum and the checksum database record.

``h1:`` is base64(sha256 of the lines ``"<sha256 hex of the file>  <file name>\\n"``, one per file, sorted by
name). For a module zip the names are the zip's entry names (``<module>@<version>/<file>``); for the
``<version>/go.mod`` line it is one file named ``go.mod``::

    gomod_hash(b"module example.com/m\\n")          # "h1:..." as in "example.com/m v1.0.0/go.mod h1:..."
    with open("m.zip", "rb") as f:
        zip_hash(f)                                   # "h1:..." as in "example.com/m v1.0.0 h1:..."

The zip is read entry by entry in bounded chunks; nothing is extracted. :func:`Hash1` takes any
(name, stream) pairs, so modzip checks and hashes a zip in one pass.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable
from typing import IO

from mirrorctl.errors import IntegrityError, shorten

CHUNK = 1 << 16


class HashError(IntegrityError):
    """Files that have no ``h1:`` hash (a name with a newline: Go refuses to hash it)."""


class Hash1:
    """Accumulates (name, sha256) pairs in any order; :meth:`value` sorts them as Go does."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, str]] = []

    def add(self, name: str, sha256_hex: str) -> None:
        if "\n" in name:
            raise HashError(f"file name {shorten(name)!r} has a newline: dirhash cannot hash it")
        self._lines.append((name, sha256_hex))

    def add_stream(self, name: str, stream: IO[bytes]) -> int:
        """Hash ``stream`` to its end in chunks; returns its length."""
        h = hashlib.sha256()
        size = 0
        while chunk := stream.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
        self.add(name, h.hexdigest())
        return size

    def value(self) -> str:
        # Go sorts the names as byte strings; UTF-8 keeps code point order, which is what sorted() uses.
        summary = "".join(f"{digest}  {name}\n" for name, digest in sorted(self._lines))
        return "h1:" + base64.b64encode(hashlib.sha256(summary.encode("utf-8")).digest()).decode("ascii")


def hash1(files: Iterable[tuple[str, bytes]]) -> str:
    """``h1:`` over in-memory files: ``hash1([("go.mod", data)])``."""
    acc = Hash1()
    for name, data in files:
        acc.add(name, hashlib.sha256(data).hexdigest())
    return acc.value()


def gomod_hash(data: bytes) -> str:
    """The ``<version>/go.mod h1:`` hash of a go.mod's bytes (the ``.mod`` file a GOPROXY serves)."""
    return hash1([("go.mod", data)])


def zip_hash(source: IO[bytes] | str) -> str:
    """The ``h1:`` of a module zip over all its entries, as Go's ``dirhash.HashZip``. This does not check the
    zip is a valid module zip: :func:`mirrorctl.ecosystems.go.modzip.check_zip` does both."""
    acc = Hash1()
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            with archive.open(info) as stream:
                acc.add_stream(info.orig_filename, stream)
    return acc.value()
