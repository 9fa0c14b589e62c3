"""The ``[go]`` profile table -> :class:`GoSpec` (not registered yet: the adapter will call :func:`parse_spec`).

Example profile table (paths are relative to the profile file)::

    [go]
    modules = ["github.com/spf13/cobra@v1.10.2", "golang.org/x/sync@latest", "example.com/m@v1", "example.com/n@<v1.5"]
    go-mod = ["../service/go.mod"]           # a team's module: its whole graph (its go.sum, when present, must agree)
    toolchains = ["go1.27.3"]                # mirrored as golang.org/toolchain so GOTOOLCHAIN=go1.27.3 works inside
    platforms = ["linux-amd64", "linux-arm64"]

A module argument is ``<module path>@<query>``, the path checked with Go's module path rules and the query one
the go command answers from a module proxy alone: ``latest``, a version (``v1.2.3``, a pseudo-version, a
``+incompatible`` one), a version prefix (``v1``, ``v1.2``) or a comparison (``<v1.5``, ``<=v1.5.0``,
``>v1.2.0``, ``>=v1.2``). ``upgrade`` and ``patch`` (which need a current version) and branch names or commit
hashes (which need the repository) are refused with a hint. Every refusal names file, field and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirrorctl.ecosystems.base import ProfileSource
from mirrorctl.ecosystems.go import modpath
from mirrorctl.ecosystems.go.gomodfile import GoMod, GoModError, parse
from mirrorctl.ecosystems.go.gosum import GoSum, GoSumError
from mirrorctl.ecosystems.go.gosum import parse as parse_gosum
from mirrorctl.errors import ProfileError, shorten

_KEYS = ("modules", "go-mod", "toolchains", "platforms")
MAX_GO_MOD = 16 << 20

# GOOS-GOARCH pairs of `go tool dist list` a toolchain can run on (not android, ios, js or wasip1: no go command).
PLATFORMS = frozenset(
    "aix-ppc64 darwin-amd64 darwin-arm64 dragonfly-amd64 freebsd-386 freebsd-amd64 freebsd-arm freebsd-arm64 "
    "illumos-amd64 linux-386 linux-amd64 linux-arm linux-arm64 linux-loong64 linux-mips "
    "linux-mips64 linux-mips64le linux-mipsle linux-ppc64 linux-ppc64le linux-riscv64 linux-s390x netbsd-386 "
    "netbsd-amd64 netbsd-arm netbsd-arm64 openbsd-386 openbsd-amd64 openbsd-arm openbsd-arm64 openbsd-ppc64 "
    "openbsd-riscv64 plan9-386 plan9-amd64 plan9-arm solaris-amd64 windows-386 windows-amd64 windows-arm64".split()
)
_TOOLCHAIN = re.compile(r"^go1(?:\.(?:0|[1-9][0-9]*)){1,2}(?:(?:rc|beta)[1-9][0-9]*)?$")
_ARG_HINT = (
    'write "<module path>@<query>", e.g. "github.com/spf13/cobra@v1.10.2", "golang.org/x/sync@latest", '
    '"example.com/m@<v1.5"'
)


@dataclass(frozen=True, slots=True)
class ModuleQuery:
    """One ``path@query`` of the profile. ``kind`` is "latest", "version" (exact), "prefix" or "range"
    (``op`` then holds ``<``, ``<=``, ``>`` or ``>=`` and ``version`` the bound)."""

    path: str
    query: str
    kind: str
    version: str
    op: str
    origin: str  # "profiles/web.toml: go.modules[2] (line 4)"


@dataclass(frozen=True, slots=True)
class GoModInput:
    """A team's go.mod: its parsed content, and its go.sum (path and parsed lines) when one lies beside it."""

    path: Path
    gomod: GoMod
    gosum: Path | None
    origin: str
    sums: GoSum | None = None


@dataclass(frozen=True, slots=True)
class Toolchain:
    version: str  # "go1.27.3"
    platform: str  # "linux-amd64"

    @property
    def module_version(self) -> str:
        """The version of module golang.org/toolchain the go command asks the proxy for."""
        goos, goarch = self.platform.split("-", 1)
        return f"v0.0.1-{self.version}.{goos}-{goarch}"


@dataclass(frozen=True, slots=True)
class GoSpec:
    modules: tuple[ModuleQuery, ...]
    gomods: tuple[GoModInput, ...]
    toolchains: tuple[Toolchain, ...]

    def target_ids(self) -> Sequence[str]:
        return ()  # a module's files are the same on every platform; toolchains are modules of their own


def parse_query(path: str, query: str, where: str) -> ModuleQuery:
    """Check ``query`` for module ``path`` as the go command would answer it from a proxy."""

    def refuse(reason: str, hint: str = _ARG_HINT) -> ProfileError:
        return ProfileError(f"{where}: {shorten(path)}@{shorten(query)}: {reason}", hint=hint)

    if query == "latest":
        return ModuleQuery(path, query, "latest", "", "", where)
    if query in ("upgrade", "patch", "none"):
        raise refuse(f"{query!r} needs a version already required; a profile has none", hint="use latest or a version")
    for op in ("<=", ">=", "<", ">"):
        if query.startswith(op):
            bound = query[len(op) :]
            if not modpath.is_valid(bound):
                raise refuse(f"invalid semantic version {bound!r} in range {query!r}")
            if op in ("<=", ">") and modpath.canonical(bound) != bound.split("+", 1)[0]:
                raise refuse(f"ambiguous semantic version {bound!r} in range {query!r}", hint="give all three numbers")
            return ModuleQuery(path, query, "range", bound, op, where)
    if modpath.is_valid(query):
        if modpath.canonical_version(query) != query and modpath.build(query) in ("", "+incompatible"):
            return ModuleQuery(path, query, "prefix", query, "", where)
        split = modpath.split_path_version(path)
        try:
            modpath.check_path_major(query, split[1] if split else "")
        except modpath.InvalidVersion as exc:
            raise refuse(exc.reason) from exc
        return ModuleQuery(path, query, "version", modpath.canonical_version(query), "", where)
    raise refuse(
        "not a version query a module proxy answers (a branch or commit needs the repository)",
        hint="use latest, a version, a prefix such as v1, a comparison such as <v1.5, or the pseudo-version go "
        "prints for that commit (go list -m <path>@<commit>)",
    )


