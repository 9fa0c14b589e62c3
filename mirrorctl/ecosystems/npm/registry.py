"""The upstream npm registry client: packuments and tarballs (protocol-facts.md §2.1, §2.3).

Packuments are requested the way pacote requests them for ``npm ci``: the abbreviated ("corgi") document
first (``application/vnd.npm.install-v1+json``, falling back to the full document, which every registry
serves). The corgi document has everything resolution needs (``dist-tags``; per version ``dependencies``,
``optionalDependencies``, ``peerDependencies``, ``peerDependenciesMeta``, ``os``, ``cpu``, ``deprecated``,
``dist``) and is several times smaller for packages with long histories (measured in bench/). A registry that
ignores the Accept header and answers with the full document works the same. Scoped names are requested as
``@scope%2fname`` (npm-package-arg's escapedName, lowercase ``%2f``).

One :class:`RegistryClient` per run: documents are cached as shared tasks (concurrent callers wait for one
request), reduced to the fields resolution reads, requests are bounded, and transient failures (timeouts,
dropped connections, 429, 5xx) are retried with backoff.

Tarballs are streamed once while locking: sha256, sha512, sha1 and size are computed as the bytes arrive and
checked against the packument's SRI ``integrity`` (or ``shasum``); with a store, the verified file is
committed there, so ``mirrorctl snapshot`` does not download it again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from mirrorctl.errors import DigestMismatch, IntegrityError, NetworkError
from mirrorctl.inside.store import Store, atomic_write
from mirrorctl.net import RetryPolicy, redact, retrying
from mirrorctl.progress import SILENT, Progress

CORGI = "application/vnd.npm.install-v1+json"
ACCEPT_CORGI = f"{CORGI}; q=1.0, application/json; q=0.8, */*"
ACCEPT_FULL = "application/json"
T = TypeVar("T")
_BATCH = 1 << 20  # bytes hashed and written per hand-off to the worker thread
# Shared by the downloads of a run; hashing is the only work, and each download keeps one batch in flight.
_HASHERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="npm-hash")
# What resolution and the fetch plan read from a version object; the rest (readme, scripts, ...) is dropped
# as soon as a document is parsed, so a run over large packuments keeps little in memory.
_KEEP = (
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "os",
    "cpu",
    "libc",
    "deprecated",
)
_SRI_ALGOS = {"sha512": hashlib.sha512, "sha384": hashlib.sha384, "sha256": hashlib.sha256, "sha1": hashlib.sha1}


@dataclass(frozen=True, slots=True)
class Packument:
    name: str
    dist_tags: Mapping[str, str]
    versions: Mapping[str, Mapping[str, Any]]  # version -> the kept fields plus "dist"
    url: str  # where it was read (for messages; never written into a lock)
    size: int = 0  # bytes of the document as received
    abbreviated: bool = False  # the corgi form: no ``libc`` (the public registry leaves it out)


@dataclass(frozen=True, slots=True)
class Tarball:
    """What the lock records of a verified tarball."""

    sha256: str
    size: int
    integrity: str  # sha512 SRI of the bytes
    shasum: str  # sha1 hex of the bytes


def sri_hashes(integrity: str | None) -> dict[str, bytes]:
    """``sha512-<base64> sha1-<base64>`` -> {"sha512": digest, ...}; unknown or malformed entries skipped."""
    out: dict[str, bytes] = {}
    for token in (integrity or "").split():
        algo, _, b64 = token.partition("-")
        algo = algo.lower()
        if algo in _SRI_ALGOS:
            try:
                out.setdefault(algo, base64.b64decode(b64.split("?", 1)[0], validate=True))
            except (binascii.Error, ValueError):
                continue
    return out


def sri_to_hex(integrity: str, algo: str = "sha512") -> str | None:
    digest = sri_hashes(integrity).get(algo)
    return digest.hex() if digest is not None else None


def hex_to_sri(hexdigest: str, algo: str = "sha512") -> str:
    return f"{algo}-" + base64.b64encode(bytes.fromhex(hexdigest)).decode()


class RegistryClient:
    """Reads one npm registry. ``base_url`` is the registry (``https://registry.mirror.internal/``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        progress: Progress = SILENT,
        concurrency: int = 16,
        retries: int = 4,
        abbreviated: bool = True,
        store: Store | None = None,
    ) -> None:
        self._client = client
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._progress = progress
        # Packuments and tarballs have separate slots (the client's pool holds twice ``concurrency``). While
        # resolution still waits for packuments (its critical path), tarballs get a quarter of the slots so
        # they use spare bandwidth without slowing it; :meth:`resolution_done` gives them the rest.
        self._sem = asyncio.Semaphore(concurrency)
        self._early_slots = max(2, concurrency // 4)
        self._tarball_sem = asyncio.Semaphore(self._early_slots)
        self._concurrency = concurrency
        self._retry = RetryPolicy(retries=retries)
        self._abbreviated = abbreviated
        self._store = store
        self._docs: dict[str, asyncio.Task[Packument | None]] = {}
        self._tarballs: dict[str, asyncio.Task[Tarball]] = {}
        self._known = _TarballCache(store.root / "cache" / "npm-tarballs.json") if store is not None else None
        self.bytes_read = 0  # packument bytes received
        self.downloads = 0  # tarballs downloaded while locking
        self.stored = 0  # tarballs committed into the store while locking
        self.known = 0  # tarballs already in the store (no download)

    def resolution_done(self) -> None:
        """Every packument is read: let tarball downloads use all of their slots."""
        for _ in range(self._concurrency - self._early_slots):
            self._tarball_sem.release()
        self._early_slots = self._concurrency

    def packument_url(self, name: str) -> str:
        return self.base_url + name.replace("/", "%2f")

    def packument(self, name: str) -> Awaitable[Packument | None]:
        """The package's document, or None when the registry has no such package (404)."""
        if name not in self._docs:
            self._docs[name] = asyncio.ensure_future(self._fetch_packument(name))
        return asyncio.shield(self._docs[name])

    def full_packument(self, name: str) -> Awaitable[Packument | None]:
        """The full document (``libc`` is only there), requested once; the one already read when it was full."""
        key = f"full:{name}"
        if key not in self._docs:

            async def get() -> Packument | None:
                doc = await self.packument(name)
                if doc is None or not doc.abbreviated:
                    return doc
                return await self._fetch_packument(name, full=True)

            self._docs[key] = asyncio.ensure_future(get())
        return asyncio.shield(self._docs[key])

    def tarball(self, url: str, integrity: str | None, shasum: str | None, label: str) -> Awaitable[Tarball]:
        """Download (once per URL), verify against integrity/shasum, and keep in the store when there is one."""
        if url not in self._tarballs:
            self._tarballs[url] = asyncio.ensure_future(self._fetch_tarball(url, integrity, shasum, label))
        return asyncio.shield(self._tarballs[url])

    async def close(self) -> None:
        tasks = [*self._docs.values(), *self._tarballs.values()]
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._known is not None:
            await asyncio.to_thread(self._known.save)

    # -- packuments -----------------------------------------------------------------------------------------

    async def _fetch_packument(self, name: str, full: bool = False) -> Packument | None:
        url = self.packument_url(name)
        accepts = [ACCEPT_CORGI, ACCEPT_FULL] if self._abbreviated and not full else [ACCEPT_FULL]
        for accept in accepts:  # pacote retries with the full document when the corgi request is a 404

            async def get(accept: str = accept) -> httpx.Response | None:
                resp = await self._client.get(url, headers={"Accept": accept})
                if resp.status_code == 404:
                    return None
                resp.raise_for_status()
                return resp

            resp = await self._retrying(get, f"npm {name} (packument)")
            if resp is not None:
                body = resp.content
                self.bytes_read += len(body)
                # Large documents (thousands of versions) are parsed off the event loop.
                if len(body) > 512 * 1024:
                    doc = await asyncio.to_thread(_parse_packument, name, body, redact(url))
                else:
                    doc = _parse_packument(name, body, redact(url))
                corgi = CORGI in resp.headers.get("content-type", "")
                return dataclasses.replace(doc, abbreviated=True) if corgi else doc
        return None

    # -- tarballs ------------------------------------------------------------------------------------------

    async def _fetch_tarball(self, url: str, integrity: str | None, shasum: str | None, label: str) -> Tarball:
        expected = sri_hashes(integrity)
        if not expected and shasum:
            try:
                expected = {"sha1": bytes.fromhex(shasum)}
            except ValueError:
                expected = {}
        if not expected:
            raise IntegrityError(
                f"{label}: the registry lists no integrity or shasum for {redact(url)}",
                hint="a tarball that cannot be verified is not mirrored; ask the registry's owner",
            )
        known = self._known.get(integrity) if self._known is not None and "sha512" in expected else None
        if known is not None and self._store is not None and self._store.has_blob(known.sha256, known.size):
            self.known += 1
            return known
        result = await self._retrying(lambda: self._download(url, expected, label), label, self._tarball_sem)
        if self._known is not None:
            self._known.put(result)
        return result

    async def _download(self, url: str, expected: Mapping[str, bytes], label: str) -> Tarball:
        hashes = {"sha256": hashlib.sha256(), "sha512": hashlib.sha512(), "sha1": hashlib.sha1()}
        hashes.update({a: _SRI_ALGOS[a]() for a in expected if a not in hashes})
        store = self._store
        tmp: Path | None = None
        out = None
        if store is not None:
            tmp = store.tmp_dir / f".lock-npm.{secrets.token_hex(8)}.part"
            # Opened here, not in a worker thread: a cancelled task must not leave a thread that creates the
            # file after the cleanup below ran.
            out = open(tmp, "wb")  # noqa: ASYNC230 - closed in finally, before the unlink

        def consume(data: bytes) -> None:
            for h in hashes.values():
                h.update(data)  # hashlib releases the GIL on large buffers: runs beside the event loop
            if out is not None:
                out.write(data)

        # Hashing (three digests) and writing run in a worker thread, a batch at a time and in order (one batch
        # in flight), so the event loop thread keeps reading packuments and sockets on the other core.
        pending: concurrent.futures.Future[None] | None = None
        batch: list[bytes] = []
        batched = 0
        size = 0
        try:
            self.downloads += 1
            headers = {"Accept-Encoding": "identity"}  # the integrity is of the bytes as published
            async with self._client.stream("GET", url, headers=headers) as resp:
                resp.raise_for_status()
                async for chunk in resp.aiter_raw():
                    size += len(chunk)
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= _BATCH:
                        if pending is not None:
                            await asyncio.wrap_future(pending)
                        pending = _HASHERS.submit(consume, b"".join(batch))
                        batch, batched = [], 0
            if pending is not None:
                await asyncio.wrap_future(pending)
                pending = None
            consume(b"".join(batch))
            wrong = [a for a, digest in expected.items() if hashes[a].digest() != digest]
            if wrong:
                raise DigestMismatch(
                    label, expected={a: expected[a].hex() for a in wrong},
                    actual={a: hashes[a].hexdigest() for a in wrong}, url=redact(url),
                    source="the registry's integrity", what="the tarball",
                    hint="the registry served other bytes than it lists; nothing was stored for this package",
                )
            result = Tarball(
                hashes["sha256"].hexdigest(), size, hex_to_sri(hashes["sha512"].hexdigest()), hashes["sha1"].hexdigest()
            )
            if out is not None and tmp is not None and store is not None:
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
                out.close()
                await asyncio.to_thread(store.commit_blob, tmp, result.sha256)
                self.stored += 1
            return result
        finally:
            if pending is not None:
                pending.cancel()  # not started yet: never runs; running: wait (one batch) before closing
                concurrent.futures.wait([pending])
            if out is not None:
                out.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    async def _retrying(self, fn: Callable[[], Awaitable[T]], what: str, sem: asyncio.Semaphore | None = None) -> T:
        """``fn()`` with retries of transient errors, each attempt holding a slot of ``sem`` (packuments by
        default), none held while waiting."""

        async def held() -> T:
            async with sem or self._sem:
                return await fn()

        return await retrying(held, what, self._retry)


class _Dist(msgspec.Struct):
    tarball: Any = None
    integrity: Any = None
    shasum: Any = None


class _Version(msgspec.Struct):
    """The fields of a version object that are kept (``_KEEP``); msgspec skips the others (devDependencies,
    engines, scripts, ...) without building them."""

    dependencies: Any = msgspec.UNSET
    optionalDependencies: Any = msgspec.UNSET  # (camelCase: the registry's field names)
    peerDependencies: Any = msgspec.UNSET
    peerDependenciesMeta: Any = msgspec.UNSET
    bundleDependencies: Any = msgspec.UNSET
    bundledDependencies: Any = msgspec.UNSET
    os: Any = msgspec.UNSET
    cpu: Any = msgspec.UNSET
    libc: Any = msgspec.UNSET
    deprecated: Any = msgspec.UNSET
    dist: _Dist | None = None


class _Document(msgspec.Struct, rename={"dist_tags": "dist-tags"}):
    name: Any = None
    dist_tags: Any = None
    versions: dict[str, _Version] = {}


# Decoding into these types is about 4x faster than json.loads and the dict walk below (measured on the
# bench profile's 169 corgi documents, 36 MB: 0.14 s instead of 0.55 s of CPU), and CPU is what a lock waits
# for on a fast upstream. Documents of another shape (a version that is not an object, ...) take the plain path.
_DECODER = msgspec.json.Decoder(_Document)


def _parse_packument(name: str, body: bytes, url: str) -> Packument:
    try:
        typed = _DECODER.decode(body)
    except msgspec.MsgspecError:
        return _parse_packument_plain(name, body, url)
    if typed.name is not None and typed.name != name:
        raise NetworkError(f"npm {name}: {url} describes {typed.name!r}, not {name!r}")
    versions = _LazyVersions({v: obj for v, obj in typed.versions.items() if obj.dist is not None})
    return Packument(name, _dist_tags(typed.dist_tags), versions, url, len(body))


class _LazyVersions(Mapping[str, Mapping[str, Any]]):
    """version -> the kept fields plus "dist", built when a version is first read: resolution reads a few
    versions of each document (the one it picks, the candidates of a range), not thousands."""

    __slots__ = ("_built", "_raw")

    def __init__(self, raw: dict[str, _Version]) -> None:
        self._raw = raw
        self._built: dict[str, dict[str, Any]] = {}

    def __getitem__(self, version: str) -> dict[str, Any]:
        built = self._built.get(version)
        if built is None:
            obj = self._raw[version]
            built = {k: value for k in _KEEP if (value := getattr(obj, k)) is not msgspec.UNSET}
            dist = obj.dist
            built["dist"] = {k: v for k in ("tarball", "integrity", "shasum") if isinstance(v := getattr(dist, k), str)}
            self._built[version] = built
        return built

    def __contains__(self, version: object) -> bool:
        return version in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def _dist_tags(tags: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in tags.items() if isinstance(v, str)} if isinstance(tags, dict) else {}


def _parse_packument_plain(name: str, body: bytes, url: str) -> Packument:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NetworkError(f"npm {name}: {url} is not a JSON packument: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("versions", {}), dict):
        raise NetworkError(f"npm {name}: {url} is not a packument (no versions object)")
    if doc.get("name", name) != name:
        raise NetworkError(f"npm {name}: {url} describes {doc.get('name')!r}, not {name!r}")
    versions: dict[str, dict[str, Any]] = {}
    for version, obj in (doc.get("versions") or {}).items():
        if not isinstance(obj, dict) or not isinstance(obj.get("dist"), dict):
            continue
        dist = obj["dist"]
        kept = {k: obj[k] for k in _KEEP if k in obj}
        kept["dist"] = {k: dist[k] for k in ("tarball", "integrity", "shasum") if isinstance(dist.get(k), str)}
        versions[version] = kept
    return Packument(name, _dist_tags(doc.get("dist-tags")), versions, url, len(body))


@dataclass
class _TarballCache:
    """sha512 (from the integrity) -> the sha256, size and sha1 an earlier lock computed from the verified
    bytes, so locking again a tarball that is already in the store downloads nothing. Only used when the
    blob is present (the store holds the bytes those digests describe)."""

    path: Path
    _entries: dict[str, tuple[str, int, str]] | None = None
    _dirty: bool = False

    def _load(self) -> dict[str, tuple[str, int, str]]:
        if self._entries is None:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._entries = {str(k): (str(v[0]), int(v[1]), str(v[2])) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, IndexError, AttributeError):
                self._entries = {}
        return self._entries

    def get(self, integrity: str | None) -> Tarball | None:
        hexd = sri_to_hex(integrity or "")
        hit = self._load().get(hexd) if hexd else None
        return Tarball(hit[0], hit[1], hex_to_sri(hexd), hit[2]) if hit and hexd else None

    def put(self, t: Tarball) -> None:
        hexd = sri_to_hex(t.integrity)
        if hexd is not None and t.shasum and self._load().get(hexd) != (t.sha256, t.size, t.shasum):
            self._load()[hexd] = (t.sha256, t.size, t.shasum)
            self._dirty = True

    def save(self) -> None:
        if self._dirty and self._entries is not None:
            data = {k: list(v) for k, v in sorted(self._entries.items())}
            atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode())
            self._dirty = False
