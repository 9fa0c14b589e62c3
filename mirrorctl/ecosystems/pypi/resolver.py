"""Resolve a ``[pypi]`` spec: one consistent set of files per target, merged into the lock's artifacts.

resolvelib does the backtracking; :class:`TargetProvider` tells it, for one target, which versions are
candidates (:mod:`.choice`: those with a file that installs on that target, the best wheel by tag priority,
an sdist only where the profile allows it and the version has no wheel; yanked releases only under an exact
pin; pre-releases by PEP 440's default), what each depends on there (markers evaluated for that target) and
which requirements a version satisfies; :mod:`.explain` says why a target cannot be resolved. Extras use
the usual trick: ``foo[bar]`` is its own identifier whose candidate depends on ``foo==<same version>`` plus
the extra's requirements.

The search order is pip's (``narrow_requirement_selection``, ``get_preference``); :mod:`.search` watches it
(progress naming what it backtracks on, the ``[lock]`` bound). While it backtracks on a project, the metadata
of its next older versions is read ahead; specifiers are matched against a project's versions once each.

resolvelib is synchronous, so each target resolves in its own thread; metadata comes from the event loop
(:class:`IndexClient`, shared and cached) through ``run_coroutine_threadsafe``. While a target resolves, the
loop also prefetches the likely closure (the newest acceptable version of each dependency, its metadata,
its dependencies' pages) so the resolver seldom waits for a round trip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep

from mirrorctl.config import LockSettings
from mirrorctl.ecosystems.base import FetchItem, ResolveContext
from mirrorctl.errors import ResolutionError
from mirrorctl.lockfile import Artifact, Companion

from .choice import (
    PRERELEASE_ATTR,
    YANKED_ATTR,
    VersionGroups,
    candidate_files,
    choose_files,
    exact_pin,
    group_by_version,
    names_prerelease,
    prerelease_reason,
)
from .explain import impossible_message, lock_notes, requirement_chain
from .index import CoreMetadata, FileRecord, IndexClient
from .search import SearchStopped, SearchWatch, stop_message
from .spec import PypiSpec, artifact_path
from .targets import Target

T = TypeVar("T")
READ_AHEAD = 8  # older versions whose metadata is read ahead while the search backtracks on a project
HARD = 5  # rejected candidates after which a project is decided before the others


@dataclass(frozen=True, slots=True)
class Req:
    name: NormalizedName
    extras: frozenset[str]
    specifier: SpecifierSet
    text: str  # as written, for messages
    parent: Candidate | None = field(default=None, compare=False)

    @property
    def identifier(self) -> str:
        return identifier(self.name, self.extras)


@dataclass(frozen=True, slots=True)
class Candidate:
    name: NormalizedName
    version: Version
    file: FileRecord
    extras: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return f"{self.name}{'[' + ','.join(sorted(self.extras)) + ']' if self.extras else ''} {self.version}"


def identifier(name: str, extras: Iterable[str]) -> str:
    ex = sorted(extras)
    return f"{name}[{','.join(ex)}]" if ex else name


def to_req(req: Requirement, parent: Candidate | None) -> Req:
    return Req(
        canonicalize_name(req.name),
        frozenset(canonicalize_name(e) for e in req.extras),
        req.specifier,
        str(req),
        parent,
    )


def marker_ok(req: Requirement, env: Mapping[str, str], extras: Iterable[str] = ()) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras))


class _Bridge:
    """Runs index coroutines on the event loop from a resolver thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.aborted = False
        self.background: set[asyncio.Future[Any]] = set()  # prefetches in flight (kept referenced)
        self._groups: dict[str, VersionGroups] = {}  # per project, shared by every target's provider

    def groups(self, name: str, files: Sequence[FileRecord]) -> VersionGroups:
        # Computed at most a few times (threads may race; the result is the same), then shared.
        found = self._groups.get(name)
        if found is None:
            found = self._groups.setdefault(name, group_by_version(files))
        return found

    def keep(self, fut: asyncio.Future[Any]) -> None:
        self.background.add(fut)
        fut.add_done_callback(self.background.discard)

    def run(self, make: Any) -> Any:
        if self.aborted:
            raise ResolutionError("resolution stopped: another target failed")

        async def call() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result()

    def spawn(self, make: Any) -> None:
        def start() -> None:
            self.keep(asyncio.ensure_future(make()))

        self.loop.call_soon_threadsafe(start)


