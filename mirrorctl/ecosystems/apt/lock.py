"""``mirrorctl lock`` for apt: the signed suite, its verified Packages indexes, and the closure per architecture.

Order of trust (see :mod:`.release`): ``dists/<suite>/InRelease`` is verified with gpgv against the upstream's
configured keyring (``[upstreams.apt] keyring``) before anything in it is read (and refused when its Valid-Until
has passed); each ``Packages`` index is then checked against the Release size and SHA256 line for the exact file
fetched (``.gz`` preferred, then ``.xz``, then plain, as the Release lists them), hashed and decompressed while it
downloads (:mod:`.index`); only then are stanzas read and resolved. The lock records each .deb's Size and
SHA256 from the verified index, so ``mirrorctl snapshot`` can check every download without trusting the mirror.

An ``Architecture: all`` package needed by several architectures is one artifact with all of them as targets.
Debian lists those packages in every ``binary-<arch>`` index and says so in its Release
(``No-Support-for-Architecture-all: Packages``); other archives (reprepro, aptly, vendor repositories) list them only
in ``<component>/binary-all/Packages``, which apt then reads for every architecture. :func:`arch_all_index` decides
as apt does; such an index is downloaded and checked once and read by every architecture.
Nothing is written when anything fails: the caller writes the lock only after every ecosystem resolved.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import httpx

from mirrorctl.config import Upstream
from mirrorctl.ecosystems.base import FetchItem, ResolveContext
from mirrorctl.errors import IntegrityError, NetworkError, ProfileError, ResolutionError, UserError
from mirrorctl.lockfile import Artifact
from mirrorctl.net import RetryPolicy, redact, retrying

from .archwork import ERRORS, ArchResult, ArchWorker, lock_arch
from .index import IndexCheck
from .release import VerifiedRelease, verify_inrelease
from .resolve import DEFAULT_PRIORITY, ResolvedPackage, Source
from .settings import AptArchive, archive_for, archives
from .spec import AptSpec, check_pool_path, validate_artifact

# Below this much compressed index data a worker process costs more than it saves (tests, small suites).
_PARALLEL_MIN_BYTES = 1_000_000

# Bytes handed to an index check at a time: big enough that the thread hop is noise, small enough to overlap.
_SINK_BATCH = 512 * 1024

# A suite's InRelease is well under a megabyte (bookworm's: 150 kB); anything far bigger is not one.
_INRELEASE_MAX = 16 * 1024 * 1024

# Preference among the forms a Release may list for one index: cheapest overall first. Measured on the bookworm
# amd64 index here: .gz is 12.1 MB and decompresses in 0.26 s, .xz is 8.8 MB and takes 0.78 s; the 3.3 MB more
# cost about 0.1 s of download and arrive while the previous chunks decompress. Plain (50 MB) only as a last resort.
INDEX_FORMS = (".gz", ".xz", "")


@dataclass(frozen=True)
class Timings:
    """Where a lock spent its time (seconds), for the benchmark: fetch, verify+decompress+parse, resolve."""

    fetch: float = 0.0  # InRelease + gpgv + every index downloaded, checked and decompressed (wall)
    parse: float = 0.0  # stanza reading, summed over architectures (CPU)
    resolve: float = 0.0  # closures, summed over architectures (CPU)
    total: float = 0.0  # the whole resolve (wall)
    per_arch: tuple[tuple[str, float, float], ...] = ()  # (architecture, parse, resolve)
    check: float = 0.0  # size + sha256 checks and decompression while the indexes stream in, summed (CPU)


# The last lock's timings (bench/apt_bench.py reads them); not part of any result.
last_timings = Timings()


def base_url(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def deb_url(upstream_url: str, pool: str) -> str:
    return base_url(upstream_url) + pool


def fetch_item(a: Artifact, upstream_url: str) -> FetchItem:
    pool = str(a.attrs["pool"])
    return FetchItem(deb_url(upstream_url, pool), a.filename, a.size, a.sha256, label(a))


def label(a: Artifact) -> str:
    return f"apt {a.name} {a.version} {a.attrs.get('architecture', '?')} ({a.filename})"


class _Sink(Protocol):
    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> bytes: ...


class _Bounded:
    """Collects a response of at most ``limit`` bytes (the InRelease, before anything vouches for it)."""

    def __init__(self, what: str, url: str, limit: int) -> None:
        self._what, self._url, self._limit = what, url, limit
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            raise IntegrityError(
                f"{self._what}: {redact(self._url)} sends more than the {self._limit} bytes expected",
                hint="the mirror serves something else than the signed Release describes",
            )
        self._chunks.append(chunk)

    def finish(self) -> bytes:
        return b"".join(self._chunks)


async def _get(client: httpx.AsyncClient, url: str, what: str, retries: int, sink: Callable[[], _Sink]) -> bytes:
    """GET with the usual retries on transient failures; errors name ``what`` and the (redacted) URL.

    The chunks go to a fresh ``sink()`` per attempt as they arrive (an index is size-checked, hashed and
    decompressed meanwhile, see :class:`.index.IndexCheck`); the result is ``sink.finish()``. The sink runs in a
    thread, a batch at a time: zlib, lzma and hashlib release the GIL, so two indexes decompress on two cores while
    the loop keeps reading."""

    async def once() -> bytes:
        async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as resp:
            resp.raise_for_status()
            into = sink()
            batch: list[bytes] = []
            pending = 0
            async for chunk in resp.aiter_raw():
                batch.append(chunk)
                pending += len(chunk)
                if pending >= _SINK_BATCH:
                    await asyncio.to_thread(into.feed, b"".join(batch))
                    batch, pending = [], 0
            if batch:  # in a thread too: with a worker, feeding may wait for it to take the text
                await asyncio.to_thread(into.feed, b"".join(batch))
            return await asyncio.to_thread(into.finish)

    return await retrying(once, what, RetryPolicy(retries=retries))


def pick_index(release: VerifiedRelease, component: str, arch: str, spec: AptSpec, suite: str | None = None) -> str:
    """The Release path of the index to fetch for (component, arch); refuses what the suite does not offer."""
    suite = suite or spec.suite
    stem = f"{component}/binary-{arch}/Packages"
    for suffix in INDEX_FORMS:
        if stem + suffix in release.entries:
            return stem + suffix
    if release.architectures and arch not in release.architectures:
        raise ProfileError(
            f"{spec.origin('arch:' + arch)}: suite {suite!r} has no architecture {arch!r}",
            hint="the signed Release offers: " + " ".join(release.architectures),
        )
    if release.components and component not in release.components:
        raise ProfileError(
            f"{spec.origin('component:' + component)}: suite {suite!r} has no component {component!r}",
            hint="the signed Release offers: " + " ".join(release.components),
        )
    raise IntegrityError(
        f"suite {suite!r}: the signed Release lists no Packages index for {component}/binary-{arch}",
        hint="check the suite, components and architectures of the profile against the upstream",
    )


def arch_all_index(release: VerifiedRelease, component: str) -> str | None:
    """The Release path of ``<component>/binary-all/Packages*`` when apt reads it for every architecture, else None.

    apt's rule (acquire-item.cc, debmetaindex.cc ``IsArchitectureAllSupportedFor``): the Release lists the index,
    its Architectures field is absent or names ``all``, and its No-Support-for-Architecture-all field does not name
    ``Packages``. Debian sets that field (its binary-all duplicates the arch-all stanzas of every binary-<arch>), so
    a Debian suite costs no extra download. The compressed form is chosen as :func:`pick_index` chooses it."""
    if release.architectures and "all" not in release.architectures:
        return None
    no_support = next((v for k, v in release.fields.items() if k.lower() == "no-support-for-architecture-all"), "")
    if "Packages" in no_support.split():
        return None
    stem = f"{component}/binary-all/Packages"
    return next((stem + suffix for suffix in INDEX_FORMS if stem + suffix in release.entries), None)


def release_priority(release: VerifiedRelease) -> int:
    """apt's default pin priority for the versions of a suite (apt_preferences(5)): 500, 1 when the signed
    Release says ``NotAutomatic: yes`` (experimental), 100 when it also says ``ButAutomaticUpgrades: yes``
    (backports)."""
    fields = {k.lower(): v.strip().lower() for k, v in release.fields.items()}
    if fields.get("notautomatic") != "yes":
        return DEFAULT_PRIORITY
    return 100 if fields.get("butautomaticupgrades") == "yes" else 1


@dataclass(frozen=True)
class _Suite:
    """One suite of the profile, its archive, and its verified Release."""

    index: int
    name: str
    archive: AptArchive
    release: VerifiedRelease
    priority: int


def _archive_of(spec: AptSpec, upstream: Upstream, suite: str) -> AptArchive:
    archive = archive_for(upstream, suite)
    if archive is None:
        carried = [f"{a.table}: {' '.join(a.suites or ('any other suite',))}" for a in archives(upstream)]
        raise ProfileError(
            f"{spec.origin('suite:' + suite)}: no archive of mirrorctl.toml carries suite {suite!r}",
            hint="add it to the suites of the archive that has it; " + "; ".join(carried),
        )
    if archive.keyring is None:  # refused before any request (verified_release says the same)
        raise UserError(
            f"{archive.table}: no keyring configured to verify {redact(archive.url)}",
            hint='add keyring = "/path/to/archive-keyring.gpg" (the Signed-By of the upstream) under '
            f"[{archive.table}] in mirrorctl.toml",
        )
    return archive


async def verified_release(
    client: httpx.AsyncClient, archive: AptArchive, suite: str, retries: int, *,
    fingerprints: Sequence[str] | None = None, named_at: str = "the profile",
) -> VerifiedRelease:
    """``dists/<suite>/InRelease`` of ``archive``, verified with that archive's own keyring (lock and snapshot).

    A suite the archive lacks is still a network failure (exit 1: a mirror may lag behind) but names ``named_at``
    (the profile field); a signature the keyring refuses names the keyring's mirrorctl.toml field."""
    if archive.keyring is None:
        raise UserError(
            f"{archive.table}: no keyring configured to verify {redact(archive.url)}",
            hint='add keyring = "/path/to/archive-keyring.gpg" (the Signed-By of the upstream) under '
            f"[{archive.table}] in mirrorctl.toml",
        )
    url = f"{archive.url}dists/{suite}/InRelease"
    what = f"apt suite {suite} InRelease"
    try:
        inrelease = await _get(client, url, what, retries, lambda: _Bounded(what, url, _INRELEASE_MAX))
    except NetworkError as exc:
        if exc.status in (404, 410):
            raise NetworkError(
                f"{named_at}: suite {suite!r} is not on {archive.table} ({redact(archive.url)}): {exc.message}",
                hint="check the suite name against the archive, or which archive carries it in mirrorctl.toml",
            ) from exc
        raise
    try:
        return await asyncio.to_thread(verify_inrelease, inrelease, archive.keyring, suite=suite,
                                       fingerprints=fingerprints)
    except IntegrityError as exc:
        if "signature refused" not in exc.message and "not an allowed key" not in exc.message:
            raise
        raise IntegrityError(
            f"{exc.message}: {archive.table}.keyring ({archive.keyring}) does not vouch for {redact(archive.url)}",
            hint=f"set the keyring apt's Signed-By names for this archive under [{archive.table}] in mirrorctl.toml",
        ) from exc


