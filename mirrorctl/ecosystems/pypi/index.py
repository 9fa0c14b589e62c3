"""The upstream simple-API client: project pages (PEP 691 JSON, falling back to PEP 503 HTML), file records,
and Core Metadata (PEP 658/714 ``<file>.metadata`` when offered, else read from the wheel or sdist itself).

One :class:`IndexClient` per run: pages and metadata are cached (as shared tasks, so concurrent callers wait
for one request), requests are bounded, and transient failures are retried with backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import urldefrag, urljoin

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mirrorctl.errors import IntegrityError, NetworkError
from mirrorctl.net import is_transient, network_error, redact
from mirrorctl.progress import SILENT, Progress

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file as the upstream lists it."""

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
) -> FileRecord | None:
    """A file record, or None for files that are neither wheels nor sdists (eggs, .exe, bad names)."""
    try:
        if filename.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(filename)
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


def parse_json_page(doc: Any, page_url: str) -> list[FileRecord]:
    files = []
    for f in doc.get("files", []):
        if (
            not isinstance(f, dict)
            or not isinstance(f.get("filename"), str)
            or not isinstance(f.get("url"), str)
        ):
            continue
        hashes = f.get("hashes") or {}
        yanked = f.get("yanked", False)
        size = f.get("size")
        rec = parse_file(
            f["filename"],
            _absolute(page_url, f["url"]),
            sha256=hashes.get("sha256") if isinstance(hashes, dict) else None,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            requires_python=f.get("requires-python") if isinstance(f.get("requires-python"), str) else None,
            yanked=yanked is not False and yanked is not None,
            metadata=f.get("core-metadata", f.get("dist-info-metadata", False)),
        )
        if rec:
            files.append(rec)
    return files


def _absolute(page_url: str, url: str) -> str:
    # urljoin is costly across the tens of thousands of files big projects list; most URLs are absolute.
    if "#" in url:
        url = urldefrag(url)[0]
    return url if url.startswith(("https://", "http://")) else urljoin(page_url, url)


def parse_html_page(text: str, page_url: str) -> list[FileRecord]:
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


