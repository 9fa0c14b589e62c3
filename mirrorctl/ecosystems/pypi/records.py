"""File records as a simple-API page lists them: parsing PEP 691 JSON and PEP 503 HTML pages into
:class:`FileRecord` tuples, Core Metadata into :class:`CoreMetadata`, and the compact rows the parsed-page
cache keeps. Written for speed: a big project's page lists tens of thousands of files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, NamedTuple
from urllib.parse import urldefrag, urljoin

import msgspec
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version


class FileRecord(NamedTuple):
    """One file as the upstream lists it. A NamedTuple: big projects list tens of thousands of files, and a
    tuple is several times cheaper to build than a frozen dataclass."""

    filename: str
    url: str  # absolute, without fragment
    name: NormalizedName
    version: Version
    kind: str  # "wheel" | "sdist"
    tags: frozenset[Tag]
    sha256: str | None
    size: int | None
    requires_python: str | None
    yanked: bool
    metadata_sha256: str | None  # PEP 658/714 hash of <url>.metadata, when offered
    metadata_offered: bool
    yank_reason: str | None = None  # PEP 592: why it was yanked, when the index says (yanked is True then)

    def python_ok(self, full_version: str) -> bool:
        return not self.requires_python or _python_ok(self.requires_python, full_version)


@lru_cache(maxsize=4096)
def _python_ok(requires_python: str, full_version: str) -> bool:
    # Cached: big projects list thousands of files with a handful of distinct requires-python values.
    try:
        return SpecifierSet(requires_python).contains(Version(full_version), prereleases=True)
    except InvalidSpecifier:
        return False  # a file whose requires-python cannot be read is not a safe pick


# Says whether a wheel with these tags may be kept (installs on some target); None keeps every wheel.
WheelFilter = Callable[[frozenset[Tag]], bool]


class FileFilter:
    """What a page's parse keeps: wheels whose tags ``wheel_ok`` accepts (decided once per distinct tag
    string, before the wheel's name and version are read), and sdists unless ``sdists`` is False (a profile
    that never takes sdists: they would only be parsed to be ignored)."""

    def __init__(self, wheel_ok: WheelFilter | None = None, *, sdists: bool = True) -> None:
        self._ok = wheel_ok
        self.sdists = sdists
        self._by_tags: dict[frozenset[Tag], bool] = {}  # tag sets are shared objects (_wheel_tags): cheap keys
        self._by_str: dict[str, frozenset[Tag] | None] = {}

    def __call__(self, tags: frozenset[Tag]) -> bool:
        ok = self._by_tags.get(tags)
        if ok is None:
            ok = self._by_tags[tags] = self._ok is None or self._ok(tags)
        return ok

    def wheel_tags(self, tag_string: str) -> frozenset[Tag] | None:
        """The tags of a wheel's tag string ("cp312-cp312-manylinux_2_17_x86_64"), None when refused;
        raises InvalidWheelFilename as packaging does."""
        try:
            return self._by_str[tag_string]
        except KeyError:
            pass
        tags = _wheel_tags(tag_string)
        kept = self._by_str[tag_string] = tags if self(tags) else None
        return kept


def _parse_wheel(
    filename: str, wheel_ok: WheelFilter | FileFilter | None = None
) -> tuple[NormalizedName, Version, frozenset[Tag]] | None:
    """``parse_wheel_filename``, with its costly parts cached: a big project lists thousands of wheels but
    only a few hundred versions, one name and a few dozen tag sets. Each part is still parsed by packaging
    (the name and tags through a synthetic filename, the version by ``Version`` as packaging does), so what
    is accepted or refused is exactly what packaging says. None when ``wheel_ok`` refuses the tags (checked
    first: most wheels of big projects are for other platforms)."""
    parts = filename[:-4].rsplit("-", 3)
    if len(parts) != 4:
        parse_wheel_filename(filename)  # raises the precise error
        raise InvalidWheelFilename(filename)
    tag_string = filename[len(parts[0]) + 1 : -4]
    if isinstance(wheel_ok, FileFilter):
        found = wheel_ok.wheel_tags(tag_string)
        if found is None:
            return None
        tags = found
    else:
        tags = _wheel_tags(tag_string)
        if wheel_ok is not None and not wheel_ok(tags):
            return None
    name, version = _wheel_head(parts[0])
    return name, version, tags


@lru_cache(maxsize=16384)
def _wheel_head(head: str) -> tuple[NormalizedName, Version]:
    name_part, sep, version_part = head.partition("-")
    if not sep or "-" in version_part:  # a build tag (or a malformed name): packaging reads the whole head
        name, version, _build, _tags = parse_wheel_filename(f"{head}-py3-none-any.whl")
        return name, version
    # As parse_wheel_filename does for a filename without build tag: the name checked and normalized, then
    # Version(version part), an invalid one refusing the file.
    return _wheel_name(name_part), _version(version_part)


@lru_cache(maxsize=1024)
def _wheel_name(name_part: str) -> NormalizedName:
    return parse_wheel_filename(f"{name_part}-0-py3-none-any.whl")[0]


@lru_cache(maxsize=16384)
def _version(text: str) -> Version:
    return Version(text)


@lru_cache(maxsize=4096)
def _wheel_tags(tags: str) -> frozenset[Tag]:
    return parse_wheel_filename(f"x-0-{tags}.whl")[3]


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    requires_dist: tuple[Requirement, ...]
    requires_python: str | None
    raw: bytes
    from_pep658: bool


def parse_file(
    filename: str,
    url: str,
    *,
    sha256: str | None,
    size: int | None,
    requires_python: str | None,
    yanked: bool | str,
    metadata: Any,
    wheel_ok: WheelFilter | FileFilter | None = None,
    parsed: tuple[NormalizedName, Version, frozenset[Tag]] | None = None,
) -> FileRecord | None:
    """A file record, or None for files that are neither wheels nor sdists (eggs, .exe, bad names), and for
    wheels ``wheel_ok`` refuses. ``parsed``: the wheel's name, version and tags when already known.
    ``yanked``: True, or the reason (PEP 592; an empty reason is a yank without one)."""
    try:
        if filename.endswith(".whl"):
            parsed = parsed or _parse_wheel(filename, wheel_ok)
            if parsed is None:
                return None
            name, version, tags = parsed
            kind = "wheel"
        elif filename.endswith((".tar.gz", ".zip")):
            if isinstance(wheel_ok, FileFilter) and not wheel_ok.sdists:
                return None
            name, version = parse_sdist_filename(filename)
            tags, kind = frozenset(), "sdist"
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    meta_hash, offered = _metadata_offer(metadata)
    return FileRecord(
        filename,
        url,
        name,
        version,
        kind,
        frozenset(tags),
        sha256,
        size,
        requires_python or None,
        yanked is not False,
        meta_hash,
        offered,
        (yanked or None) if isinstance(yanked, str) else None,
    )


def _metadata_offer(metadata: Any) -> tuple[str | None, bool]:
    """(sha256 of the PEP 658/714 metadata file, whether it is offered) from a page's metadata field."""
    if isinstance(metadata, dict):
        return metadata.get("sha256"), True
    if isinstance(metadata, str) and metadata not in ("", "false"):
        algo, _, value = metadata.partition("=")
        return (value if algo == "sha256" and value else None), True
    return None, metadata is True


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.links.append((self._current, "".join(self._text).strip()))
            self._current = None