async def _verified_suite(
    spec: AptSpec, index: int, suite: str, archive: AptArchive, ctx: ResolveContext
) -> _Suite:
    release = await verified_release(ctx.client, archive, suite, ctx.fetch.retries, fingerprints=spec.fingerprints,
                                     named_at=spec.origin("suite:" + suite))
    priority = spec.priorities.get(suite, release_priority(release))
    return _Suite(index, suite, archive, release, priority)


async def _fetch_and_lock(
    spec: AptSpec,
    sizes: Mapping[str, int],
    wanted: Sequence[tuple[Source, str, str]],
    get: Callable[[str, Sequence[ArchWorker]], Awaitable[bytes]],
    done: Callable[[ArchResult], None] = lambda _: None,
) -> tuple[dict[str, ArchResult], float]:
    """Each architecture's indexes fetched (checked and decompressed as they stream in) and resolved once every one
    of them checked out. ``wanted``: (source, architecture, index key) with ``sizes`` per index key (the Release's
    size of the file). With several architectures, CPUs and a big suite, each architecture has a worker process
    that reads the text while it downloads (:class:`.archwork.ArchWorker`; reading a full index is CPU-bound
    Python, so threads would not overlap); otherwise a thread reads the whole texts. An index several
    architectures read (binary-all) is fetched once: ``get`` receives the workers of all of them (none without
    workers) and its text serves each. ``done`` sees each architecture's result on the loop thread as soon as it
    is in. Returns the results and when the last index arrived."""
    size = sum(sizes[key] for _, _, key in wanted)
    parallel = len(spec.architectures) > 1 and (os.cpu_count() or 1) > 1 and size > _PARALLEL_MIN_BYTES
    fetched = 0.0
    workers: dict[str, ArchWorker] = {}
    fetches: dict[str, asyncio.Future[bytes]] = {}

    def fetch(key: str) -> asyncio.Future[bytes]:
        if key not in fetches:
            readers = dict.fromkeys(a for _, a, k in wanted if k == key)
            fetches[key] = asyncio.ensure_future(get(key, [workers[a] for a in readers if a in workers]))
        return fetches[key]

    async def one(arch: str) -> ArchResult:
        nonlocal fetched
        mine = [(source, key) for source, a, key in wanted if a == arch]
        worker = workers.get(arch)
        bodies = await asyncio.gather(*(fetch(key) for _, key in mine))
        fetched = max(fetched, time.monotonic())
        if worker is not None:
            result = await worker.resolve(spec, arch, mine)
        else:
            indexes = [(source, key, body) for (source, key), body in zip(mine, bodies, strict=True)]
            result = await asyncio.to_thread(lock_arch, spec, arch, indexes)
        done(result)
        return result

    try:
        if parallel:
            for arch in spec.architectures:
                workers[arch] = ArchWorker()
        # Every architecture runs to its end (no worker closed under a running one); the first failure in profile
        # order is raised below.
        outcomes = await asyncio.gather(*(one(arch) for arch in spec.architectures), return_exceptions=True)
    finally:
        # An architecture that failed early leaves its other downloads running: none may feed a closed worker.
        for pending in fetches.values():
            pending.cancel()
        await asyncio.gather(*fetches.values(), return_exceptions=True)
        for worker in workers.values():
            await asyncio.to_thread(worker.close)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    results = {arch: r for arch, r in zip(spec.architectures, outcomes, strict=True) if isinstance(r, ArchResult)}
    for result in results.values():  # the first architecture's error, in profile order
        if result.error is not None:
            kind, message, hint = result.error
            raise ERRORS.get(kind, ResolutionError)(message, hint=hint)
    return results, fetched


