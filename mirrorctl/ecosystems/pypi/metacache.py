"""Small on-disk caches under the store that make a repeated ``mirrorctl lock`` cheap.

* :class:`MetadataCache`: a file's Core Metadata by the file's sha256 (``<store>/cache/pypi-metadata/
  <sha256>.metadata``). A file with one sha256 has one METADATA forever, so entries never expire.
* :class:`PageCache`: project pages with their ``ETag`` / ``Last-Modified`` (``<store>/cache/pypi-pages/``),
  for conditional requests; only pages the upstream sent a validator for are kept.

* :class:`ParsedPageCache`: the file records read from a page, by a digest of the page's bytes (and of how
  it was read), so an unchanged page of a big project costs a download and a hash, not a parse.

Entries are written temp -> rename and carry a digest of their own body, so a torn or damaged entry reads as
missing (and is fetched again) rather than as wrong data. Nothing here is trusted for what gets *stored*: the
snapshot checks every file against the lock's sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import msgspec

_MAGIC = b"mirrorctl-cache-v1 "


def _write(path: Path, body: bytes) -> None:
    # No fsync: a cache entry lost in a crash is fetched again; a torn one fails its digest check.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    tmp.write_bytes(_MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    os.replace(tmp, path)


def _read(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, sep, body = data.partition(b"\n")
    if not sep or not header.startswith(_MAGIC):
        return None
    if header[len(_MAGIC) :].decode("ascii", "replace") != hashlib.sha256(body).hexdigest():
        return None
    return body


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class MetadataCache:
    """Core Metadata by the sha256 of the file it belongs to."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, file_sha256: str) -> Path | None:
        return self.root / f"{file_sha256}.metadata" if _is_sha256(file_sha256) else None

    def get(self, file_sha256: str) -> bytes | None:
        path = self._path(file_sha256)
        return None if path is None else _read(path)

    def put(self, file_sha256: str, raw: bytes) -> None:
        path = self._path(file_sha256)
        if path is not None:
            with contextlib.suppress(OSError):  # a cache that cannot be written only costs speed
                _write(path, raw)


class PageCache:
    """Project pages kept with the validators the upstream sent (``ETag``, ``Last-Modified``), for
    conditional requests."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, url: str) -> Path:
        return self.root / f"{hashlib.sha256(url.encode()).hexdigest()}.page"

    def get(self, url: str) -> tuple[dict[str, str], bytes] | None:
        """(headers to replay: validators and content type, body), or None."""
        data = _read(self._path(url))
        if data is None:
            return None
        meta, sep, body = data.partition(b"\n")
        try:
            headers = json.loads(meta)
        except ValueError:
            return None
        if not sep or not isinstance(headers, dict) or headers.get("url") != url:
            return None
        return {str(k): str(v) for k, v in headers.items()}, body

    def put(self, url: str, headers: dict[str, str], body: bytes) -> None:
        meta = json.dumps({**headers, "url": url}, sort_keys=True).encode()
        with contextlib.suppress(OSError):
            _write(self._path(url), meta + b"\n" + body)


class ParsedPageCache:
    """Rows of file records parsed from one page, valid only for the exact digest they were made from."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, url: str) -> Path:
        return self.root / f"{hashlib.sha256(url.encode()).hexdigest()}.parsed"

    def get(self, url: str, digest: str) -> list[list[Any]] | None:
        data = _read(self._path(url))
        if data is None:
            return None
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return None
        if not isinstance(doc, dict) or doc.get("digest") != digest or not isinstance(doc.get("rows"), list):
            return None
        return list(doc["rows"])

    def put(self, url: str, digest: str, rows: list[list[Any]]) -> None:
        with contextlib.suppress(OSError):
            # msgspec: the same JSON as json.dumps, several times faster (tens of thousands of rows)
            _write(self._path(url), msgspec.json.encode({"digest": digest, "rows": rows}))


class UrlCache:
    """Where each locked file was listed on one upstream, by the file's sha256 (``<store>/cache/pypi-urls/``).

    ``mirrorctl lock`` records the URLs it saw so that ``mirrorctl snapshot`` right after it need not download
    every project page again. Keyed by the upstream's URL: another upstream (a proxy, a different index) never
    uses them. Only *where* to fetch from comes from here; what is fetched is checked against the lock's sha256.
    """

    def __init__(self, root: Path, upstream_url: str) -> None:
        self.path = root / f"{hashlib.sha256(upstream_url.encode()).hexdigest()[:32]}.json"

    def get(self) -> dict[str, str]:
        body = _read(self.path)
        if body is None:
            return {}
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return {k: v for k, v in data.items() if _is_sha256(k) and isinstance(v, str)} if isinstance(data, dict) else {}

    def add(self, urls: dict[str, str]) -> None:
        merged = {**self.get(), **{k: v for k, v in urls.items() if _is_sha256(k)}}
        _write(self.path, json.dumps(merged, sort_keys=True).encode())