class _JsonHashes(msgspec.Struct):
    sha256: Any = None  # other algorithms are skipped unread


class _JsonFile(msgspec.Struct):
    """The fields of a PEP 691 file entry that mirrorctl reads; the others are skipped without being built.
    ``Any`` where the lenient reader below checks the type itself, so both read a page alike."""

    filename: str
    url: str
    hashes: _JsonHashes = msgspec.field(default_factory=_JsonHashes)
    size: Any = None
    requires_python: Any = msgspec.field(default=None, name="requires-python")
    yanked: Any = False
    core_metadata: Any = msgspec.field(default=msgspec.UNSET, name="core-metadata")
    dist_info_metadata: Any = msgspec.field(default=False, name="dist-info-metadata")


class _JsonPage(msgspec.Struct):
    files: list[_JsonFile] = msgspec.field(default_factory=list)


_PAGE_DECODER = msgspec.json.Decoder(_JsonPage)


def parse_json_page(
    doc: Any, page_url: str, wheel_ok: WheelFilter | FileFilter | None = None
) -> list[FileRecord]:
    """The files of a PEP 691 page: ``doc`` is the page's bytes, or the decoded JSON document.

    Bytes are decoded straight into the few fields used (a big project's page is megabytes of JSON; most
    of it is never read); a page that does not fit that shape (a field of an unexpected type) is read by the
    lenient reader instead, which skips what it cannot use, so the result is the same either way."""
    if isinstance(doc, bytes | bytearray):
        try:
            return _records_from_structs(_PAGE_DECODER.decode(doc).files, page_url, wheel_ok)
        except msgspec.DecodeError:  # ValidationError included: an odd shape, or not JSON msgspec reads
            doc = json.loads(doc)  # raises ValueError for a body that is not JSON at all
    # Written for speed (exact type checks, one lookup per key): pages of big projects list 5,000+ files.
    files = []
    for f in doc.get("files", []):
        if type(f) is not dict:
            continue
        filename, url = f.get("filename"), f.get("url")
        if type(filename) is not str or type(url) is not str:
            continue
        parsed = None
        if wheel_ok is not None and filename.endswith(".whl"):
            # First, before anything else is read: most wheels of big projects are for other platforms.
            try:
                parsed = _parse_wheel(filename, wheel_ok)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if parsed is None:
                continue
        hashes = f.get("hashes")
        sha256 = hashes.get("sha256") if type(hashes) is dict else None
        size = f.get("size")
        requires_python = f.get("requires-python")
        yanked = f.get("yanked", False)
        rec = parse_file(
            filename,
            _absolute(page_url, url),
            sha256=sha256 if type(sha256) is str else None,
            size=size if type(size) is int else None,
            requires_python=requires_python if type(requires_python) is str else None,
            yanked=_yank(yanked),
            metadata=f["core-metadata"] if "core-metadata" in f else f.get("dist-info-metadata", False),
            wheel_ok=wheel_ok,
            parsed=parsed,
        )
        if rec:
            files.append(rec)
    return files