def _send_text(readers: Sequence[ArchWorker], path: str, piece: bytes) -> None:
    for worker in readers:
        worker.text(path, piece)


async def resolve_spec(spec: AptSpec, ctx: ResolveContext) -> list[Artifact]:
    """Fetch, verify, parse and resolve; one Artifact per .deb with the architectures that need it.

    Several suites (a release, its -updates, its security suite, each perhaps from its own archive with its own
    keyring) are resolved together as apt resolves every source it reads: each suite's InRelease is verified with
    its archive's keyring, and every version of every suite is a candidate (see :mod:`.resolve`)."""
    global last_timings
    upstream = ctx.upstream
    chosen = [(i, suite, _archive_of(spec, upstream, suite)) for i, suite in enumerate(spec.suites)]
    retries = ctx.fetch.retries
    label = ", ".join(spec.suites)
    task = ctx.progress.task(f"apt {label}: InRelease and Packages indexes")
    started = time.monotonic()
    try:
        suites = list(await asyncio.gather(*(_verified_suite(spec, i, s, a, ctx) for i, s, a in chosen)))
        wanted: list[tuple[Source, str, str]] = []
        where: dict[str, tuple[_Suite, str]] = {}  # index key -> (suite, Release path)
        for st in suites:
            for c in spec.components:
                source = Source(st.index, st.name, st.archive.name, c, st.priority)
                arch_all = arch_all_index(st.release, c)
                for arch in spec.architectures:
                    for path in (pick_index(st.release, c, arch, spec, st.name), arch_all):
                        if path is not None:
                            key = f"{st.index}:{path}"
                            where[key] = (st, path)
                            wanted.append((source, arch, key))
        checks: list[IndexCheck] = []

        def get(key: str, readers: Sequence[ArchWorker]) -> Awaitable[bytes]:
            st, path = where[key]
            what = f"apt suite {st.name} index {path}"
            attempts = 0

            def check() -> IndexCheck:
                nonlocal attempts
                if attempts:
                    for worker in readers:
                        worker.reset(key)  # each worker drops what a failed attempt sent
                attempts += 1
                on_text = partial(_send_text, readers, key) if readers else None
                checks.append(IndexCheck(st.release, path, on_text))
                return checks[-1]

            return _get(ctx.client, f"{st.archive.url}dists/{st.name}/{path}", what, retries, check)

        url_of = {st.archive.name: st.archive.url for st in suites}

        def done(result: ArchResult) -> None:
            # lock --snapshot: this architecture's .debs start downloading while the others still resolve. Only
            # files a verified index vouches for (Size, SHA256); the snapshot checks every locked file again.
            if ctx.prefetch is not None and result.error is None:
                for pkg in result.resolved:
                    if pkg.filename and pkg.size > 0 and len(pkg.sha256) == 64 and pkg.source is not None:
                        ctx.prefetch(FetchItem(deb_url(url_of[pkg.source.archive], pkg.filename),
                                               posixpath.basename(pkg.filename), pkg.size, pkg.sha256.lower(),
                                               f"apt {pkg.name} {pkg.version} {pkg.architecture} "
                                               f"({posixpath.basename(pkg.filename)})"))

        sizes = {key: st.release.entries[path].size for key, (st, path) in where.items()}
        results, fetched = await _fetch_and_lock(spec, sizes, wanted, get, done)
    finally:
        task.close()
    resolved = {arch: r.resolved for arch, r in results.items()}
    sources: dict[str, Source] = {}
    for r in results.values():
        for filename, source in r.sources.items():
            sources.setdefault(filename, source)
    last_timings = Timings(
        fetched - started, sum(r.parse_s for r in results.values()), sum(r.resolve_s for r in results.values()),
        time.monotonic() - started, tuple((a, r.parse_s, r.resolve_s) for a, r in results.items()),
        sum(c.seconds for c in checks),
    )
    artifacts = merge_architectures(spec, resolved, sources)
    if ctx.prefetch is not None:
        for a in artifacts:
            ctx.prefetch(fetch_item(a, url_of.get(str(a.attrs.get("archive", "")), upstream.url)))
    signers = sorted({st.release.signer_fingerprint for st in suites})
    ctx.progress.note(
        f"apt {label}: {len(artifacts)} packages for {', '.join(spec.architectures)} "
        f"(signed by {', '.join(signers)})"
    )
    return artifacts