class IndexClient:
    """Reads one simple-API upstream. ``base_url`` is the index (``.../simple/``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        progress: Progress = SILENT,
        concurrency: int = 16,
        retries: int = 4,
        backoff: float = 0.25,
    ) -> None:
        self._client = client
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._progress = progress
        self._sem = asyncio.Semaphore(concurrency)
        self._retries = retries
        self._backoff = backoff
        self._pages: dict[str, asyncio.Task[list[FileRecord]]] = {}
        self._metadata: dict[str, asyncio.Task[CoreMetadata]] = {}
        self.downloads = 0  # whole files fetched only for their metadata (no PEP 658)

    def project_url(self, name: str) -> str:
        return f"{self.base_url}{canonicalize_name(name)}/"

    def project(self, name: str) -> Awaitable[list[FileRecord]]:
        """The files the upstream lists for a project; [] when it has no such project."""
        key = canonicalize_name(name)
        if key not in self._pages:
            self._pages[key] = asyncio.ensure_future(self._fetch_page(key))
        return asyncio.shield(self._pages[key])

    def metadata(self, record: FileRecord) -> Awaitable[CoreMetadata]:
        if record.filename not in self._metadata:
            self._metadata[record.filename] = asyncio.ensure_future(self._fetch_metadata(record))
        return asyncio.shield(self._metadata[record.filename])

    def cached_metadata(self, filename: str) -> CoreMetadata | None:
        task = self._metadata.get(filename)
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None
        return task.result()

    async def close(self) -> None:
        for task in (*self._pages.values(), *self._metadata.values()):
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._pages.values(), *self._metadata.values(), return_exceptions=True)

    async def _fetch_page(self, name: NormalizedName) -> list[FileRecord]:
        url = self.project_url(name)

        async def get() -> httpx.Response | None:
            resp = await self._client.get(url, headers={"Accept": ACCEPT})
            if resp.status_code == 404:
                return None
            resp.raise_for_status()
            return resp

        resp = await self._retrying(get, f"pypi project page {name}")
        if resp is None:
            return []
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        page_url = str(resp.url)
        if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json":
            try:
                return parse_json_page(resp.json(), page_url)
            except (json.JSONDecodeError, AttributeError) as exc:
                raise NetworkError(
                    f"pypi project page {name}: unreadable JSON from {redact(page_url)}"
                ) from exc
        if "html" in ctype:
            return parse_html_page(resp.text, page_url)
        raise NetworkError(
            f"pypi project page {name}: unexpected content type {ctype!r} from {redact(page_url)}",
            hint="the upstream URL must be a simple repository index (PEP 503/691), e.g. https://host/simple/",
        )

    async def _fetch_metadata(self, record: FileRecord) -> CoreMetadata:
        label = f"pypi {record.name} {record.version} ({record.filename})"
        if record.metadata_offered:
            raw = await self._download(record.url + ".metadata", f"{label} metadata")
            if record.metadata_sha256 and hashlib.sha256(raw).hexdigest() != record.metadata_sha256:
                raise IntegrityError(
                    f"{label}: metadata file does not match the sha256 the index lists",
                    hint="the upstream is inconsistent or tampered with; do not lock from it",
                )
            return parse_core_metadata(raw, True)
        # No PEP 658: the whole file is fetched to read its metadata (only for candidates the resolver tries).
        data = await self._download(record.url, label)
        self.downloads += 1
        if record.sha256 and hashlib.sha256(data).hexdigest() != record.sha256:
            raise IntegrityError(f"{label}: downloaded bytes do not match the sha256 the index lists")
        return parse_core_metadata(_read_metadata(data, record), False)

    async def _download(self, url: str, what: str) -> bytes:
        async def get() -> bytes:
            resp = await self._client.get(url)
            resp.raise_for_status()
            return resp.content

        return await self._retrying(get, what)

    async def file_size(self, record: FileRecord) -> int:
        """The size of a file the index lists without one (HTML pages): HEAD, else count the bytes."""
        if record.size is not None:
            return record.size

        async def head() -> int | None:
            resp = await self._client.head(record.url)
            resp.raise_for_status()
            length = resp.headers.get("content-length")
            return int(length) if length and length.isdigit() else None

        what = f"pypi {record.name} {record.version} ({record.filename})"
        size = await self._retrying(head, what)
        if size is None:
            size = len(await self._download(record.url, what))
        return size

    async def _retrying(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        attempt = 0
        while True:
            try:
                async with self._sem:
                    return await fn()
            except httpx.HTTPError as exc:
                if attempt < self._retries and is_transient(exc):
                    attempt += 1
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                err = network_error(exc, what)
                if attempt:
                    err.message += f" (after {attempt + 1} attempts)"
                raise err from exc


def _read_metadata(data: bytes, record: FileRecord) -> bytes:
    label = f"pypi {record.name} {record.version} ({record.filename})"
    try:
        if record.kind == "wheel":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return zf.read(_pick(zf.namelist(), ".dist-info/METADATA", label))
        if record.filename.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return zf.read(_pick(zf.namelist(), "/PKG-INFO", label))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
            member = tf.getmember(_pick(tf.getnames(), "/PKG-INFO", label))
            fh = tf.extractfile(member)
            if fh is None:
                raise NetworkError(f"{label}: PKG-INFO is not a regular file")
            return fh.read()
    except (zipfile.BadZipFile, tarfile.TarError, KeyError, OSError) as exc:
        raise NetworkError(f"{label}: cannot read its metadata: {exc}") from exc


def _pick(names: Iterable[str], suffix: str, label: str) -> str:
    # The top-level one: a wheel has exactly one <name>.dist-info/METADATA; an sdist has <base>/PKG-INFO.
    found = sorted((n for n in names if n.endswith(suffix) and n.count("/") == 1), key=len)
    if not found:
        raise NetworkError(f"{label}: no {suffix.lstrip('/')} inside")
    return found[0]