_NO_TAGS: frozenset[Tag] = frozenset()


def _records_from_structs(
    entries: Sequence[_JsonFile], page_url: str, wheel_ok: WheelFilter | FileFilter | None
) -> list[FileRecord]:
    """:func:`parse_json_page`'s lenient loop and :func:`parse_file` in one, over decoded entries: the same
    checks, in the same order, without a call per file."""
    keep_sdists = not isinstance(wheel_ok, FileFilter) or wheel_ok.sdists
    files = []
    for f in entries:
        filename = f.filename
        try:
            if filename.endswith(".whl"):
                parsed = _parse_wheel(filename, wheel_ok)
                if parsed is None:
                    continue
                name, version, tags = parsed
                kind = "wheel"
            elif filename.endswith((".tar.gz", ".zip")):
                if not keep_sdists:
                    continue
                name, version = parse_sdist_filename(filename)
                tags, kind = _NO_TAGS, "sdist"
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        sha256, size, requires_python, yanked = f.hashes.sha256, f.size, f.requires_python, f.yanked
        metadata = f.core_metadata if f.core_metadata is not msgspec.UNSET else f.dist_info_metadata
        meta_hash, offered = _metadata_offer(metadata)
        files.append(
            FileRecord(
                filename,
                _absolute(page_url, f.url),
                name,
                version,
                kind,
                tags,
                sha256 if type(sha256) is str else None,
                size if type(size) is int else None,
                requires_python if type(requires_python) is str and requires_python else None,
                yanked is not False and yanked is not None,
                meta_hash,
                offered,
                yanked if type(yanked) is str and yanked else None,
            )
        )
    return files