def merge_architectures(
    spec: AptSpec, resolved: Mapping[str, Sequence[ResolvedPackage]], sources: Mapping[str, Source]
) -> list[Artifact]:
    """One Artifact per pool file; an arch-all package needed by several architectures lists them all. Its attrs
    say which suite (and archive, when not [upstreams.apt] itself) it came from; with several suites, ``suites``
    lists every suite resolved together, so the served repository offers each of them (an empty one too) and a
    workspace's sources name a suite before any package comes from it (a later security update then reaches it)."""
    together = " ".join(spec.suites)
    by_file: dict[str, tuple[ResolvedPackage, set[str]]] = {}
    for arch, packages in resolved.items():
        for pkg in packages:
            suite = pkg.source.suite if pkg.source is not None else spec.suite
            where = f"apt {pkg.name} {pkg.version} {pkg.architecture} in suite {suite!r}"
            if not pkg.sha256 or len(pkg.sha256) != 64 or not pkg.filename or pkg.size <= 0:
                raise IntegrityError(f"{where}: the index lists no Filename, Size and SHA256 for it",
                                     hint="mirrorctl only mirrors packages a signed index vouches for by SHA256")
            seen = by_file.get(pkg.filename)
            if seen is None:
                by_file[pkg.filename] = (pkg, {arch})
                continue
            if (seen[0].sha256, seen[0].size) != (pkg.sha256, pkg.size):
                raise IntegrityError(
                    f"{where}: {pkg.filename} is listed with two different digests by the indexes of the suites",
                    hint="the upstream is inconsistent; try again later or use another mirror",
                )
            seen[1].add(arch)
    for filename, (pkg, _) in sorted(by_file.items()):
        # The index's Filename becomes the artifact's path: apt's own rule first, so the refusal names the index.
        try:
            check_pool_path(filename, f"apt artifact {pkg.name!r} {pkg.version!r} ({posixpath.basename(filename)!r})")
        except IntegrityError as exc:
            raise IntegrityError(f"suite {_suite_of(sources, filename, spec)!r}: the index lists {exc.message}",
                                 hint=exc.hint) from exc
    artifacts = [
        Artifact(
            ecosystem="apt",
            name=pkg.name,
            version=pkg.version,
            path=filename,
            size=pkg.size,
            sha256=pkg.sha256.lower(),
            targets=tuple(sorted(arches)),
            attrs=_attrs(pkg, sources.get(filename), spec, together),
        )
        for filename, (pkg, arches) in sorted(by_file.items())
    ]
    for a in artifacts:
        try:
            validate_artifact(a)
        except IntegrityError as exc:
            raise IntegrityError(f"suite {a.attrs['suite']!r}: the index lists {exc.message}", hint=exc.hint) from exc
    return artifacts


