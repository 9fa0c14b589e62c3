"""A module zip checked as the go command checks it (golang.org/x/mod ``zip.CheckZip``), and hashed in the same
pass: a zip that passes is one the go command inside will extract, and its ``h1:`` is what go.sum and the
checksum database say.

The rules, all Go's except the last two, which are mirrorctl's stricter reading of what Go's Unzip refuses:

* the module path and version are valid and canonical (``module.Check``), the zip at most 500 MiB;
* every entry is under ``<module>@<version>/``, its rest a clean file path (``module.CheckFilePath``);
* no two entries equal under case folding, no entry both a file and a directory;
* ``go.mod`` only at the root, spelled lowercase, at most 16 MiB; ``LICENSE`` at most 16 MiB;
* the declared uncompressed sizes add up to at most 500 MiB;
* each entry's bytes are exactly its declared size (read in bounded chunks: a zip bomb stops at its
  declared size), and no entry is a symbolic link.

    with open(zip_path, "rb") as f:
        checked = check_zip(f, "example.com/m", "v1.0.0")   # raises ModuleZipRefused naming the entry
    checked.h1                                              # "h1:..."
"""

from __future__ import annotations

import hashlib
import posixpath
import stat
import zipfile
from dataclasses import dataclass
from typing import IO

from mirrorctl.ecosystems.go import modpath
from mirrorctl.ecosystems.go.dirhash import CHUNK, Hash1, HashError
from mirrorctl.errors import IntegrityError, UserError, shorten

MAX_ZIP = 500 << 20
MAX_GO_MOD = 16 << 20
MAX_LICENSE = 16 << 20


class ModuleZipRefused(IntegrityError):
    """A zip the go command would not accept for ``module``@``version``; ``entry`` names the file at fault
    (None when the zip as a whole is)."""

    def __init__(self, module: str, version: str, reason: str, *, entry: str | None = None) -> None:
        self.module = module
        self.version = version
        self.reason = reason
        self.entry = entry
        where = f" entry {shorten(entry)!r}" if entry is not None else ""
        super().__init__(
            f"go module zip {shorten(module)}@{shorten(version)}{where}: {reason}",
            hint="the upstream served a zip the go command would refuse; nothing was stored",
        )


@dataclass(frozen=True, slots=True)
class CheckedZip:
    h1: str
    files: tuple[tuple[str, int], ...]  # (path inside the module, size), in zip order
    size: int  # uncompressed total


def _fold(text: str) -> str:
    # Go's strToFold: every rune to one spelling of its case class.
    return "".join(min(c, c.lower(), c.upper()) if len(c.lower()) == len(c.upper()) == 1 else c for c in text)


class _Collisions:
    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, bool]] = {}

    def check(self, name: str, is_dir: bool) -> str | None:
        while True:
            fold = _fold(name)
            other = self._seen.get(fold)
            if other is not None:
                if other[0] != name:
                    return f"case-insensitive file name collision: {other[0]!r} and {name!r}"
                if other[1] != is_dir:
                    return f"entry {name!r} is both a file and a directory"
                if not is_dir:
                    return f"multiple entries for file {name!r}"
            else:
                self._seen[fold] = (name, is_dir)
            parent = posixpath.dirname(name)
            if parent == "":
                return None
            name, is_dir = parent, True


def _open_zip(source: IO[bytes], module: str, version: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise ModuleZipRefused(module, version, f"not a readable zip file: {exc}") from exc


def check_zip(source: IO[bytes], module: str, version: str) -> CheckedZip:
    """Check ``source`` (a seekable binary file) as the zip of ``module``@``version`` and compute its ``h1:``.
    Raises :class:`ModuleZipRefused` on the first rule broken."""
    if modpath.canonical_version(version) != version:
        raise ModuleZipRefused(
            module, version, f"version is not canonical (should be {modpath.canonical_version(version)!r})"
        )
    try:
        modpath.check(module, version)
    except UserError as exc:
        raise ModuleZipRefused(module, version, str(exc)) from exc
    zip_size = source.seek(0, 2)
    source.seek(0)
    if zip_size > MAX_ZIP:
        raise ModuleZipRefused(module, version, f"module zip file is too large ({zip_size} bytes; limit is {MAX_ZIP})")
    with _open_zip(source, module, version) as archive:
        entries = _check_entries(archive.infolist(), module, version)
        acc = Hash1()
        files: list[tuple[str, int]] = []
        total = 0
        for info, name in entries:
            size = _read_entry(archive, info, module, version, acc)
            if name is not None:
                files.append((name, size))
            total += size
        try:
            h1 = acc.value()
        except HashError as exc:  # pragma: no cover - names with newlines are refused by CheckFilePath first
            raise ModuleZipRefused(module, version, str(exc)) from exc
    return CheckedZip(h1=h1, files=tuple(files), size=total)


def _check_entries(infos: list[zipfile.ZipInfo], module: str, version: str) -> list[tuple[zipfile.ZipInfo, str | None]]:
    prefix = f"{module}@{version}/"
    collisions = _Collisions()
    declared = 0
    out: list[tuple[zipfile.ZipInfo, str | None]] = []
    for info in infos:
        raw = info.orig_filename

        def refuse(reason: str, raw: str = raw) -> ModuleZipRefused:
            return ModuleZipRefused(module, version, reason, entry=raw)

        if not raw.startswith(prefix):
            raise refuse(f"path does not have prefix {prefix!r}")
        name = raw[len(prefix) :]
        if name == "":
            out.append((info, None))
            continue
        is_dir = name.endswith("/")
        if is_dir:
            name = name[:-1]
        if posixpath.normpath(name) != name or name.startswith("/"):
            raise refuse("file path is not clean")
        try:
            modpath.check_file_path(name)
        except modpath.InvalidPath as exc:
            raise refuse(str(exc)) from exc
        if (err := collisions.check(name, is_dir)) is not None:
            raise refuse(err)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise refuse("a symbolic link (module zips hold regular files only)")
        if is_dir:
            out.append((info, None))
            continue
        base = posixpath.basename(name)
        if base.lower() == "go.mod":
            if base != name:
                raise refuse("go.mod file not in module root directory")
            if name != "go.mod":
                raise refuse("go.mod files must have lowercase names")
        declared += info.file_size
        if declared > MAX_ZIP:
            raise refuse(f"total uncompressed size of module contents too large (max size is {MAX_ZIP} bytes)")
        if name == "go.mod" and info.file_size > MAX_GO_MOD:
            raise refuse(f"go.mod file too large (max size is {MAX_GO_MOD} bytes)")
        if name == "LICENSE" and info.file_size > MAX_LICENSE:
            raise refuse(f"LICENSE file too large (max size is {MAX_LICENSE} bytes)")
        out.append((info, name))
    return out


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, module: str, version: str, acc: Hash1) -> int:
    """Hash one entry, reading at most its declared size plus one chunk."""
    h = hashlib.sha256()
    size = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > info.file_size:
                    raise ModuleZipRefused(
                        module,
                        version,
                        f"holds more than its declared {info.file_size} bytes",
                        entry=info.orig_filename,
                    )
                h.update(chunk)
    except ModuleZipRefused:
        raise
    except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError, RuntimeError) as exc:
        # RuntimeError: an encrypted entry; the others: corrupt data, a bad CRC, an unknown compression
        raise ModuleZipRefused(module, version, f"unreadable: {exc}", entry=info.orig_filename) from exc
    if size != info.file_size:
        raise ModuleZipRefused(
            module, version, f"holds {size} bytes, not its declared {info.file_size}", entry=info.orig_filename
        )
    acc.add(info.orig_filename, h.hexdigest())
    return size
