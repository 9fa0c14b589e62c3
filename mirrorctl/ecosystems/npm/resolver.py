"""The npm closure for every declared platform, the way npm installs it.

Each range is resolved as npm-pick-manifest resolves it: a dist-tag through the packument's ``dist-tags``; a
range prefers the ``latest`` tag when that version satisfies it and is not deprecated, else the highest
satisfying version that is not deprecated, else the highest satisfying one (node-semver, loose as npm parses,
prereleases only where the range names one). Then that version's ``dependencies``, ``optionalDependencies``
and, as npm 7+ installs them, ``peerDependencies`` (``bundleDependencies`` are inside the tarball and not
fetched). ``npm:`` aliases resolve the aliased package.

Peers are placed as @npmcli/arborist places them: it only resolves an edge that is missing or invalid, so a peer
whose range the tree already satisfies takes the version the tree has (``eslint@^9`` in the profile and a plugin's
peer ``eslint >=8``: 9, not the upstream's newest major). So peers are resolved after the dependencies, in rounds
(sorted, hence deterministic): a peer reuses the version the closure holds that satisfies its range (one a root
asked for first, then the highest); only when none does is a version picked (a second copy, as npm nests one),
satisfying every peer range of that name in the round when one can (arborist's advisory second edge). A peer
``peerDependenciesMeta`` marks optional is not installed unless the closure holds that package; then a version
must satisfy it, as npm resolves an invalid peerOptional edge.

Why each package is there is recorded in the lock: attr ``roots``, the profile's requests it answers
(``eslint@^9``), and ``required-by``, the packages whose dependency or peer edge resolved to it
(``eslint-plugin-x@1.2.0``); both sorted, ``, ``-separated. The served ``latest`` is the highest version a root
asked for (serve.py ``dist_tags``).

Platforms: npm builds one tree for every platform and skips, at install, an optional package whose ``os`` /
``cpu`` / ``libc`` exclude the machine. So a package reached over an optional edge is kept for the declared
platforms it accepts (esbuild's ``@esbuild/linux-x64`` for linux-x64, ``@esbuild/linux-arm64`` for
linux-arm64, neither for win32), and what it depends on only for those. An optional dependency that cannot
be resolved is skipped, as npm skips it; anything else that cannot be is a :class:`ResolutionError` naming the
package, the range and the chain of dependents.

The lock records size and sha256, which the registry does not list, so every tarball is downloaded once while
locking (started as soon as its version is pinned), verified against the packument's integrity, and kept in
the store when there is one (``mirrorctl snapshot`` then downloads nothing): staged while resolving and
committed only when the whole closure resolved, so a failed lock stores nothing.

Names and versions an upstream document gives become request paths, lock entries and file names: a picked
version that is not a canonical semver version (``1.0.0/../../x``) and a dependency or alias target name that
is not a valid npm name (``../x``) are refused before anything is requested or downloaded for them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import nodesemver

from mirrorctl.ecosystems.base import ResolveContext
from mirrorctl.errors import IntegrityError, MirrorctlError, ResolutionError
from mirrorctl.lockfile import Artifact, AttrValue

from .lockcheck import check_lock
from .picking import Versions, pick_version, pick_without_scan, scan
from .registry import Packument, RegistryClient, Tarball, sri_hashes
from .spec import (
    NpmSpec,
    Platform,
    Root,
    classify,
    split_arg,
    tarball_filename,
    tarball_path,
    valid_name,
    valid_version,
)
from .staging import StagedStore

__all__ = ["check_lock", "pick_version", "recorded_tags", "resolve_spec"]

Chain = tuple[str, ...]
# The lock attr naming the upstream dist-tags that pointed at the locked version ("latest,next"): what serve and
# the Pulp layout publish as the mirror's dist-tags (npm/serve.py ``dist_tags``).
DIST_TAGS_ATTR = "dist-tags"
# Why a package is in the lock (see the module docstring): the profile requests it answers, and the packages
# whose edges reach it. serve.py publishes ``latest`` as the highest version with ``roots``.
ROOTS_ATTR = "roots"
REQUIRED_BY_ATTR = "required-by"


def recorded_tags(dist_tags: Mapping[str, str], version: str) -> list[str]:
    """The upstream's tags pointing at ``version``, sorted; only names npm accepts as tags (never a version or
    range, never a ``,`` that would split the attr)."""
    return sorted(t for t, v in dist_tags.items() if v == version and classify(t) == "tag")


@dataclass
class _Node:
    name: str
    version: str
    doc: Packument
    platforms: set[str] = field(default_factory=set)  # the declared platforms that install it
    expanded: set[str] = field(default_factory=set)  # those for which its dependencies were followed
    chain: Chain = ()  # how it was first reached, for messages
    tarball: asyncio.Future[Tarball] | None = None
    roots: set[str] = field(default_factory=set)  # the profile requests (root labels) it answers
    required_by: set[str] = field(default_factory=set)  # name@version of the packages whose edges reach it


@dataclass(frozen=True, slots=True)
class _Peer:
    """A peer edge, placed after the dependencies (see the module docstring)."""

    dependent: tuple[str, str]
    name: str  # the package (an alias resolved)
    wanted: str
    optional: bool  # peerDependenciesMeta optional: only if the closure holds the package
    platforms: frozenset[str]
    chain: Chain

    def key(self) -> tuple[str, str, str, str, tuple[str, ...]]:
        return (*self.dependent, self.name, self.wanted, tuple(sorted(self.platforms)))


# Edge kinds, as arborist names them.
DEP, OPTIONAL, PEER, PEER_OPTIONAL = "prod", "optional", "peer", "peerOptional"


def _edges(doc: Mapping[str, Any], include_peer: bool) -> Iterator[tuple[str, str, str]]:
    """(name, spec, kind) of what installing this version installs, in a stable order."""
    bundled = doc.get("bundleDependencies", doc.get("bundledDependencies"))
    deps = _mapping(doc.get("dependencies"))
    optional = _mapping(doc.get("optionalDependencies"))
    if bundled is True:
        skip = set(deps)
    elif isinstance(bundled, list):
        skip = {str(b) for b in bundled}
    else:
        skip = set()
    out: dict[str, tuple[str, str]] = {}
    if include_peer:
        meta = doc.get("peerDependenciesMeta")
        meta = meta if isinstance(meta, Mapping) else {}
        for name, spec in _mapping(doc.get("peerDependencies")).items():
            m = meta.get(name)
            out[name] = (spec, PEER_OPTIONAL if isinstance(m, Mapping) and m.get("optional") else PEER)
    for name, spec in deps.items():
        out[name] = (spec, DEP)
    for name, spec in optional.items():  # npm: optionalDependencies override dependencies of the same name
        out[name] = (spec, OPTIONAL)
    for name in sorted(out):
        if name not in skip:
            yield name, out[name][0], out[name][1]


def _mapping(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items() if isinstance(v, str)} if isinstance(value, Mapping) else {}


def _platform_ok(plat: Platform, doc: Mapping[str, Any], root: Root | None = None) -> bool:
    if root is not None and (root.os or root.cpu or root.libc):
        return plat.accepts(list(root.os), list(root.cpu), list(root.libc))
    return plat.accepts(doc.get("os"), doc.get("cpu"), doc.get("libc"))


class Resolver:
    def __init__(self, spec: NpmSpec, registry: RegistryClient, ctx: ResolveContext) -> None:
        self.spec = spec
        self.registry = registry
        self.ctx = ctx
        self.platforms = {p.id: p for p in spec.platforms}
        self.nodes: dict[tuple[str, str], _Node] = {}
        self._picks: dict[tuple[str, str], str | None] = {}
        self._versions: dict[str, Versions] = {}
        self.skipped: list[str] = []
        self._peers: list[_Peer] = []

    async def packument(self, name: str, wanted: str, chain: Chain) -> Packument:
        if not valid_name(name):
            # A name from an upstream document (a dependency, an alias target) becomes a request path and a
            # tarball name: refused before it is requested.
            raise _hostile("package name", name, name, f"{name}@{wanted or '*'}", chain)
        doc = await self.registry.packument(name)
        if doc is None:
            raise ResolutionError(
                f"npm: package {name} is not on the upstream (wanted as {name}@{wanted or '*'} by {_chain(chain)})",
                hint="check the name, or the [upstreams.npm] url in mirrorctl.toml",
            )
        return doc

    async def pick(self, name: str, wanted: str, chain: Chain) -> tuple[Packument, str]:
        doc = await self.packument(name, wanted, chain)
        key = (name, wanted)
        if key not in self._picks:
            decided, picked, range_obj = pick_without_scan(doc, wanted)
            if not decided:
                # Parsing every version (thousands for some packages) is CPU work: only when the latest tag
                # does not satisfy the range, once per package, off the event loop.
                versions = self._versions.get(name)
                if versions is None:
                    versions = self._versions[name] = await asyncio.to_thread(Versions, doc)
                picked = scan(doc, range_obj, versions)
            self._picks[key] = picked
        version = self._picks[key]
        if version is None:
            kind = "dist-tag" if classify(wanted) == "tag" else "range"
            latest = doc.dist_tags.get("latest", "none")
            raise ResolutionError(
                f"npm: no version of {name} matches the {kind} {wanted!r} (wanted by {_chain(chain)}); "
                f"the upstream lists {len(doc.versions)} version(s), latest {latest}",
                hint="widen the range in the profile, or check that the upstream is complete",
            )
        if not valid_version(version):
            # The picked key becomes the lock's version and the tarball's file name ("1.0.0/../../x"): refused
            # before its download starts. Roots, dependencies and package-lock pins all pass here.
            raise _hostile("version", version, name, f"{name}@{wanted or '*'}", chain)
        return doc, version

    def _add(
        self, name: str, version: str, platforms: set[str], chain: Chain, doc: Packument, *, pinned: bool = False
    ) -> _Node:
        """Record that ``platforms`` install this version; start its download when it is new. ``pinned``: a
        package-lock pin, whose dependencies are not followed (the package-lock pins them)."""
        node = self.nodes.get((name, version))
        if node is None and not pinned:
            # A required dependency with a hostile name fails the lock anyway: refused before this version's
            # own download starts. (Optional ones are refused in packument() and skipped, as npm skips them.)
            here = (*chain, f"{name}@{version}")
            for dep, wanted, kind in _edges(doc.versions[version], self.spec.include_peer):
                target = split_arg(wanted[4:])[0] if wanted.startswith("npm:") else dep
                if kind in (DEP, PEER) and not valid_name(target):
                    raise _hostile("package name", target, name, f"{dep}@{wanted}", here)
        if node is None:
            node = self.nodes[(name, version)] = _Node(name, version, doc, chain=chain)
            dist = doc.versions[version]["dist"]
            url = urljoin(self.registry.packument_url(name), dist.get("tarball", ""))
            if not dist.get("tarball"):
                raise ResolutionError(f"npm: {name}@{version} has no dist.tarball on the upstream ({doc.url})")
            label = f"npm {name} {version} ({tarball_filename(name, version)})"
            node.tarball = asyncio.ensure_future(
                self.registry.tarball(url, dist.get("integrity"), dist.get("shasum"), label)
            )
        node.platforms |= platforms
        return node

    async def visit(
        self, name: str, version: str, platforms: set[str], chain: Chain, doc: Packument, why: str | None = None
    ) -> None:
        """Install ``name@version`` for ``platforms``; ``why``: the name@version whose edge reached it (None for
        a root, recorded by :meth:`root`)."""
        here = (*chain, f"{name}@{version}")
        edges = list(_edges(doc.versions[version], self.spec.include_peer))
        node = self._add(name, version, platforms, chain, doc)
        if why is not None:
            node.required_by.add(why)
        new = platforms - node.expanded  # checked and updated with no await between: one visit per platform
        if not new:
            return
        node.expanded |= new
        me = f"{name}@{version}"
        async with asyncio.TaskGroup() as tg:
            for dep, wanted, kind in edges:
                if kind in (PEER, PEER_OPTIONAL):
                    target, spec = split_arg(wanted[4:]) if wanted.startswith("npm:") else (dep, wanted)
                    peer = _Peer((name, version), target, spec, kind == PEER_OPTIONAL, frozenset(new), here)
                    self._peers.append(peer)
                else:
                    tg.create_task(self.follow(dep, wanted, kind == OPTIONAL, new, here, me))

    async def follow(
        self, name: str, wanted: str, optional: bool, platforms: set[str], chain: Chain, why: str
    ) -> None:
        if wanted.startswith("npm:"):
            name, wanted = split_arg(wanted[4:])  # the alias is the install folder's name only
        try:
            if classify(wanted) is None:
                raise ResolutionError(
                    f"npm: {name}@{wanted} (wanted by {_chain(chain)}) is not a registry version, range or tag",
                    hint="git, URL and file dependencies cannot be mirrored; pin a registry version instead",
                )
            doc, version = await self.pick(name, wanted, chain)
        except ResolutionError as exc:
            if not optional:
                raise
            self.skipped.append(f"{name}@{wanted} (optional, wanted by {_chain(chain)}): {exc.message}")
            return
        if optional:
            platforms = await self._platforms_for(platforms, name, version, doc)
        if platforms:
            await self.visit(name, version, platforms, chain, doc, why)

    async def _platforms_for(self, platforms: set[str], name: str, version: str, doc: Packument) -> set[str]:
        """The platforms that install an optional package (its ``os``/``cpu``/``libc``). The abbreviated document
        the public registry serves has no ``libc``: for a linux build it is read from the full document."""
        manifest = doc.versions[version]
        kept = {p for p in platforms if _platform_ok(self.platforms[p], manifest)}
        # Only a build that some declared linux platform would take by os/cpu is worth the larger document.
        linux = any(self.platforms[p].os == "linux" for p in kept)
        if linux and "libc" not in manifest and _names_linux(manifest.get("os")) and doc.abbreviated:
            full = await self.registry.full_packument(name)
            if full is not None and version in full.versions:
                manifest = full.versions[version]
                kept = {p for p in kept if _platform_ok(self.platforms[p], manifest)}
        return kept

    async def place_peers(self) -> None:
        """Rounds of peer placement until no new peer edge appears (see the module docstring)."""
        docs: dict[str, Packument] = {}
        errors: dict[tuple[str, str], ResolutionError] = {}
        while self._peers:
            pending = sorted(set(self._peers), key=_Peer.key)
            self._peers = []
            fresh = {(p.name, p.wanted): p for p in pending if self._reuse(p) is None and not self._absent_optional(p)}
            async with asyncio.TaskGroup() as tg:
                for peer in fresh.values():
                    tg.create_task(self._load_peer(peer, docs, errors))
            placed: list[tuple[_Peer, str, Packument]] = []
            for peer in pending:  # in order, each seeing the versions placed before it
                version = self._reuse(peer)
                if version is None and self._absent_optional(peer):
                    continue  # npm installs an optional peer only when something else brings the package
                if version is None and peer.name not in docs and (peer.name, peer.wanted) not in errors:
                    # An optional peer whose package a peer placed earlier in this round brought.
                    await self._load_peer(peer, docs, errors)
                if version is None:
                    error = errors.get((peer.name, peer.wanted))
                    if error is not None:
                        if peer.optional:
                            self.skipped.append(f"{peer.name}@{peer.wanted} (optional peer): {error.message}")
                            continue
                        raise error
                    others = [p.wanted for p in pending if p.name == peer.name]
                    version = await self._pick_peer(docs[peer.name], peer, others)
                    if version is None:
                        continue  # an optional peer nothing satisfies: skipped (noted by _pick_peer)
                    self._add(peer.name, version, set(peer.platforms), peer.chain, docs[peer.name])
                placed.append((peer, version, self.nodes[(peer.name, version)].doc))
            async with asyncio.TaskGroup() as tg:
                for peer, version, doc in placed:
                    why = "@".join(peer.dependent)
                    tg.create_task(self.visit(peer.name, version, set(peer.platforms), peer.chain, doc, why))

    async def _load_peer(
        self, peer: _Peer, docs: dict[str, Packument], errors: dict[tuple[str, str], ResolutionError]
    ) -> None:
        try:
            if classify(peer.wanted) is None:
                raise ResolutionError(
                    f"npm: {peer.name}@{peer.wanted} (peer of {_chain(peer.chain)}) is not a registry "
                    "version, range or tag",
                    hint="git, URL and file dependencies cannot be mirrored; pin a registry version instead",
                )
            docs[peer.name] = await self.packument(peer.name, peer.wanted, peer.chain)
        except ResolutionError as exc:
            errors[(peer.name, peer.wanted)] = exc

    def _reuse(self, peer: _Peer) -> str | None:
        """The version the closure holds that satisfies the peer: one a root asked for first, then the highest."""
        if classify(peer.wanted) == "tag":
            return None  # a tag names one upstream version: picked, never matched
        have = [n for (name, _), n in self.nodes.items() if name == peer.name and _satisfies(n.version, peer.wanted)]
        if not have:
            return None
        best = max(have, key=lambda n: (bool(n.roots), _SEMVER(n.version)))
        return best.version

    def _absent_optional(self, peer: _Peer) -> bool:
        return peer.optional and not any(name == peer.name for name, _ in self.nodes)

    async def _pick_peer(self, doc: Packument, peer: _Peer, others: list[str]) -> str | None:
        """npm-pick-manifest's choice for the peer, preferring one that satisfies every peer range of the name
        in this round (arborist passes the other edge as an advisory one)."""
        try:
            _, version = await self.pick(peer.name, peer.wanted, peer.chain)
        except ResolutionError as exc:
            if not peer.optional:
                raise
            self.skipped.append(f"{peer.name}@{peer.wanted} (optional peer of {_chain(peer.chain)}): {exc.message}")
            return None
        ranges = [r for r in dict.fromkeys(others) if classify(r) != "tag"]
        if all(_satisfies(version, r) for r in ranges):
            return version
        both = [v for v in doc.versions if all(_satisfies(v, r) for r in ranges) and valid_version(v)]
        if not both:
            return version  # a conflict npm also has: each range gets its own copy
        latest = doc.dist_tags.get("latest")
        if latest in both:
            return latest
        fresh = [v for v in both if not doc.versions[v].get("deprecated")] or both
        return max(fresh, key=_SEMVER)

    async def root(self, root: Root) -> None:
        chain = (root.origin,)
        doc, version = await self.pick(root.name, root.spec, chain)
        platforms = set(self.platforms)
        if root.optional and (root.os or root.cpu or root.libc):
            platforms = {p for p in platforms if _platform_ok(self.platforms[p], doc.versions[version], root)}
        elif root.optional:
            platforms = await self._platforms_for(platforms, root.name, version, doc)
        if root.exact:  # a package-lock pin: exactly this version; its dependencies are pinned beside it
            self._check_pinned_integrity(root, doc, version)
            if platforms:
                self._add(root.name, version, platforms, chain, doc, pinned=True).roots.add(root.label)
            return
        if platforms:
            self._add(root.name, version, platforms, (), doc).roots.add(root.label)
            await self.visit(root.name, version, platforms, (), doc)

    def _check_pinned_integrity(self, root: Root, doc: Packument, version: str) -> None:
        if version != root.spec:
            raise ResolutionError(
                f"npm: {root.origin} pins {root.name}@{root.spec}, which the upstream does not list",
                hint="the package-lock names a version this upstream does not have",
            )
        listed = sri_hashes(doc.versions[version]["dist"].get("integrity"))
        pinned = sri_hashes(root.integrity)
        common = [a for a in ("sha512", "sha384", "sha256", "sha1") if a in listed and a in pinned]
        if common and listed[common[0]] != pinned[common[0]]:
            raise IntegrityError(
                f"npm: {root.origin} records integrity {root.integrity} for {root.name}@{version}, but the "
                f"upstream lists {doc.versions[version]['dist'].get('integrity')}",
                hint="npm ci would refuse this package; regenerate the package-lock or check the upstream",
            )

    async def run(self) -> list[Artifact]:
        async with asyncio.TaskGroup() as tg:
            for root in self.spec.roots:
                tg.create_task(self.root(root))
        await self.place_peers()
        self.registry.resolution_done()
        for line in self.skipped:
            self.ctx.progress.note(f"npm: skipped {line}")
        nodes = sorted(self.nodes.values(), key=lambda n: (n.name, n.version))
        task = self.ctx.progress.task(f"npm: verifying {len(nodes)} tarball(s) for {self.ctx.profile_name}", len(nodes))
        artifacts = []
        for node in nodes:
            assert node.tarball is not None
            tarball = await node.tarball
            task.advance()
            artifacts.append(self._artifact(node, tarball))
        task.close()
        return artifacts

    def _artifact(self, node: _Node, tarball: Tarball) -> Artifact:
        doc = node.doc
        dist = doc.versions[node.version]["dist"]
        attrs: dict[str, AttrValue] = {"integrity": tarball.integrity, "shasum": tarball.shasum}
        if "sha512" not in sri_hashes(dist.get("integrity")):
            self.ctx.progress.note(
                f"npm: {node.name}@{node.version} has no sha512 integrity upstream (verified by shasum only); "
                "the lock records the sha512 of the verified bytes"
            )
        tags = recorded_tags(doc.dist_tags, node.version)
        if tags:
            attrs[DIST_TAGS_ATTR] = ",".join(tags)
        if node.roots:
            attrs[ROOTS_ATTR] = ", ".join(sorted(node.roots))
        if node.required_by:
            attrs[REQUIRED_BY_ATTR] = ", ".join(sorted(node.required_by, key=_by_name_version))
        deprecated = doc.versions[node.version].get("deprecated")
        if isinstance(deprecated, str) and deprecated:
            attrs["deprecated"] = deprecated
            self.ctx.progress.note(f"npm: {node.name}@{node.version} is deprecated: {deprecated}")
        return Artifact(
            ecosystem="npm",
            name=node.name,
            version=node.version,
            path=tarball_path(node.name, node.version),
            size=tarball.size,
            sha256=tarball.sha256,
            targets=tuple(p for p in self.platforms if p in node.platforms),
            attrs=attrs,
        )


def _names_linux(os_field: Any) -> bool:
    values = [os_field] if isinstance(os_field, str) else os_field if isinstance(os_field, list) else []
    return "linux" in [str(v) for v in values]


def _satisfies(version: str, rng: str) -> bool:
    try:
        return bool(nodesemver.satisfies(version, rng.strip() or "*", loose=True))
    except ValueError:
        return False


def _semver_cmp(a: str, b: str) -> int:
    return int(nodesemver.compare(a, b, True))


_SEMVER = functools.cmp_to_key(_semver_cmp)


def _by_name_version(label: str) -> tuple[str, Any]:
    name, version = label.rsplit("@", 1)
    return (name, _SEMVER(version))


def _chain(chain: Chain) -> str:
    return " > ".join(chain) if chain else "the profile"


def _hostile(kind: str, value: str, package: str, wanted: str, chain: Chain) -> ResolutionError:
    """A refusal of a name or version an upstream document gave (it would become a path or a file name)."""
    return ResolutionError(
        f"npm: {package}: the upstream gives the {kind} {value!r}, which is not a valid npm {kind} "
        f"(wanted as {wanted} by {_chain(chain)})",
        hint="the upstream's packument is malformed or hostile; nothing was stored for it and no lock was written",
    )


def _first_error(exc: BaseException) -> BaseException:
    """The first error inside (nested) task-group exception groups, for one clear message."""
    while isinstance(exc, BaseExceptionGroup):
        errors = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        mine = [e for e in errors if isinstance(e, (MirrorctlError, BaseExceptionGroup))]
        exc = (mine or errors or list(exc.exceptions))[0]
    return exc


async def resolve_spec(spec: NpmSpec, ctx: ResolveContext) -> list[Artifact]:
    """Every platform's closure, merged: one artifact per tarball, ``targets`` naming the platforms."""
    staged = StagedStore(ctx.store)
    registry = RegistryClient(
        ctx.client,
        ctx.upstream.url,
        progress=ctx.progress,
        concurrency=ctx.fetch.concurrency,
        retries=ctx.fetch.retries,
        store=staged,
    )
    try:
        try:
            artifacts = await Resolver(spec, registry, ctx).run()
        finally:
            await registry.close()  # every download finished or cancelled
    except BaseExceptionGroup as group:
        if staged is not None:
            staged.discard()
        raise _first_error(group) from None
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is not None:
        await asyncio.to_thread(staged.publish)
    return artifacts