class _PinReporter(BaseReporter[Req, Candidate, str]):
    """Hands each file the resolver pins to ``prefetch`` (``mirrorctl lock --snapshot``), on the loop thread,
    so its download overlaps the rest of the resolution. Only files the page lists with size and sha256:
    the download is verified against those (the lock records the same values)."""

    def __init__(self, provider: TargetProvider, prefetch: Callable[[FetchItem], None]) -> None:
        self._provider, self._prefetch = provider, prefetch

    def pinning(self, candidate: Candidate) -> None:
        f = candidate.file
        if candidate.extras or f.sha256 is None or f.size is None or self._provider.bridge.aborted:
            return  # foo[x] pins the same file as foo, which is pinned too
        self._provider.bridge.loop.call_soon_threadsafe(self._submit, f)

    def _submit(self, f: FileRecord) -> None:  # on the loop thread
        _speculate(self._prefetch, f)  # usually started already from the prefetch's guess: then a no-op
        label = f"pypi {f.name} {f.version} ({f.filename})"
        # The PEP 658 metadata file is locked too (a companion); its bytes were read to get here.
        md = self._provider.index.cached_metadata(f.filename) if f.metadata_offered else None
        if md is not None and md.from_pep658:
            sha = hashlib.sha256(md.raw).hexdigest()
            self._prefetch(
                FetchItem(f.url + ".metadata", f.filename + ".metadata", len(md.raw), sha, label + ".metadata")
            )


