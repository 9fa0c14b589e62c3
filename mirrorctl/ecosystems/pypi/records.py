"""File records as a simple-API page lists them: parsing PEP 691 JSON and PEP 503 HTML pages into
:class:`FileRecord` tuples, Core Metadata into :class:`CoreMetadata`, and the compact rows the parsed-page
cache keeps. Written for speed: a big project's page lists tens of thousands of files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, NamedTuple
from urllib.parse import urldefrag, urljoin

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


def _parse_wheel(
    filename: str, wheel_ok: WheelFilter | None = None
) -> tuple[NormalizedName, Version, frozenset[Tag]] | None:
    """``parse_wheel_filename``, with its two costly halves cached: a big project lists thousands of wheels
    but only a few hundred versions and a few dozen tag sets. Each half is still parsed by packaging (a
    synthetic filename per half), so what is accepted or refused is exactly what packaging says. None when
    ``wheel_ok`` refuses the tags (checked first: most wheels of big projects are for other platforms)."""
    parts = filename[:-4].rsplit("-", 3)
    if len(parts) != 4:
        parse_wheel_filename(filename)  # raises the precise error
        raise InvalidWheelFilename(filename)
    tags = _wheel_tags("-".join(parts[1:]))
    if wheel_ok is not None and not wheel_ok(tags):
        return None
    name, version = _wheel_head(parts[0])
    return name, version, tags


@lru_cache(maxsize=16384)
def _wheel_head(head: str) -> tuple[NormalizedName, Version]:
    name, version, _build, _tags = parse_wheel_filename(f"{head}-py3-none-any.whl")
    return name, version


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
    yanked: bool,
    metadata: Any,
    wheel_ok: WheelFilter | None = None,
    parsed: tuple[NormalizedName, Version, frozenset[Tag]] | None = None,
) -> FileRecord | None:
    """A file record, or None for files that are neither wheels nor sdists (eggs, .exe, bad names), and for
    wheels ``wheel_ok`` refuses. ``parsed``: the wheel's name, version and tags when already known."""
    try:
        if filename.endswith(".whl"):
            parsed = parsed or _parse_wheel(filename, wheel_ok)
            if parsed is None:
                return None
            name, version, tags = parsed
            kind = "wheel"
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            tags, kind = frozenset(), "sdist"
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    meta_hash: str | None = None
    offered = False
    if isinstance(metadata, dict):
        offered = True
        meta_hash = metadata.get("sha256")
    elif isinstance(metadata, str) and metadata not in ("", "false"):
        offered = True
        algo, _, value = metadata.partition("=")
        meta_hash = value if algo == "sha256" and value else None
    elif metadata is True:
        offered = True
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
        yanked,
        meta_hash,
        offered,
    )


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


def parse_json_page(doc: Any, page_url: str, wheel_ok: WheelFilter | None = None) -> list[FileRecord]:
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
            yanked=yanked is not False and yanked is not None,
            metadata=f["core-metadata"] if "core-metadata" in f else f.get("dist-info-metadata", False),
            parsed=parsed,
        )
        if rec:
            files.append(rec)
    return files


def _absolute(page_url: str, url: str) -> str:
    # urljoin is costly across the tens of thousands of files big projects list; most URLs are absolute.
    if "#" in url:
        url = urldefrag(url)[0]
    return url if url.startswith(("https://", "http://")) else urljoin(page_url, url)


def parse_html_page(text: str, page_url: str, wheel_ok: WheelFilter | None = None) -> list[FileRecord]:
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
            yanked="data-yanked" in attrs,
            metadata="true" if metadata is None else metadata,  # a bare attribute means "offered"
            wheel_ok=wheel_ok,
        )
        if rec:
            files.append(rec)
    return files


def parse_core_metadata(raw: bytes, from_pep658: bool) -> CoreMetadata:
    headers = BytesHeaderParser().parsebytes(raw)
    reqs = []
    for line in headers.get_all("Requires-Dist") or []:
        try:
            reqs.append(Requirement(str(line)))
        except InvalidRequirement:
            continue  # as pip does: an unreadable requirement of a dependency is skipped, not fatal
    rp = headers.get("Requires-Python")
    return CoreMetadata(tuple(reqs), str(rp) if rp else None, raw, from_pep658)


_PARSER_VERSION = "2"  # bump when parsing changes what a record holds, or the row layout


def _to_row(r: FileRecord) -> list[Any]:
    tags = "-".join(r.filename[:-4].rsplit("-", 3)[1:]) if r.kind == "wheel" else None  # as _parse_wheel
    return [r.filename, r.url, r.name, str(r.version), r.kind, tags, r.sha256,
            r.size, r.requires_python, r.yanked, r.metadata_sha256, r.metadata_offered]


def _rows_to_records(rows: list[list[Any]]) -> list[FileRecord]:
    """Records back from rows this parser wrote for the same page bytes (the entry's own digest is checked
    on read), so nothing is validated twice; versions and tag sets are shared, as a fresh parse shares them."""
    versions: dict[str, Version] = {}
    out = []
    for filename, url, name, version, kind, tags, sha256, size, rp, yanked, meta_sha, offered in rows:
        v = versions.get(version)
        if v is None:
            v = versions[version] = Version(version)
        out.append(
            FileRecord(filename, url, name, v, kind, _wheel_tags(tags) if tags else frozenset(), sha256, size,
                       rp, yanked, meta_sha, offered)
        )
    return out


def _memoized(wheel_ok: WheelFilter) -> WheelFilter:
    seen: dict[frozenset[Tag], bool] = {}  # tag sets are shared objects (_wheel_tags): cheap keys

    def check(tags: frozenset[Tag]) -> bool:
        ok = seen.get(tags)
        if ok is None:
            ok = seen[tags] = wheel_ok(tags)
        return ok

    return check