def _suite_of(sources: Mapping[str, Source], filename: str, spec: AptSpec) -> str:
    source = sources.get(filename)
    return source.suite if source is not None else spec.suite


def _attrs(pkg: ResolvedPackage, source: Source | None, spec: AptSpec, together: str) -> dict[str, str | int | bool]:
    attrs: dict[str, str | int | bool] = {
        "architecture": pkg.architecture,
        "suite": source.suite if source is not None else spec.suite,
        "component": source.component if source is not None else spec.components[0],
        "pool": pkg.filename,
    }
    # Single-suite locks stay as they were (no archive, no suites): the same bytes as before several suites.
    if source is not None and source.archive:
        attrs["archive"] = source.archive
    if spec.more_suites:
        attrs["suites"] = together
    return attrs


def check_lock(spec: AptSpec, artifacts: Sequence[Artifact], targets: Collection[str] | None = None) -> list[str]:
    """Why the apt part of a lock no longer matches the profile (empty when it does). Reads no network.

    ``targets`` (the architectures the lock records) is not needed: a profile names at least one package, and
    each is locked for every architecture, so no architecture's closure is ever empty; an architecture the lock
    lacks shows as its packages not being locked for it."""
    problems: list[str] = []
    arches = set(spec.architectures)
    by_arch: dict[str, dict[str, Artifact]] = {a: {} for a in spec.architectures}
    for art in artifacts:
        if art.attrs.get("suite") not in spec.suites:
            problems.append(f"apt {art.name} {art.version} is from suite {art.attrs.get('suite')!r}, "
                            f"the profile names {', '.join(repr(s) for s in spec.suites)}")
        elif art.attrs.get("suites", spec.suite) != " ".join(spec.suites):
            problems.append(f"apt {art.name} {art.version} was resolved with suites "
                            f"{art.attrs.get('suites', art.attrs.get('suite'))!r}, the profile names "
                            f"{' '.join(spec.suites)!r}")
        if art.attrs.get("component") not in spec.components:
            problems.append(f"apt {art.name} {art.version} is from component {art.attrs.get('component')!r}, "
                            f"not one of the profile's {', '.join(spec.components)}")
        extra = set(art.targets) - arches
        if extra or not art.targets:
            problems.append(f"apt {art.name} {art.version} targets {', '.join(sorted(extra)) or 'nothing'}, "
                            f"not the profile's architectures {', '.join(spec.architectures)}")
        for t in art.targets:
            if t in by_arch:
                by_arch[t][art.name] = art
    for arch, names in by_arch.items():
        for name in spec.packages:
            if name not in names:
                problems.append(f"apt {name} ({spec.origin(name)}) is not locked for {arch}")
            pin = spec.pins.get(name)
            if pin is not None and name in names and names[name].version != pin:
                problems.append(f"apt {name} is locked at {names[name].version} for {arch}, the profile pins {pin}")
    if problems:
        problems.append("run `mirrorctl lock` to resolve again")
    return problems