class TargetProvider(AbstractProvider[Req, Candidate, str]):
    def __init__(
        self,
        spec: PypiSpec,
        target: Target,
        index: IndexClient,
        bridge: _Bridge,
        prefetch: Callable[[FetchItem], None] | None = None,
    ) -> None:
        self.spec, self.target, self.index, self.bridge = spec, target, index, bridge
        self.prefetch = prefetch
        self.env = target.marker_env()
        self.constraints: dict[str, list[Requirement]] = {}
        for c in spec.constraints:
            if marker_ok(c, self.env):
                self.constraints.setdefault(canonicalize_name(c.name), []).append(c)
        self._choices: dict[str, list[FileRecord]] = {}
        self.parents: dict[str, Candidate] = {}
        # The requirements' specifiers last asked for per project, to explain a failed resolution.
        self.wanted: dict[str, list[SpecifierSet]] = {}
        self._prefetched: set[tuple[str, str]] = set()
        self.watch: SearchWatch | None = None  # set while resolving: the search's figures
        self._positions: dict[str, dict[str, int]] = {}  # project -> filename -> index in its choices
        self._deps: dict[tuple[str, frozenset[str]], list[Req]] = {}
        # (project, specifier) -> the positions in the project's choices it admits (list, and as a set)
        self._admits: dict[tuple[str, str], tuple[tuple[int, ...], frozenset[int]]] = {}
        # The profile's requirements in the order written: pip prefers them in that order.
        self.requested: dict[str, int] = {}
        for n, r in enumerate(spec.requirements):
            self.requested.setdefault(to_req(r, None).identifier, n)

    # -- resolvelib interface ----------------------------------------------------------------------------

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return identifier(requirement_or_candidate.name, requirement_or_candidate.extras)

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Iterable[str]:
        """The causes of the last conflict first, as pip does: there is no solution while they conflict,
        and picking them here is linear where a check in get_preference would be quadratic."""
        causes = {c.requirement.identifier for c in backtrack_causes} | {
            identifier(c.parent.name, c.parent.extras) for c in backtrack_causes if c.parent is not None
        }
        ids = list(identifiers)
        chosen = [i for i in ids if i in causes]
        return chosen or ids

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Any:
        """pip's order: pinned (``==``/``===`` without a wildcard) first, then the projects the search keeps
        rejecting candidates of, then upper-bounded requirements
        (``<``, ``<=``, ``~=``, ``==x.*``: since the newest is tried first, a bound rules candidates out
        soonest), then the profile's requirements in the order written, then any with an operator, then
        by name (deterministic)."""
        ops = [(s.operator, s.version) for i in information[identifier] for s in i.requirement.specifier]
        ops.extend((s.operator, s.version) for c in self.constraints.get(identifier, []) for s in c.specifier)
        pinned = any(op in ("==", "===") and "*" not in v for op, v in ops)
        upper = any(op in ("<", "<=", "~=") or (op == "==" and "*" in v) for op, v in ops)
        # A project whose candidates the search keeps rejecting is decided before the others (uv does the
        # same after a few conflicts): pinned late, after the projects it conflicts with, each of its
        # versions is tried against their newest and the search walks back through theirs one by one
        # (dbt-core in the 300-project profile: 176886 rejections, then the bound; decided early: 5 s).
        name = identifier.split("[")[0]
        hard = self.watch is not None and self.watch.rejected.get(name, 0) >= HARD
        return (not pinned, not hard, not upper, self.requested.get(identifier, math.inf), not ops, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        reqs = list(requirements[identifier])
        name = canonicalize_name(identifier.split("[")[0])
        extras = reqs[0].extras if reqs else frozenset()
        bad = {c.version for c in incompatibilities[identifier]}
        specifiers = self.specifiers(name, [r.specifier for r in reqs])
        self.wanted[name] = [r.specifier for r in reqs]
        admit_all = self.spec.prereleases or names_prerelease(specifiers)
        yank_ok = exact_pin(specifiers)
        files = self._matching(name, self._files(name), specifiers)

        # Lazy, as pip does: resolvelib usually takes the first (newest) match. Versions marked incompatible
        # are dropped after the pre-release decision, which (as pip's) looks at every release the target
        # has, not at what backtracking has ruled out so far.
        def matches() -> Iterator[Candidate]:
            for f in candidate_files(files, (), admit_all=admit_all, yank_ok=yank_ok):
                if f.version not in bad:
                    yield Candidate(name, f.version, f, extras)

        return matches

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> list[Req]:
        # The same candidate is asked again each time the search comes back to it (a backtracking search
        # over boto3 x aiobotocore asks thousands of times): its dependencies are the same every time.
        key = (candidate.file.filename, candidate.extras)
        known = self._deps.get(key)
        if known is not None:
            return known
        deps = self._dependencies(candidate)
        self._deps[key] = deps
        return deps

    def _matching(
        self, name: NormalizedName, files: list[FileRecord], specifiers: Sequence[SpecifierSet]
    ) -> list[FileRecord]:
        """The files whose versions satisfy every specifier, in ``files``' order. Each specifier is checked
        against a project's versions once per target and kept as the positions it admits: a search that
        backtracks asks for the same specifiers in new combinations thousands of times, and checking
        thousands of versions (boto3, botocore) against each one every time was most of its work."""
        admitted = []
        for ss in specifiers:
            if not str(ss):
                continue
            key = (name, str(ss))
            hit = self._admits.get(key)
            if hit is None:
                positions = tuple(n for n, f in enumerate(files) if ss.contains(f.version, prereleases=True))
                hit = self._admits[key] = (positions, frozenset(positions))
            admitted.append(hit)
        if not admitted:
            return files
        admitted.sort(key=lambda hit: len(hit[0]))
        rest = [hit[1] for hit in admitted[1:]]
        return [files[n] for n in admitted[0][0] if all(n in r for r in rest)]

    def _dependencies(self, candidate: Candidate) -> list[Req]:
        if self.watch is not None and self.watch.rejected.get(candidate.name):
            self._read_ahead(candidate)
        md: CoreMetadata = self.bridge.run(lambda: self.index.metadata(candidate.file))
        deps: list[Req] = []
        if candidate.extras:
            pin = SpecifierSet(f"=={candidate.version}")
            deps.append(
                Req(candidate.name, frozenset(), pin, f"{candidate.name}=={candidate.version}", candidate)
            )
            for r in md.requires_dist:
                if (
                    r.marker is not None
                    and marker_ok(r, self.env, candidate.extras)
                    and not marker_ok(r, self.env)
                ):
                    deps.append(to_req(r, candidate))
        else:
            deps.extend(to_req(r, candidate) for r in md.requires_dist if marker_ok(r, self.env))
        for d in deps:
            if d.name != candidate.name:
                self.parents.setdefault(d.name, candidate)
        self._prefetch(deps)
        return deps

    # -- helpers -------------------------------------------------------------------------------------------

    def _read_ahead(self, candidate: Candidate) -> None:
        """While the search goes back through a project's versions, the metadata of the next older ones is
        read in parallel: each rejected candidate otherwise cost one round trip, one after the other (uv
        reads ahead the same way). Only files whose metadata is cheap (PEP 658 or a wheel's Range read)."""
        choices = self._choices.get(candidate.name, [])
        where = self._positions.get(candidate.name)
        if where is None:
            where = self._positions[candidate.name] = {f.filename: n for n, f in enumerate(choices)}
        start = where.get(candidate.file.filename)
        if start is None:
            return
        for f in choices[start + 1 : start + 1 + READ_AHEAD]:
            if (f.metadata_offered or f.kind == "wheel") and self.index.cached_metadata(f.filename) is None:
                self.bridge.spawn(lambda f=f: self.index.metadata(f))

    def chain(self, cause: Any) -> str:
        """One conflicting requirement with the chain that asked for it (``lib>=2 <- app 1.0 <- the profile``)."""
        return " <- ".join(requirement_chain(cause.requirement, cause.parent, self)[0])

    def _files(self, name: NormalizedName) -> list[FileRecord]:
        if name not in self._choices:
            files = self.bridge.run(lambda: self.index.project(name))
            self._choices[name] = choose_files(files, self.target, self.spec, self.bridge.groups(name, files))
        return self._choices[name]

    def specifiers(self, name: NormalizedName, specifiers: Iterable[SpecifierSet]) -> list[SpecifierSet]:
        """The requirements' specifiers on a project plus the profile's constraints on it: what a candidate
        must satisfy, and what the pre-release and yank rules look at (pip merges them the same way)."""
        return [*specifiers, *(c.specifier for c in self.constraints.get(name, []))]

    def first_candidate(
        self, name: NormalizedName, specifier: SpecifierSet, choices: Sequence[FileRecord]
    ) -> FileRecord | None:
        """The newest candidate for one requirement alone (a prefetch's guess at what will be pinned)."""
        specifiers = self.specifiers(name, [specifier])
        admit_all = self.spec.prereleases or names_prerelease(specifiers)
        return next(candidate_files(choices, specifiers, admit_all=admit_all, yank_ok=False), None)

    def _prefetch(self, deps: Sequence[Req]) -> None:
        """Ask the loop for the newest acceptable version's metadata of each dependency, recursively."""
        for d in deps:
            if _prefetch_key(d) not in self._prefetched:
                self._prefetched.add(_prefetch_key(d))
                self.bridge.spawn(lambda d=d: _prefetch(self, d, 0))


def _speculate(prefetch: Callable[[FetchItem], None], f: FileRecord) -> None:
    """Start downloading a file the resolver will probably pin (lock --snapshot); verified like any other."""
    if f.sha256 is not None and f.size is not None:
        prefetch(FetchItem(f.url, f.filename, f.size, f.sha256, f"pypi {f.name} {f.version} ({f.filename})"))


def _prefetch_key(req: Req) -> tuple[str, str]:
    # Per extras (foo[x] needs more than foo) and per specifier: "dateutil<3" from one parent and
    # "dateutil>=2.8" from another pick different versions, and the resolver will want the first.
    return req.identifier, str(req.specifier)


async def _prefetch(provider: TargetProvider, req: Req, depth: int) -> None:
    try:
        files = await provider.index.project(req.name)
        choices = provider._choices.get(req.name)
        if choices is None:  # computed once per target and project, by whichever side comes first
            choices = provider._choices.setdefault(
                req.name,
                choose_files(files, provider.target, provider.spec, provider.bridge.groups(req.name, files)),
            )
        # The newest version this requirement, the profile's constraints and the pre-release policy allow.
        best = provider.first_candidate(req.name, req.specifier, choices)
        if best is None or depth > 30:
            return
        if provider.prefetch is not None:
            # The resolver pins in a burst at the very end (it waits for pages and metadata first), so a
            # download started only at the pin would hardly overlap anything: start at this first guess.
            _speculate(provider.prefetch, best)
        md = await provider.index.metadata(best)
        for r in md.requires_dist:
            if marker_ok(r, provider.env, req.extras):
                dep = to_req(r, None)
                if _prefetch_key(dep) not in provider._prefetched:
                    provider._prefetched.add(_prefetch_key(dep))
                    provider.bridge.keep(asyncio.ensure_future(_prefetch(provider, dep, depth + 1)))
    except Exception:  # a prefetch is a hint; the resolver meets the same error and reports it
        return


# -- the service --------------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    target: Target
    files: list[FileRecord]
    # filename -> why a pre-release was admitted here (choice.PRE_*), and the requirements it had to meet
    prereleases: dict[str, tuple[str, str]] = field(default_factory=dict)


async def resolve_spec(spec: PypiSpec, ctx: ResolveContext) -> list[Artifact]:
    """Every target's closure, merged: one artifact per file, ``targets`` naming who needs it."""
    targets = spec.targets()
    index = IndexClient(
        ctx.client,
        ctx.upstream.url,
        progress=ctx.progress,
        concurrency=ctx.fetch.concurrency,
        retries=ctx.fetch.retries,
        store=ctx.store,
        # wheels that install on none of the targets are never candidates: not even kept in memory
        wheel_ok=lambda tags: any(t.tag_priority(tags) is not None for t in targets),
        filter_key=",".join(sorted(t.id for t in targets)),
        sdists=spec.sdist != "never",  # never a candidate: not parsed at all
    )
    try:
        return await resolve_with_index(spec, index, ctx)
    finally:
        await index.close()


async def resolve_with_index(spec: PypiSpec, index: IndexClient, ctx: ResolveContext) -> list[Artifact]:
    loop = asyncio.get_running_loop()
    bridge = _Bridge(loop)
    targets = spec.targets()
    for r in spec.requirements:  # start the top-level pages at once
        _ = index.project(r.name)
    task = ctx.progress.task(f"pypi: resolving {len(targets)} target(s) for {ctx.profile_name}", len(targets))
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, len(targets)), thread_name_prefix="resolve"
    )

    providers = [TargetProvider(spec, t, index, bridge, ctx.prefetch) for t in targets]
    for provider in providers:
        # Every target's likely closure at once (pages, then metadata, then their dependencies' pages),
        # bounded by the index client's semaphore, so the resolver threads seldom wait for a round trip.
        provider._prefetch([to_req(r, None) for r in spec.requirements if marker_ok(r, provider.env)])

    def note(message: str) -> None:  # from a resolver thread: progress renders on the loop's thread
        loop.call_soon_threadsafe(ctx.progress.note, message)

    async def one(provider: TargetProvider) -> TargetResult:
        result = await loop.run_in_executor(executor, _resolve_target, provider, ctx.lock, note)
        task.advance()
        return result

    try:
        results = await asyncio.gather(*(one(p) for p in providers))
    except BaseException:
        bridge.aborted = True
        raise
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        task.close()
    for line in lock_notes(results):
        ctx.progress.note(line)
    if index.downloads:
        ctx.progress.note(
            f"pypi: downloaded {index.downloads} file(s) whole to read their dependencies (no PEP 658 "
            f"metadata, no usable Range); {index.stored} of them kept in the store for snapshot"
        )
    return await _artifacts(results, index)