def _yank(value: Any) -> bool | str:
    """PEP 691's ``yanked``: false (or absent, or null), true, or the reason as a string."""
    if value is False or value is None:
        return False
    return value if type(value) is str else True


def _absolute(page_url: str, url: str) -> str:
    # urljoin is costly across the tens of thousands of files big projects list; most URLs are absolute.
    if "#" in url:
        url = urldefrag(url)[0]
    return url if url.startswith(("https://", "http://")) else urljoin(page_url, url)


def parse_html_page(
    text: str, page_url: str, wheel_ok: WheelFilter | FileFilter | None = None
) -> list[FileRecord]:
    parser = _LinkParser()
    parser.feed(text)
    files = []
    for attrs, anchor_text in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page_url, href))
        algo, _, value = fragment.partition("=")
        filename = anchor_text or url.rsplit("/", 1)[-1]
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata", "false"))
        rec = parse_file(
            filename,
            url,
            sha256=value if algo == "sha256" and value else None,
            size=None,
            requires_python=attrs.get("data-requires-python"),
            yanked=(attrs["data-yanked"] or True) if "data-yanked" in attrs else False,
            metadata="true" if metadata is None else metadata,  # a bare attribute means "offered"
            wheel_ok=wheel_ok,
        )
        if rec:
            files.append(rec)
    return files


_HEADERS_END = re.compile(rb"\n\r?\n")


def parse_core_metadata(raw: bytes, from_pep658: bool) -> CoreMetadata:
    # Only the header block goes to the parser: it stops there anyway, but would first split the whole body
    # (a long README) into lines. Cut just after the blank line, so the parser sees the same end of headers.
    end = _HEADERS_END.search(raw)
    headers = BytesHeaderParser().parsebytes(raw[: end.end()] if end else raw)
    reqs = []
    for line in headers.get_all("Requires-Dist") or []:
        try:
            reqs.append(Requirement(str(line)))
        except InvalidRequirement:
            continue  # as pip does: an unreadable requirement of a dependency is skipped, not fatal
    rp = headers.get("Requires-Python")
    return CoreMetadata(tuple(reqs), str(rp) if rp else None, raw, from_pep658)


_PARSER_VERSION = "4"  # bump when parsing changes what a record holds, or the row layout


def _to_row(r: FileRecord) -> list[Any]:
    tags = "-".join(r.filename[:-4].rsplit("-", 3)[1:]) if r.kind == "wheel" else None  # as _parse_wheel
    return [r.filename, r.url, r.name, str(r.version), r.kind, tags, r.sha256,
            r.size, r.requires_python, r.yanked, r.metadata_sha256, r.metadata_offered, r.yank_reason]


def _rows_to_records(rows: list[list[Any]]) -> list[FileRecord]:
    """Records back from rows this parser wrote for the same page bytes (the entry's own digest is checked
    on read), so nothing is validated twice; versions and tag sets are shared, as a fresh parse shares them."""
    versions: dict[str, Version] = {}
    out = []
    for filename, url, name, version, kind, tags, sha256, size, rp, yanked, meta_sha, offered, reason in rows:
        v = versions.get(version)
        if v is None:
            v = versions[version] = Version(version)
        out.append(
            FileRecord(filename, url, name, v, kind, _wheel_tags(tags) if tags else frozenset(), sha256, size,
                       rp, yanked, meta_sha, offered, reason)
        )
    return out


def _memoized(wheel_ok: WheelFilter) -> FileFilter:
    return FileFilter(wheel_ok)
