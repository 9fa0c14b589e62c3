"""The apt closure for one architecture, from verified Packages stanzas.

The aim is the set ``apt-get install`` would download on a system with an empty dpkg status, so the choices follow
apt's defaults: the candidate of a package is, among its versions in every suite resolved together, the one
with the highest pin priority and, among equal priorities, the highest version (apt_preferences(5); a negative
priority is never a candidate), or the pinned version; in an or-group the first
satisfiable alternative wins unless one is already chosen; a virtual package is satisfied through Provides, and a
versioned dependency only by a versioned Provides. Conflicts and Breaks are not evaluated (apt would only remove
or refuse, never add, because of them). Recommends are followed only on request (``recommends=True``), as soft
dependencies: installed when satisfiable, skipped otherwise.

Versions are compared with :class:`debian.debian_support.Version` only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from debian.deb822 import Packages, PkgRelation
from debian.debian_support import Version

from mirrorctl.errors import ResolutionError

_PRIORITY_ORDER = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}

if TYPE_CHECKING:
    from typing import TypeAlias

    # One alternative as python-debian parses it: name, archqual, version, arch, restrictions.
    Relation: TypeAlias = PkgRelation.ParsedRelation


DEFAULT_PRIORITY = 500  # apt's priority for a version of a suite without NotAutomatic


@dataclass(frozen=True)
class Source:
    """Where a stanza was read: the suite (at ``index`` in the profile's order), its archive ("" for
    [upstreams.apt]), the component, and the suite's apt pin priority."""

    index: int
    suite: str
    archive: str
    component: str
    priority: int = DEFAULT_PRIORITY


@functools.lru_cache(maxsize=65536)
def _relations(field: str) -> tuple[tuple[Relation, ...], ...]:
    # The same relation strings ("libc6 (>= 2.34)") recur across thousands of stanzas; parse each once.
    if not field.strip():
        return ()
    return tuple(tuple(group) for group in PkgRelation.parse_relations(field))


class BinaryPackage:
    """One Packages stanza, reduced to what resolution and the lock need.

    Relations and versions are parsed lazily: a suite has tens of thousands of stanzas and a closure touches a few
    hundred, so parsing every Depends line up front would dominate a lock.
    """

    def __init__(self, fields: Mapping[str, str]) -> None:
        # Name and architecture are read for every stanza; the other fields only for the few hundred packages
        # resolution examines (``fields`` may be an :class:`.index.LazyStanza`, read in full on first use).
        self._fields = fields
        self.name: str = fields["Package"]
        self.architecture: str = fields.get("Architecture", "all")
        self.source: Source | None = None  # set by the caller that knows which suite the index belongs to

    @property
    def pin(self) -> int:
        return self.source.priority if self.source is not None else DEFAULT_PRIORITY

    @functools.cached_property
    def version_text(self) -> str:
        return self._fields["Version"]

    @functools.cached_property
    def multi_arch(self) -> str:
        return self._fields.get("Multi-Arch", "no")

    @functools.cached_property
    def priority(self) -> str:
        return self._fields.get("Priority", "optional")

    @functools.cached_property
    def essential(self) -> bool:
        return self._fields.get("Essential", "no") == "yes"

    @functools.cached_property
    def filename(self) -> str:
        return self._fields.get("Filename", "")

    @functools.cached_property
    def size(self) -> int:
        return int(self._fields.get("Size", "0"))

    @functools.cached_property
    def sha256(self) -> str:
        return self._fields.get("SHA256", "")

    @classmethod
    def from_stanza(cls, stanza: Mapping[str, str]) -> BinaryPackage:
        """From a ``debian.deb822.Packages`` stanza or any mapping of its fields."""
        return cls(stanza)

    def __repr__(self) -> str:
        return f"BinaryPackage({self.name} {self.version_text} {self.architecture})"

    @functools.cached_property
    def version(self) -> Version:
        return Version(self.version_text)

    @functools.cached_property
    def depends(self) -> tuple[tuple[Relation, ...], ...]:
        """Pre-Depends first, then Depends: both must hold before the package is usable."""
        return _relations(self._fields.get("Pre-Depends", "")) + _relations(self._fields.get("Depends", ""))

    @functools.cached_property
    def recommends(self) -> tuple[tuple[Relation, ...], ...]:
        return _relations(self._fields.get("Recommends", ""))

    @property
    def raw_provides(self) -> str:
        return self._fields.get("Provides", "")

    @functools.cached_property
    def provides(self) -> tuple[tuple[str, Version | None], ...]:
        """Provided names with their version; only ``(= v)`` is a valid versioned Provides."""
        return tuple(
            (alt["name"], Version(alt["version"][1]) if alt["version"] and alt["version"][0] == "=" else None)
            for group in _relations(self._fields.get("Provides", ""))
            for alt in group
        )