def _resolve_target(provider: TargetProvider, limits: LockSettings, note: Callable[[str], None]) -> TargetResult:
    spec, target = provider.spec, provider.target
    roots = [to_req(r, None) for r in spec.requirements if marker_ok(r, provider.env)]
    inner = _PinReporter(provider, provider.prefetch) if provider.prefetch else None
    watch = SearchWatch(target.id, limits, note=note, inner=inner)
    provider.watch = watch
    resolver: Resolver[Req, Candidate, str] = Resolver(provider, watch)
    try:
        result = resolver.resolve(roots, max_rounds=limits.max_rounds)
    except ResolutionImpossible as exc:
        raise ResolutionError(impossible_message(target, exc, provider), hint=_HINT) from None
    except ResolutionTooDeep:
        message, hint = stop_message(watch, f"[lock] max-rounds = {limits.max_rounds}", provider.chain)
        raise ResolutionError(message, hint=hint) from None
    except SearchStopped as stop:
        message, hint = stop_message(watch, stop.bound, provider.chain)
        raise ResolutionError(message, hint=hint) from None
    files = [c.file for c in result.mapping.values() if not c.extras]
    prereleases: dict[str, tuple[str, str]] = {}
    for ident, cand in result.mapping.items():
        if cand.extras or not cand.version.is_prerelease:
            continue
        # Every requirement on the project (those on foo[x] too), except the pin each foo[x] adds on foo.
        reqs = [
            info.requirement
            for key, crit in result.criteria.items()
            if key.split("[")[0] == ident
            for info in crit.information
            if not (info.parent is not None and info.parent.name == cand.name)
        ]
        specifiers = provider.specifiers(cand.name, [r.specifier for r in reqs])
        reason = prerelease_reason(cand.version, specifiers, spec)
        if reason is not None:
            wanted = ", ".join(sorted({r.text for r in reqs} | {str(c) for c in provider.constraints.get(ident, [])}))
            prereleases[cand.file.filename] = (reason, wanted)
    return TargetResult(target, sorted(files, key=lambda f: f.filename), prereleases)


