"""What the registry says about a version, read out of its verified tarball: ``package/package.json`` and a
few facts about the file list (the same facts the public registry computes at publish time).

Nothing is extracted to disk. The tarball is read as a stream (gzip, then tar in ``r|`` mode): member names
are only looked at, never used as paths, and only package.json's bytes are kept, up to a cap. npm strips the
first path component of every member whatever it is called (``package/`` by convention, but some old
tarballs use the package name), so this does too. When a path occurs twice the last one wins, as it does when
npm extracts the tarball.

Parsing a tarball costs one pass over its decompressed bytes, so results are cached by the tarball's
sha256: in memory for the process, and as JSON under ``<store>/cache/npm-manifests/<sha256>.json`` so a
restarted server does not read every tarball again. A cache file is only a copy of what the blob says (the
blob is content-addressed), so a damaged or foreign cache file is ignored and rewritten.

Example::

    info = read_tarball_info(store.blob_path(artifact.sha256), where="npm left-pad 1.3.0")
    info.manifest["dependencies"], info.file_count, info.has_shrinkwrap
"""

from __future__ import annotations

import gzip
import json
import tarfile
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mirrorctl.errors import IntegrityError
from mirrorctl.inside.store import atomic_write

# package.json files are small; a few MiB leaves room for the largest real ones (with embedded readmes).
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
# One pass over the decompressed tarball: caps against a decompression bomb in a damaged or hostile blob.
MAX_UNPACKED_BYTES = 4 * 1024 * 1024 * 1024
MAX_MEMBERS = 500_000
_MEMORY_CACHE_SIZE = 4096
CACHE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class TarballInfo:
    manifest: dict[str, Any]  # package.json as the author wrote it
    file_count: int  # regular files, as the registry's dist.fileCount
    unpacked_size: int  # their total size, as dist.unpackedSize
    has_shrinkwrap: bool  # npm-shrinkwrap.json at the package root (the registry's _hasShrinkwrap)
    has_binding_gyp: bool  # binding.gyp at the root: npm runs node-gyp unless an install script is set

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "manifest": self.manifest,
            "fileCount": self.file_count,
            "unpackedSize": self.unpacked_size,
            "hasShrinkwrap": self.has_shrinkwrap,
            "hasBindingGyp": self.has_binding_gyp,
        }

    @classmethod
    def from_json(cls, doc: Any) -> TarballInfo | None:
        """None for anything that is not a cache entry of this format (then the tarball is read again)."""
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or not isinstance(doc.get("manifest"), dict):
            return None
        try:
            return cls(
                doc["manifest"],
                int(doc["fileCount"]),
                int(doc["unpackedSize"]),
                bool(doc["hasShrinkwrap"]),
                bool(doc["hasBindingGyp"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader:
    """A read-only stream over the decompressed bytes that refuses to go past MAX_UNPACKED_BYTES."""

    def __init__(self, raw: _Readable, where: str) -> None:
        self._raw = raw
        self._where = where
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self.count > MAX_UNPACKED_BYTES:
            raise IntegrityError(
                f"{self._where}: the tarball unpacks to more than {MAX_UNPACKED_BYTES} bytes",
                hint="the blob is not an npm package tarball; run `mirrorctl verify`",
            )
        return data


def _package_path(member_name: str) -> str | None:
    """The member's path inside the package (first component stripped, as npm does), or None."""
    parts = [p for p in member_name.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 2 or ".." in parts:
        return None  # npm's tar refuses entries that climb out; they are no part of the package
    return "/".join(parts[1:])


def read_tarball_info(path: Path, *, where: str) -> TarballInfo:
    """Read ``path`` (a gzip tarball) in one streaming pass; IntegrityError if it is not a usable npm package."""
    hint = "the stored tarball is damaged or not an npm package; run `mirrorctl verify`"
    manifest_bytes: bytes | None = None
    files: dict[str, int] = {}  # package path -> size (the last entry of a path wins)
    try:
        with open(path, "rb") as f, gzip.GzipFile(fileobj=f, mode="rb") as gz:
            reader = _CountingReader(gz, where)
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for count, member in enumerate(tar, start=1):
                    if count > MAX_MEMBERS:
                        raise IntegrityError(f"{where}: the tarball has more than {MAX_MEMBERS} entries", hint=hint)
                    rel = _package_path(member.name)
                    if rel is None:
                        continue
                    if not member.isfile():
                        files.pop(rel, None)  # a later non-file entry replaces an earlier file on extraction
                        continue
                    files[rel] = member.size
                    if rel == "package.json":
                        if member.size > MAX_MANIFEST_BYTES:
                            raise IntegrityError(
                                f"{where}: package.json is {member.size} bytes (more than {MAX_MANIFEST_BYTES})",
                                hint=hint,
                            )
                        extracted = tar.extractfile(member)
                        manifest_bytes = extracted.read() if extracted is not None else None
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise IntegrityError(f"{where}: cannot read the tarball: {exc}", hint=hint) from exc
    if manifest_bytes is None or "package.json" not in files:
        raise IntegrityError(f"{where}: the tarball has no package/package.json", hint=hint)
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"{where}: package.json is not valid JSON: {exc}", hint=hint) from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where}: package.json is not a JSON object", hint=hint)
    return TarballInfo(
        manifest=manifest,
        file_count=len(files),
        unpacked_size=sum(files.values()),
        has_shrinkwrap="npm-shrinkwrap.json" in files,
        has_binding_gyp="binding.gyp" in files,
    )


class ManifestCache:
    """Tarball facts by sha256: memory first, then ``cache_dir/<sha256>.json``, then the tarball itself.

    ``cache_dir=None`` keeps the cache in memory only. Safe to call from several threads: two threads that
    miss at once both read the tarball and get equal results.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir
        self._memory: OrderedDict[str, TarballInfo] = OrderedDict()
        self._lock = threading.Lock()
        self.tarballs_read = 0  # for tests: how many times a tarball was actually parsed

    def get(self, sha256: str, blob_path: Path, *, where: str) -> TarballInfo:
        with self._lock:
            info = self._memory.get(sha256)
            if info is not None:
                self._memory.move_to_end(sha256)
                return info
        info = self._read_disk(sha256)
        if info is None:
            info = read_tarball_info(blob_path, where=where)
            with self._lock:
                self.tarballs_read += 1
            self._write_disk(sha256, info)
        with self._lock:
            self._memory[sha256] = info
            while len(self._memory) > _MEMORY_CACHE_SIZE:
                self._memory.popitem(last=False)
        return info

    def _cache_file(self, sha256: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{sha256}.json"

    def _read_disk(self, sha256: str) -> TarballInfo | None:
        path = self._cache_file(sha256)
        if path is None:
            return None
        try:
            return TarballInfo.from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            return None

    def _write_disk(self, sha256: str, info: TarballInfo) -> None:
        path = self._cache_file(sha256)
        if path is None:
            return
        try:
            atomic_write(path, json.dumps(info.to_json(), sort_keys=True, separators=(",", ":")).encode())
        except OSError:
            pass  # a read-only store still serves; it only parses again after a restart
