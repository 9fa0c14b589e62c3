"""The upstream simple-API client: project pages (PEP 691 JSON, falling back to PEP 503 HTML), file records,
and Core Metadata (PEP 658/714 ``<file>.metadata`` when offered, else read from the wheel with HTTP Range
requests, else from the whole wheel or sdist).

Parsing pages and metadata lives in :mod:`.records`. One :class:`IndexClient` per run: pages and metadata
are cached (as shared tasks, so concurrent callers wait for one request), requests are bounded, and transient
failures are retried with backoff. Given a store, it also keeps metadata by file sha256 and pages on disk
(:mod:`.metacache`), reads metadata from files already in the store, and puts every whole file it had to
download (once its sha256 is verified) into the store, so ``mirrorctl snapshot`` does not download it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import secrets
import tarfile
import zipfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
)
from packaging.version import InvalidVersion

from mirrorctl.errors import DigestMismatch, IntegrityError, NetworkError
from mirrorctl.inside.store import Store
from mirrorctl.net import RetryPolicy, redact, retrying
from mirrorctl.progress import SILENT, Progress

from .lazywheel import NotLazy, RangeReply, read_wheel_metadata
from .metacache import MetadataCache, PageCache, ParsedPageCache, UrlCache
from .records import (  # noqa: F401 - re-exported: the resolver and tests import them from here
    _PARSER_VERSION,
    CoreMetadata,
    FileFilter,
    FileRecord,
    WheelFilter,
    _memoized,
    _rows_to_records,
    _to_row,
    parse_core_metadata,
    parse_file,
    parse_html_page,
    parse_json_page,
)
from .slots import METADATA, PAGE, Slots

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
T = TypeVar("T")
_CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+)$")


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
        store: Store | None = None,
        lazy_wheels: bool = True,
        wheel_ok: WheelFilter | None = None,
        filter_key: str = "",
        sdists: bool = True,
    ) -> None:
        self._client = client
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._progress = progress
        self._sem = Slots(concurrency)  # metadata reads are served before queued page downloads
        self._retry = RetryPolicy(retries=retries)
        self._store = store
        self._lazy_wheels = lazy_wheels
        # sdists=False: a profile that never takes an sdist; its pages' sdists are not even parsed
        self._wheel_ok = FileFilter(wheel_ok, sdists=sdists) if wheel_ok or not sdists else None
        # names what wheel_ok keeps (e.g. the target ids), for the parse cache
        self._filter_key = f"{filter_key};sdists={sdists}"
        cache_root = store.root / "cache" if store is not None else None
        self._meta_cache = MetadataCache(cache_root / "pypi-metadata") if cache_root else None
        self._page_cache = PageCache(cache_root / "pypi-pages") if cache_root else None
        keyed = wheel_ok is None or filter_key  # a filter nobody named could change under the same key
        self._parsed_cache = ParsedPageCache(cache_root / "pypi-pages") if cache_root and keyed else None
        self.url_cache = UrlCache(cache_root / "pypi-urls", self.base_url) if cache_root else None
        self._pages: dict[str, asyncio.Task[list[FileRecord]]] = {}
        self._metadata: dict[str, asyncio.Task[CoreMetadata]] = {}
        self._writes: set[asyncio.Future[None]] = set()  # cache writes in flight (see _write_later)
        self.downloads = 0  # whole files fetched only for their metadata (no PEP 658, no usable Range)
        self.range_reads = 0  # wheels whose METADATA was read with Range requests
        self.cache_hits = 0  # metadata taken from the store (cache or a stored file), no request
        self.stored = 0  # whole files verified and put into the store while locking

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
        await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _write_later(self, write: Callable[[], None]) -> None:
        """Run a cache write (best effort, file I/O) off the event loop, which the resolver threads wait on;
        :meth:`close` waits for it."""
        fut = asyncio.get_running_loop().run_in_executor(None, write)
        self._writes.add(fut)
        fut.add_done_callback(self._writes.discard)

    async def unfiltered(self, name: str) -> list[FileRecord]:
        """Every wheel and sdist the page lists, with none of the filters this client was made with (wheels
        for no target, sdists a profile never takes): to explain a failed resolution. Read again (the
        page cache answers with 304 when it can) rather than kept: it is needed only when one fails."""
        key = canonicalize_name(name)
        got = await self._retrying(lambda: self._get_page(key), f"pypi project page {key}")
        return [] if got is None else self._parse_page(key, *got, filtered=False)

    async def _fetch_page(self, name: NormalizedName) -> list[FileRecord]:
        url = self.project_url(name)
        got = await self._retrying(lambda: self._get_page(name), f"pypi project page {name}")
        if got is None:
            return []
        if self._parsed_cache is None:
            return self._parse_page(name, *got)
        # Same bytes, same URL, same filter, same parser: same records. Hashing 2 MB costs ~2 ms, parsing it
        # ~50-100 ms, so an unchanged page of a big project is not parsed twice.
        h = hashlib.sha256(f"{_PARSER_VERSION}\0{self._filter_key}\0{got[0]}\0{got[1]}\0".encode())
        h.update(got[2])
        rows = self._parsed_cache.get(url, h.hexdigest())
        if rows is not None:
            with contextlib.suppress(ValueError, TypeError, InvalidVersion, InvalidWheelFilename):
                return _rows_to_records(rows)
        records = self._parse_page(name, *got)
        parsed_cache, digest = self._parsed_cache, h.hexdigest()
        self._write_later(lambda: parsed_cache.put(url, digest, [_to_row(r) for r in records]))
        return records

    async def _get_page(self, name: NormalizedName) -> tuple[str, str, bytes] | None:
        """(content type, final URL, body) of a project page, None when the upstream has no such project."""
        url = self.project_url(name)
        cached = self._page_cache.get(url) if self._page_cache else None
        headers = {"Accept": ACCEPT}
        if cached:  # a conditional request: the upstream answers 304 (no body) when the page is unchanged
            if "etag" in cached[0]:
                headers["If-None-Match"] = cached[0]["etag"]
            if "last-modified" in cached[0]:
                headers["If-Modified-Since"] = cached[0]["last-modified"]

        resp = await self._client.get(url, headers=headers)
        if resp.status_code == 404:
            return None
        if resp.status_code == 304 and cached:
            return cached[0]["content-type"], cached[0]["page-url"], cached[1]
        resp.raise_for_status()
        ctype = resp.headers.get("content-type", "")
        if self._page_cache and ("etag" in resp.headers or "last-modified" in resp.headers):
            keep = {k: resp.headers[k] for k in ("etag", "last-modified") if k in resp.headers}
            keep |= {"content-type": ctype, "page-url": str(resp.url)}
            page_cache, body = self._page_cache, resp.content
            self._write_later(lambda: page_cache.put(url, keep, body))
        return ctype, str(resp.url), resp.content

    def _parse_page(
        self, name: str, ctype: str, page_url: str, body: bytes, *, filtered: bool = True
    ) -> list[FileRecord]:
        keep = self._wheel_ok if filtered else None
        ctype = ctype.split(";")[0].strip().lower()
        if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json":
            try:
                return parse_json_page(body, page_url, keep)
            except (ValueError, AttributeError) as exc:
                raise NetworkError(
                    f"pypi project page {name}: unreadable JSON from {redact(page_url)}"
                ) from exc
        if "html" in ctype:
            return parse_html_page(body.decode("utf-8", "replace"), page_url, keep)
        raise NetworkError(
            f"pypi project page {name}: unexpected content type {ctype!r} from {redact(page_url)}",
            hint="the upstream URL must be a simple repository index (PEP 503/691), e.g. https://host/simple/",
        )

    async def _fetch_metadata(self, record: FileRecord) -> CoreMetadata:
        sha, cache = record.sha256, self._meta_cache
        if record.metadata_offered:
            return await self._pep658_metadata(record)
        # A file already in the store was verified against its sha256 when it was stored: the best source.
        if sha and self._store is not None and self._store.has_blob(sha, record.size):
            stored = await asyncio.to_thread(_read_metadata, self._store.blob_path(sha), record)
            self.cache_hits += 1
            if cache and cache.get(sha) != stored:  # replaces what a Range read may have cached
                self._write_later(lambda: cache.put(sha, stored))
            return parse_core_metadata(stored, False)
        cached = cache.get(sha) if cache and sha else None
        if cached is not None:
            self.cache_hits += 1
            return parse_core_metadata(cached, False)
        raw: bytes | None = None
        if record.kind == "wheel" and self._lazy_wheels:
            with contextlib.suppress(NotLazy):  # the server or the file does not allow it: whole file below
                raw = await self._lazy_metadata(record)
        if raw is None:
            raw = await self._whole_metadata(record)
        if cache and sha:
            self._write_later(lambda: cache.put(sha, raw))
        return parse_core_metadata(raw, False)

    async def _pep658_metadata(self, record: FileRecord) -> CoreMetadata:
        label, sha, cache = _label(record), record.sha256, self._meta_cache
        cached = cache.get(sha) if cache and sha else None
        if cached is not None and record.metadata_sha256 == hashlib.sha256(cached).hexdigest():
            self.cache_hits += 1
            return parse_core_metadata(cached, True)
        raw = await self._download(record.url + ".metadata", f"{label} metadata", rank=METADATA)
        if record.metadata_sha256 and hashlib.sha256(raw).hexdigest() != record.metadata_sha256:
            raise IntegrityError(
                f"{label}: metadata file does not match the sha256 the index lists",
                hint="the upstream is inconsistent or tampered with; do not lock from it",
            )
        if cache and sha and record.metadata_sha256:
            self._write_later(lambda: cache.put(sha, raw))
        return parse_core_metadata(raw, True)

    async def _lazy_metadata(self, record: FileRecord) -> bytes:
        """METADATA via Range requests (see :mod:`.lazywheel`). Not checked against the file's sha256 (only
        the whole file could be): good enough to *resolve*, because the snapshot verifies every file's sha256
        before anything is stored or bundled. When the first reply happens to be the whole (small) file, it
        is verified and stored like a whole download."""
        label = _label(record)
        replies: list[RangeReply] = []

        async def fetch(first: int | None, last: int) -> RangeReply:
            spec = f"bytes=-{last}" if first is None else f"bytes={first}-{last}"
            reply = await self._retrying(
                lambda: self._range(record.url, spec), f"{label} (range {spec})", bounded=False
            )
            replies.append(reply)
            return reply

        # One slot of the request bound for the whole read: its 1-3 requests are sequential, and a wheel with
        # a big central directory (numpy, pandas) must not queue again behind the page downloads between them
        # (it is on the resolver's critical path: its dependencies are not known before it).
        async with self._sem.hold(METADATA):
            raw, _requests = await read_wheel_metadata(fetch, size=record.size)
        self.range_reads += 1
        whole = replies[0]
        if whole.start == 0 and len(whole.data) == whole.total and record.sha256:
            await self._store_bytes(record, whole.data)
        return raw

    async def _range(self, url: str, spec: str) -> RangeReply:
        # identity: a compressed answer would make the byte offsets meaningless
        headers = {"Range": spec, "Accept-Encoding": "identity"}
        async with self._client.stream("GET", url, headers=headers) as resp:
            if resp.status_code in (200, 416):  # Range ignored or refused: do not read the body
                raise NotLazy(f"HTTP {resp.status_code} to a Range request")
            resp.raise_for_status()
            match = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
            if resp.status_code != 206 or match is None:
                raise NotLazy("no usable Content-Range")
            start, end, total = (int(g) for g in match.groups())
            data = await resp.aread()
        if len(data) != end - start + 1 or end >= total:
            raise NotLazy("Content-Range and body do not agree")
        return RangeReply(start, data, total)

    async def _whole_metadata(self, record: FileRecord) -> bytes:
        """The whole file, verified against the listed sha256 and, with a store, kept there for snapshot."""
        label = _label(record)
        self.downloads += 1
        if self._store is None or not record.sha256:
            data = await self._download(record.url, label)
            if record.sha256:
                _verify(record, hashlib.sha256(data).hexdigest(), len(data))
            return _read_metadata(data, record)
        path = await self._retrying(lambda: self._download_to_store(record), label)
        return await asyncio.to_thread(_read_metadata, path, record)

    async def _download_to_store(self, record: FileRecord) -> Path:
        assert self._store is not None and record.sha256
        store = self._store
        tmp = store.tmp_dir / f".lock-{record.sha256}.{secrets.token_hex(4)}.part"
        digest, size = hashlib.sha256(), 0
        # Opened and written here, not in worker threads: a cancelled task must not leave a thread that
        # creates the file after the cleanup below ran (chunks go to the page cache; fsync is the slow part).
        out = open(tmp, "wb")  # noqa: ASYNC230 - deliberate (see above); closed in finally, before the unlink
        try:
            headers = {"Accept-Encoding": "identity"}  # the listed sha256 is of the bytes as stored
            async with self._client.stream("GET", record.url, headers=headers) as resp:
                resp.raise_for_status()
                async for chunk in resp.aiter_raw(_CHUNK):
                    size += len(chunk)
                    if record.size is not None and size > record.size:
                        break  # more bytes than the index lists: refused below
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            _verify(record, digest.hexdigest(), size)
            await asyncio.to_thread(os.fsync, out.fileno())
            out.close()
            return await asyncio.to_thread(self._commit, tmp, record.sha256)
        finally:
            out.close()
            tmp.unlink(missing_ok=True)

    def _commit(self, tmp: Path, sha256: str) -> Path:
        assert self._store is not None
        path = self._store.commit_blob(tmp, sha256)
        self.stored += 1
        return path

    async def _store_bytes(self, record: FileRecord, data: bytes) -> None:
        """Keep a complete file that arrived anyway (a small wheel), once its sha256 is checked."""
        _verify(record, hashlib.sha256(data).hexdigest(), len(data))
        store, sha = self._store, record.sha256
        if store is None or sha is None or store.has_blob(sha, len(data)):
            return

        def write() -> None:
            tmp = store.tmp_dir / f".lock-{sha}.{secrets.token_hex(4)}.part"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                self._commit(tmp, sha)
            finally:
                tmp.unlink(missing_ok=True)

        await asyncio.to_thread(write)

    async def _download(self, url: str, what: str, *, rank: int = PAGE) -> bytes:
        async def get() -> bytes:
            resp = await self._client.get(url)
            resp.raise_for_status()
            return resp.content

        return await self._retrying(get, what, rank=rank)

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

    async def _retrying(
        self, fn: Callable[[], Awaitable[T]], what: str, *, bounded: bool = True, rank: int = PAGE
    ) -> T:
        """``fn()`` with retries of transient errors (:func:`mirrorctl.net.retrying`), each attempt in a request
        slot of ``rank`` (:mod:`.slots`), none held while waiting; ``bounded=False`` when the caller holds a
        slot already."""

        async def held() -> T:
            async with self._sem.hold(rank) if bounded else contextlib.nullcontext():
                return await fn()

        return await retrying(held, what, self._retry)


def _label(record: FileRecord) -> str:
    return f"pypi {record.name} {record.version} ({record.filename})"


def _verify(record: FileRecord, sha256: str, size: int) -> None:
    if (record.size is not None and size != record.size) or sha256 != record.sha256:
        raise DigestMismatch(
            _label(record), expected={"sha256": record.sha256 or ""},
            actual={"sha256": sha256} if sha256 != record.sha256 else {},
            expected_size=record.size, actual_size=size, url=redact(record.url),
            source="the sha256 the index lists",
            hint="the upstream is inconsistent or tampered with; nothing was stored; do not lock from it",
        )


def _read_metadata(data: bytes | Path, record: FileRecord) -> bytes:
    label = _label(record)
    source: Any = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        if record.kind == "wheel":
            with zipfile.ZipFile(source) as zf:
                return zf.read(_pick(zf.namelist(), ".dist-info/METADATA", label))
        if record.filename.endswith(".zip"):
            with zipfile.ZipFile(source) as zf:
                names = zf.namelist()
                pkg_info = zf.read(_pick(names, "/PKG-INFO", label))
                egg = _egg_requires(names)
                return with_egg_info_requires(pkg_info, zf.read(egg) if egg else None)
        fileobj = source if isinstance(data, bytes) else None
        with tarfile.open(name=None if fileobj else source, fileobj=fileobj, mode="r:gz") as tf:
            names = tf.getnames()
            fh = tf.extractfile(tf.getmember(_pick(names, "/PKG-INFO", label)))
            if fh is None:
                raise NetworkError(f"{label}: PKG-INFO is not a regular file")
            pkg_info = fh.read()
            egg = _egg_requires(names)
            egg_fh = tf.extractfile(tf.getmember(egg)) if egg else None
            return with_egg_info_requires(pkg_info, egg_fh.read() if egg_fh else None)
    except (zipfile.BadZipFile, tarfile.TarError, KeyError, OSError) as exc:
        raise NetworkError(f"{label}: cannot read its metadata: {exc}") from exc


def _egg_requires(names: Iterable[str]) -> str | None:
    found = sorted(n for n in names if n.endswith(".egg-info/requires.txt") and n.count("/") == 2)
    return found[0] if found else None


def with_egg_info_requires(pkg_info: bytes, requires_txt: bytes | None) -> bytes:
    """An sdist's PKG-INFO, with the requirements of its ``*.egg-info/requires.txt`` as Requires-Dist lines
    when PKG-INFO lists none: setuptools before metadata 2.2 wrote them only there, so an old sdist's
    PKG-INFO alone says it depends on nothing, and a search going back through old versions would take it
    as the way out of every conflict (pip and uv build it and see them)."""
    if requires_txt is None or b"\nRequires-Dist:" in pkg_info.split(b"\n\n", 1)[0]:
        return pkg_info
    lines = egg_info_requirements(requires_txt.decode("utf-8", "replace"))
    if not lines:
        return pkg_info
    head, sep, body = pkg_info.partition(b"\n\n")
    extra = "".join(f"\nRequires-Dist: {r}" for r in lines).encode()
    extras = sorted({m.group(1) for r in lines if (m := re.search(r'extra == "([^"]+)"', r))})
    extra += "".join(f"\nProvides-Extra: {e}" for e in extras).encode()
    return head.rstrip(b"\n") + extra + (sep + body if sep else b"\n")


def egg_info_requirements(text: str) -> list[str]:
    """requires.txt (``req`` lines under ``[extra]``, ``[:marker]`` or ``[extra:marker]`` sections) as PEP 508
    requirement strings; a line that does not parse is left out."""
    out: list[str] = []
    extra = marker = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = (part.strip() for part in line[1:-1].partition(":"))
            continue
        req, _, own = line.partition(";")
        conditions = [f"({c.strip()})" for c in (own, marker) if c.strip()]
        if extra:
            conditions.append(f'extra == "{canonicalize_name(extra)}"')
        text_req = req.strip() + ("; " + " and ".join(conditions) if conditions else "")
        try:
            Requirement(text_req)
        except InvalidRequirement:
            continue
        out.append(text_req)
    return out


def _pick(names: Iterable[str], suffix: str, label: str) -> str:
    # The top-level one: a wheel has exactly one <name>.dist-info/METADATA; an sdist has <base>/PKG-INFO.
    found = sorted((n for n in names if n.endswith(suffix) and n.count("/") == 1), key=len)
    if not found:
        raise NetworkError(f"{label}: no {suffix.lstrip('/')} inside")
    return found[0]