_HINT = "relax a requirement or constraint in the profile, or drop the target that cannot be met"


async def _artifacts(results: Sequence[TargetResult], index: IndexClient) -> list[Artifact]:
    files: dict[str, FileRecord] = {}
    needed: dict[str, set[str]] = {}
    pre: dict[str, set[str]] = {}
    for res in results:
        for f in res.files:
            files[f.filename] = f
            needed.setdefault(f.filename, set()).add(res.target.id)
        for filename, (reason, _) in res.prereleases.items():
            pre.setdefault(filename, set()).add(reason)

    async def build(f: FileRecord) -> Artifact:
        size = await index.file_size(f)
        sha = f.sha256 or await _hash_file(index, f)
        companions: tuple[Companion, ...] = ()
        if f.metadata_offered:
            md = index.cached_metadata(f.filename) or await index.metadata(f)
            if md.from_pep658:
                companions = (Companion(".metadata", len(md.raw), hashlib.sha256(md.raw).hexdigest()),)
        attrs: dict[str, str | int | bool] = {"kind": f.kind}
        if f.requires_python:
            attrs["requires-python"] = f.requires_python
        if f.yanked:  # served as yanked, so pip and uv inside warn as they would outside
            attrs[YANKED_ATTR] = f.yank_reason or True
        if f.filename in pre:
            attrs[PRERELEASE_ATTR] = ",".join(sorted(pre[f.filename]))
        return Artifact(
            "pypi",
            str(f.name),
            str(f.version),
            artifact_path(str(f.name), f.filename),
            size,
            sha,
            tuple(sorted(needed[f.filename])),
            attrs,
            companions,
        )

    arts = await asyncio.gather(*(build(f) for f in files.values()))
    if index.url_cache is not None:  # so the snapshot right after need not read every page again
        by_name = {a.filename: a.sha256 for a in arts}
        index.url_cache.add({by_name[f.filename]: f.url for f in files.values()})
    return sorted(arts, key=Artifact.sort_key)