@dataclass(frozen=True)
class ResolvedPackage:
    """One line of the future lock: what to fetch and how to check it."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    source: Source | None = None


def _candidate(versions: list[BinaryPackage]) -> BinaryPackage | None:
    """apt's candidate: highest pin priority, then highest version; the first such (profile suite order) on a tie.
    Negative priorities are never candidates."""
    allowed = [p for p in versions if p.pin >= 0]
    if len(allowed) <= 1:
        return allowed[0] if allowed else None
    return max(allowed, key=lambda p: (p.pin, p.version))


def _satisfies(version: Version, constraint: tuple[str, str] | None) -> bool:
    if constraint is None:
        return True
    op, wanted = constraint
    other = Version(wanted)
    if op == "<<":
        return version < other
    if op == "<=":
        return version <= other
    if op == "=":
        return version == other
    if op == ">=":
        return version >= other
    if op == ">>":
        return version > other
    raise ResolutionError(f"unknown version operator {op!r} in a dependency on {wanted}")


def _format(alt: Relation) -> str:
    name = alt["name"] + (f":{alt['archqual']}" if alt.get("archqual") else "")
    constraint = alt.get("version")
    return f"{name} ({constraint[0]} {constraint[1]})" if constraint else name


class _Providers:
    """Virtual name -> the candidates providing it, with the provided version.

    Provides lines are parsed only for the names a dependency asks about: parsing every candidate's Provides up
    front (about 8,000 lines and 30,000 versions in a full suite) was most of a lock's resolve time. The raw
    line is split cheaply to know which candidates may provide a name; python-debian parses those when asked.
    """

    def __init__(self, candidates: Iterable[BinaryPackage]) -> None:
        self._maybe: dict[str, list[BinaryPackage]] = {}
        for cand in candidates:
            raw = cand.raw_provides
            if raw:
                for item in raw.split(","):
                    name = item.split("(", 1)[0].strip()
                    if name:
                        self._maybe.setdefault(name, []).append(cand)
        self._parsed: dict[str, list[tuple[BinaryPackage, Version | None]]] = {}

    def get(
        self, name: str, default: list[tuple[BinaryPackage, Version | None]] | None = None
    ) -> list[tuple[BinaryPackage, Version | None]]:
        found = self._parsed.get(name)
        if found is None:
            found = [(p, v) for p in self._maybe.get(name, ()) for virtual, v in p.provides if virtual == name]
            self._parsed[name] = found
        return found if found or default is None else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get(name))


class _Universe:
    """The packages installable on one architecture, by name and by what they provide."""

    def __init__(self, packages: Iterable[BinaryPackage], arch: str, pins: Mapping[str, str]) -> None:
        self.arch = arch
        self.by_name: dict[str, list[BinaryPackage]] = {}
        for pkg in packages:
            if pkg.architecture in (arch, "all"):
                self.by_name.setdefault(pkg.name, []).append(pkg)
        self.candidates: dict[str, BinaryPackage] = {}
        for name, versions in self.by_name.items():
            if name in pins:
                pinned = [p for p in versions if p.version == Version(pins[name])]
                if pinned:
                    self.candidates[name] = max(pinned, key=lambda p: p.pin)
                continue
            # Most names have one version; only compare (and so parse versions) when there is a choice.
            best = _candidate(versions)
            if best is not None:
                self.candidates[name] = best
        for name, pin in pins.items():
            if name not in self.candidates:
                have = ", ".join(sorted(str(p.version) for p in self.by_name.get(name, []))) or "none"
                raise ResolutionError(
                    f"pin {name}={pin} cannot be met on {arch}: available versions {have}",
                    hint="change or drop the pin in the profile",
                )
        # Only candidates provide: apt considers the candidate version, not every version in the index.
        self.providers = _Providers(self.candidates.values())

    def arch_ok(self, alt: Relation, pkg: BinaryPackage) -> bool:
        qual = alt.get("archqual")
        if qual is None or qual in ("native", self.arch):
            return True
        if qual == "any":
            # ":any" is only satisfied by Multi-Arch: allowed (foreign packages satisfy every architecture anyway).
            return pkg.multi_arch in ("allowed", "foreign")
        return False

    def matches(self, alt: Relation, pkg: BinaryPackage) -> bool:
        """Whether the (already chosen) ``pkg`` satisfies the alternative, directly or through Provides."""
        if not self.arch_ok(alt, pkg):
            return False
        if pkg.name == alt["name"] and _satisfies(pkg.version, alt.get("version")):
            return True
        for virtual, pversion in pkg.provides:
            if virtual != alt["name"]:
                continue
            if alt.get("version") is None or (pversion is not None and _satisfies(pversion, alt["version"])):
                return True
        return False

    def already_satisfied(self, alt: Relation, chosen: Mapping[str, BinaryPackage]) -> bool:
        real = chosen.get(alt["name"])
        if real is not None and self.matches(alt, real):
            return True
        return any(
            chosen.get(p.name) is p and self.matches(alt, p) for p, _ in self.providers.get(alt["name"], [])
        )

    def choose(self, alt: Relation, chosen: Mapping[str, BinaryPackage]) -> BinaryPackage | None:
        """A package to satisfy a not-yet-satisfied alternative: the real candidate first, then a provider."""
        restrictions = alt.get("arch")
        if restrictions and not any(r.enabled == (r.arch == self.arch) for r in restrictions):
            return None
        real = self.candidates.get(alt["name"])
        if real is not None and real.name not in chosen and self.matches(alt, real):
            return real
        providers = [
            p for p, _ in self.providers.get(alt["name"], []) if p.name not in chosen and self.matches(alt, p)
        ]
        if not providers:
            return None
        # Deterministic stand-in for apt's provider scoring: higher priority, then name.
        return min(providers, key=lambda p: (_PRIORITY_ORDER.get(p.priority, 5), p.name))


def resolve(
    stanzas: Iterable[Packages | Mapping[str, str] | BinaryPackage],
    requested: Iterable[str],
    *,
    arch: str,
    pins: Mapping[str, str] | None = None,
    essential: bool = False,
    recommends: bool = False,
) -> list[ResolvedPackage]:
    """The closure of ``requested`` on ``arch``, sorted by name.

    ``recommends=True`` follows Recommends as apt does by default (``APT::Install-Recommends``); the default is
    the ``--no-install-recommends`` closure.

    Example: ``resolve(parse_packages(index), ["git", "curl"], arch="amd64", pins={"curl": "7.88.1-10"})``
    """
    packages = [s if isinstance(s, BinaryPackage) else BinaryPackage.from_stanza(s) for s in stanzas]
    universe = _Universe(packages, arch, pins or {})
    chosen: dict[str, BinaryPackage] = {}
    why: dict[str, str | None] = {}  # package -> the package that pulled it in, for error chains
    queue: list[BinaryPackage] = []

    def chain(name: str | None) -> str:
        parts: list[str] = []
        while name is not None:
            parts.append(name)
            name = why.get(name)
        return " <- ".join(parts)

    def add(pkg: BinaryPackage, parent: str | None) -> None:
        chosen[pkg.name] = pkg
        why[pkg.name] = parent
        queue.append(pkg)

    for root in requested:
        pkg = universe.candidates.get(root)
        if pkg is None:
            providers = sorted({p.name for p, _ in universe.providers.get(root, [])})
            if len(providers) == 1:
                pkg = universe.candidates[providers[0]]
            elif providers:
                raise ResolutionError(
                    f"{root} is a virtual package on {arch}, provided by {', '.join(providers)}",
                    hint="name one of the providers in the profile",
                )
            else:
                raise ResolutionError(
                    f"package {root} does not exist for architecture {arch}",
                    hint="check the name, the components and the architectures of the profile",
                )
        if pkg.name not in chosen:
            add(pkg, None)
    if essential:
        for cand in sorted(universe.candidates.values(), key=lambda p: p.name):
            if (cand.essential or cand.priority == "required") and cand.name not in chosen:
                add(cand, None)

    while queue:
        pkg = queue.pop(0)
        soft = pkg.recommends if recommends else ()
        for group, required in [(g, True) for g in pkg.depends] + [(g, False) for g in soft]:
            if any(universe.already_satisfied(alt, chosen) for alt in group):
                continue
            picked: BinaryPackage | None = None
            for alt in group:
                picked = universe.choose(alt, chosen)
                if picked is not None:
                    break
            if picked is None and not required:
                continue  # apt installs a Recommends only when it can; an unmet one is not an error
            if picked is None:
                wanted = " | ".join(_format(alt) for alt in group)
                raise ResolutionError(
                    f"{pkg.name} {pkg.version} on {arch} depends on {wanted}, which cannot be satisfied "
                    f"(chain: {chain(pkg.name)})",
                    hint=_unsatisfied_hint(group, universe, chosen),
                )
            add(picked, pkg.name)

    return [
        ResolvedPackage(p.name, p.version_text, p.architecture, p.filename, p.size, p.sha256, p.source)
        for p in sorted(chosen.values(), key=lambda p: p.name)
    ]


def _unsatisfied_hint(group: tuple[Relation, ...], universe: _Universe, chosen: Mapping[str, BinaryPackage]) -> str:
    notes = []
    for alt in group:
        name = alt["name"]
        if name in chosen:
            notes.append(f"{name} {chosen[name].version} is already chosen")
        elif name in universe.candidates:
            notes.append(f"candidate {name} is {universe.candidates[name].version}")
        elif name not in universe.providers:
            notes.append(f"no package or provider named {name} on {universe.arch}")
    return "; ".join(notes) or "no alternative is available"