def parse_module_arg(arg: str, where: str) -> ModuleQuery:
    path, at, query = arg.strip().rpartition("@")
    if not at:
        raise ProfileError(f"{where}: {shorten(arg)!r} names no query", hint=_ARG_HINT)
    try:
        modpath.check_path(path)
    except modpath.InvalidPath as exc:
        raise ProfileError(f"{where}: {exc}", hint=_ARG_HINT) from exc
    return parse_query(path, query, where)


def parse_spec(table: Mapping[str, Any], source: ProfileSource) -> GoSpec:
    """Validate the ``[go]`` table; every refusal names file, field and line (ProfileError, exit 2)."""
    for key in table:
        if key not in _KEYS:
            raise ProfileError(f"{source.ref(key)}: unknown key {key!r}", hint=f"[go] accepts: {', '.join(_KEYS)}")
    if not any(k in table for k in ("modules", "go-mod", "toolchains")):
        raise ProfileError(
            f"{source.ref('modules')}: missing",
            hint='name what to mirror, e.g. modules = ["golang.org/x/sync@latest"], or go-mod = ["../app/go.mod"]',
        )
    modules = [
        parse_module_arg(arg, str(source.ref("modules", i))) for i, arg in enumerate(_strings(table, "modules", source))
    ]
    seen: dict[tuple[str, str], str] = {}
    for m in modules:
        if (m.path, m.query) in seen:
            raise ProfileError(f"{m.origin}: {m.path}@{m.query} is listed twice (first at {seen[m.path, m.query]})")
        seen[m.path, m.query] = m.origin
    gomods = [
        _read_gomod(source.path.parent / rel, str(source.ref("go-mod", i)))
        for i, rel in enumerate(_strings(table, "go-mod", source))
    ]
    versions = _strings(table, "toolchains", source)
    for i, v in enumerate(versions):
        if not _TOOLCHAIN.match(v):
            raise ProfileError(
                f"{source.ref('toolchains', i)}: {shorten(v)!r} is not a Go release",
                hint='write it as GOTOOLCHAIN names it, e.g. toolchains = ["go1.27.3"]',
            )
    platforms = _strings(table, "platforms", source)
    for i, p in enumerate(platforms):
        if p not in PLATFORMS:
            raise ProfileError(
                f"{source.ref('platforms', i)}: unknown platform {shorten(p)!r}",
                hint="<goos>-<goarch> as `go tool dist list` prints it with - for /, e.g. linux-amd64, darwin-arm64",
            )
    if versions and not platforms:
        raise ProfileError(
            f"{source.ref('platforms')}: missing", hint='toolchains need e.g. platforms = ["linux-amd64"]'
        )
    if platforms and not versions:
        raise ProfileError(f"{source.ref('platforms')}: applies only to toolchains, and none are listed")
    toolchains = tuple(Toolchain(v, p) for v in dict.fromkeys(versions) for p in dict.fromkeys(platforms))
    return GoSpec(tuple(modules), tuple(gomods), toolchains)


def _strings(table: Mapping[str, Any], key: str, source: ProfileSource) -> list[str]:
    if key not in table:
        return []
    value = table[key]
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{source.ref(key)}: must be a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise ProfileError(f"{source.ref(key, i)}: must be a non-empty string, got {shorten(item)}")
    return [v.strip() for v in value]


def _read_gomod(path: Path, where: str) -> GoModInput:
    if path.name != "go.mod":
        raise ProfileError(f"{where}: {path} is not a go.mod file", hint='point at the file, e.g. "../app/go.mod"')
    try:
        size = path.stat().st_size
        if size > MAX_GO_MOD:
            raise ProfileError(f"{where}: {path} is {size} bytes, more than Go's 16 MiB limit for a go.mod")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"{where}: {path} not found", hint="the path is relative to the profile file") from None
    except OSError as exc:
        raise ProfileError(f"{where}: {path} cannot be read: {exc.strerror}") from exc
    try:
        gomod = parse(data, str(path))
    except GoModError as exc:
        raise ProfileError(f"{where}: {exc.message}", hint=exc.hint) from exc
    if gomod.module is None:
        raise ProfileError(f"{where}: {path} has no module line", hint="a go.mod starts with module <path>")
    gosum = path.with_name("go.sum")
    if not gosum.is_file():
        return GoModInput(path, gomod, None, where)
    try:
        sums = parse_gosum(gosum.read_bytes(), str(gosum))
    except OSError as exc:
        raise ProfileError(f"{where}: {gosum} cannot be read: {exc.strerror}") from exc
    except GoSumError as exc:
        raise ProfileError(f"{where}: {exc.message}", hint=exc.hint) from exc
    return GoModInput(path, gomod, gosum, where, sums)