async def _hash_file(index: IndexClient, f: FileRecord) -> str:
    # An index that lists no sha256 (plain HTML without fragments): the lock still must carry one.
    data = await index._download(f.url, f"pypi {f.name} {f.version} ({f.filename})")
    return hashlib.sha256(data).hexdigest()


def check_lock(
    spec: PypiSpec, artifacts: Sequence[Artifact], targets: Collection[str] | None = None
) -> list[str]:
    """Problems that make the locked set no longer fit the spec: a missing or extra target, a top-level
    requirement or constraint that the locked versions of some target do not satisfy.

    ``targets``: those the lock records as resolved (None: those its artifacts name). A recorded target
    without artifacts is an empty closure (every requirement's marker excludes it), which is valid; its
    requirements are still checked, so one whose marker now includes it is reported."""
    problems: list[str] = []
    wanted = set(spec.target_ids())
    locked_targets = {t for a in artifacts for t in a.targets} | set(targets or ())
    for extra in sorted(locked_targets - wanted):
        problems.append(f"pypi: the lock has target {extra}, which the profile no longer declares")
    for target in spec.targets():
        have = {canonicalize_name(a.name): a for a in artifacts if target.id in a.targets}
        if target.id not in locked_targets:
            problems.append(f"pypi target {target.id}: not in the lock")
            continue
        env = target.marker_env()
        for kind, reqs in (("requirement", spec.requirements), ("constraint", spec.constraints)):
            for r in reqs:
                if not marker_ok(r, env):
                    continue
                a = have.get(canonicalize_name(r.name))
                if a is None:
                    if kind == "requirement":
                        problems.append(f"pypi target {target.id}: {kind} {str(r)!r} has no locked artifact")
                    continue
                if not r.specifier.contains(a.version, prereleases=True):
                    problems.append(
                        f"pypi target {target.id}: {kind} {str(r)!r} is not met by locked {a.version}"
                    )
    return problems
