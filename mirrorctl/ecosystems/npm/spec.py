"""The ``[npm]`` profile table -> :class:`NpmSpec`, and the grammar checks import applies to npm artifacts.

Example profile table (paths are relative to the profile file)::

    [npm]
    packages = ["typescript@^5.4", "@types/node@20", "eslint@latest", "left-pad@npm:other@^1"]
    package-json = "../web/package.json"     # its dependencies, devDependencies, optionalDependencies
    package-lock = "../web/package-lock.json" # exactly the versions it pins (lockfileVersion 1, 2 or 3)
    platforms = ["linux-x64", "linux-arm64"]  # os-cpu[-libc] as npm names them; linux means glibc unless -musl
    include-peer = true                       # npm 7+ installs peerDependencies (optional ones excepted)

A package argument is split the way npm-package-arg splits it: the name (``@scope/name`` keeps its first
``@``), then ``@`` and a version, a range or a dist-tag; ``npm:other@range`` makes an alias. Ranges are checked
with node-semver; git, URL and file specs are refused (nothing on a registry mirror can satisfy them).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nodesemver

from mirrorctl.ecosystems.base import ProfileSource
from mirrorctl.errors import BundleRefused, ProfileError
from mirrorctl.lockfile import Artifact, LegacyRecord

_KEYS = ("packages", "package-json", "package-lock", "platforms", "include-peer")

# process.platform and process.arch values, the words package.json "os" and "cpu" use.
NODE_OS = ("aix", "android", "darwin", "freebsd", "linux", "netbsd", "openbsd", "sunos", "win32", "cygwin")
NODE_CPU = ("arm", "arm64", "ia32", "loong64", "mips", "mipsel", "ppc", "ppc64", "riscv64", "s390", "s390x", "x64")
LIBC = ("glibc", "musl")
PLATFORM_GRAMMAR = (
    "<os>-<cpu>[-<libc>] with os one of "
    + ", ".join(NODE_OS)
    + "; cpu one of "
    + ", ".join(NODE_CPU)
    + "; libc (linux only, glibc when left out) glibc or musl, e.g. linux-x64, linux-x64-musl, darwin-arm64, win32-x64"
)

# validate-npm-package-name, relaxed as npm relaxes it for packages published before the rules tightened
# (uppercase letters exist in old names such as JSONStream). No leading dot or underscore, url-safe.
_PART = r"[A-Za-z0-9~-][A-Za-z0-9._~-]*"
_NAME = re.compile(rf"^(?:@{_PART}/)?{_PART}$")
_BLOCKED = ("node_modules", "favicon.ico")
MAX_NAME = 214
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")
_REMOTE = re.compile(r"^(?:git\+|git:|github:|gitlab:|bitbucket:|gist:|https?:|ssh:)|^[^@/]+/[^@/]+(?:#.*)?$")
_LOCAL = ("file:", "link:", "workspace:", ".", "/", "~/")


@dataclass(frozen=True, slots=True)
class Platform:
    """One target: what ``process.platform``/``process.arch`` (and, on linux, the libc) say."""

    os: str
    cpu: str
    libc: str | None = None

    @property
    def id(self) -> str:
        return f"{self.os}-{self.cpu}" + (f"-{self.libc}" if self.libc else "")

    def accepts(self, os: Any, cpu: Any, libc: Any = None) -> bool:
        """npm-install-checks' platform rule for a package's ``os``/``cpu``/``libc`` lists (``!`` negates).
        A linux platform that names no libc is glibc (``linux-x64`` = ``linux-x64-glibc``): a musl build is kept
        only for a platform that names musl (``linux-x64-musl``), as npm on that machine would install it."""
        if not _list_ok(os, self.os) or not _list_ok(cpu, self.cpu):
            return False
        if libc:  # npm reports no libc off linux, and then refuses any package that names one
            return self.libc_name is not None and _list_ok(libc, self.libc_name)
        return True

    @property
    def libc_name(self) -> str | None:
        """The libc npm reports on this platform: the declared one, glibc on linux by default."""
        return self.libc or ("glibc" if self.os == "linux" else None)


def _list_ok(values: Any, value: str) -> bool:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values:
        return True
    values = [str(v) for v in values]
    if f"!{value}" in values:
        return False
    positive = [v for v in values if not v.startswith("!")]
    return not positive or value in positive or "any" in positive


def parse_platform(text: str) -> Platform | None:
    parts = text.split("-")
    if len(parts) not in (2, 3) or parts[0] not in NODE_OS or parts[1] not in NODE_CPU:
        return None
    if len(parts) == 3 and (parts[0] != "linux" or parts[2] not in LIBC):
        return None
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


@dataclass(frozen=True, slots=True)
class Root:
    """One thing the profile asks for. ``spec`` is a version, a range or a dist-tag of package ``name``
    (for an alias, of the aliased package). ``exact`` roots come from a package-lock: that version only,
    without resolving its dependencies again (the package-lock already lists them)."""

    name: str
    spec: str
    origin: str  # names it in messages: "profiles/web.toml: npm.packages[2] (line 4)"
    alias: str | None = None
    optional: bool = False  # a failing platform check drops it instead of failing
    exact: bool = False
    integrity: str | None = None  # what a package-lock recorded, checked against the registry
    os: tuple[str, ...] = ()
    cpu: tuple[str, ...] = ()
    libc: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        target = f"{self.name}@{self.spec}"
        return f"{self.alias}@npm:{target}" if self.alias else target


@dataclass(frozen=True, slots=True)
class NpmSpec:
    roots: tuple[Root, ...]
    platforms: tuple[Platform, ...]
    include_peer: bool = True

    def target_ids(self) -> list[str]:
        return [p.id for p in self.platforms]


def valid_name(name: str) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME
        and bool(_NAME.match(name))
        and name.lower() not in _BLOCKED
        and quote(name, safe="@/~") == name  # url-safe: nothing a path or a query could read differently
    )


def valid_version(version: str) -> bool:
    """A semver version in its canonical form (no leading ``v``, no spaces; build metadata allowed)."""
    parsed = nodesemver.valid(version, loose=False) if isinstance(version, str) else None
    if parsed is None:
        return False
    canonical = parsed.version + ("+" + ".".join(str(b) for b in parsed.build) if parsed.build else "")
    return bool(canonical == version)


def tarball_filename(name: str, version: str) -> str:
    """``@scope/name`` 1.2.3 -> ``name-1.2.3.tgz`` (the registry's convention: the scope is dropped)."""
    return f"{name.rsplit('/', 1)[-1]}-{version}.tgz"


@functools.lru_cache(maxsize=4096)  # pure, and a closure asks about the same specs again and again
def classify(spec: str) -> str | None:
    """npm-package-arg's registry types: 'version', 'range' or 'tag'; None for anything else."""
    spec = spec.strip()
    if nodesemver.valid(spec, loose=True) is not None:
        return "version"
    if spec == "" or nodesemver.valid_range(spec, loose=True) is not None:
        return "range"
    if _TAG.match(spec) and quote(spec) == spec:
        return "tag"
    return None


def split_arg(arg: str) -> tuple[str, str]:
    """``@types/node@20`` -> (``@types/node``, ``20``); ``eslint`` -> (``eslint``, ``""``)."""
    at = arg.find("@", 1 if arg.startswith("@") else 0)
    return (arg, "") if at < 0 else (arg[:at], arg[at + 1 :])


def parse_dependency(name: str, spec: str, where: str) -> Root | None:
    """A (name, spec) pair as package.json holds it -> a Root, or None for local specs (file:, link:, ...).
    Raises ProfileError for specs no registry can satisfy."""
    if not valid_name(name):
        raise ProfileError(f"{where}: {name!r} is not a valid npm package name", hint=_NAME_HINT)
    spec = spec.strip() if isinstance(spec, str) else spec
    if not isinstance(spec, str):
        raise ProfileError(f"{where}: the spec of {name!r} must be a string, got {spec!r}")
    if spec.startswith(_LOCAL):
        return None
    alias = None
    if spec.startswith("npm:"):
        alias, (name, spec) = name, split_arg(spec[4:])
        if not valid_name(name):
            raise ProfileError(f"{where}: alias {alias!r} names {name!r}, not a valid npm package name")
        if spec.startswith("npm:"):
            raise ProfileError(f"{where}: an alias of an alias ({alias!r}) is not allowed", hint=_ARG_HINT)
    if _REMOTE.match(spec) or classify(spec) is None:
        raise ProfileError(
            f"{where}: {name}@{spec} is not a version, a semver range or a dist-tag",
            hint="mirrorctl mirrors registry packages only (no git, URL or tarball specs); " + _ARG_HINT,
        )
    return Root(name=name, spec=spec, origin=where, alias=alias)


_NAME_HINT = "npm names are lowercase, url-safe, optionally @scope/name, at most 214 characters"
_ARG_HINT = 'write e.g. "typescript@^5.4", "@types/node@20", "eslint@latest" or "left-pad@npm:other@^1"'


def parse_spec(table: Mapping[str, Any], source: ProfileSource) -> NpmSpec:
    """Validate the ``[npm]`` table; every refusal names file, field and line (ProfileError, exit 2)."""
    for key in table:
        if key not in _KEYS:
            raise ProfileError(f"{source.ref(key)}: unknown key {key!r}", hint=f"[npm] accepts: {', '.join(_KEYS)}")
    if not any(k in table for k in ("packages", "package-json", "package-lock")):
        raise ProfileError(
            f"{source.ref('packages')}: missing",
            hint='name what to mirror, e.g. packages = ["typescript@^5.4"], or package-lock = "package-lock.json"',
        )
    roots: list[Root] = []
    if "packages" in table:
        for i, arg in enumerate(_strings(table, "packages", source)):
            name, spec = split_arg(arg.strip())
            root = parse_dependency(name, spec, str(source.ref("packages", i)))
            if root is None:
                raise ProfileError(f"{source.ref('packages', i)}: {arg!r} is a local path", hint=_ARG_HINT)
            roots.append(root)
    base = source.path.parent
    for key, reader in (("package-json", _package_json_roots), ("package-lock", _package_lock_roots)):
        if key in table:
            for i, rel in enumerate(_paths(table, key, source)):
                ref = source.ref(key, i if isinstance(table[key], list) else None)
                roots.extend(reader(base / rel, str(ref)))
    platforms: list[Platform] = []
    for i, text in enumerate(_strings(table, "platforms", source)):
        plat = parse_platform(text)
        if plat is None:
            raise ProfileError(f"{source.ref('platforms', i)}: unknown platform {text!r}", hint=PLATFORM_GRAMMAR)
        platforms.append(plat)
    include_peer = table.get("include-peer", True)
    if not isinstance(include_peer, bool):
        raise ProfileError(f"{source.ref('include-peer')}: must be true or false, got {include_peer!r}")
    return NpmSpec(tuple(roots), tuple(dict.fromkeys(platforms)), include_peer)


def _strings(table: Mapping[str, Any], key: str, source: ProfileSource) -> list[str]:
    value = table.get(key)
    example = {"packages": 'e.g. packages = ["typescript@^5.4"]', "platforms": 'e.g. platforms = ["linux-x64"]'}
    if value is None:
        raise ProfileError(f"{source.ref(key)}: missing", hint=example.get(key))
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{source.ref(key)}: must be a non-empty list of strings", hint=example.get(key))
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ProfileError(f"{source.ref(key, i)}: must be a string, got {item!r}", hint=example.get(key))
    return list(value)


def _paths(table: Mapping[str, Any], key: str, source: ProfileSource) -> list[str]:
    value = table[key]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ProfileError(
            f"{source.ref(key)}: must be a path (or a list of paths) relative to the profile",
            hint=f'e.g. {key} = "../web/{key.replace("-", ".")}.json"'.replace(".json.json", ".json"),
        )
    return list(items)


def _read_json(path: Path, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{where}: {path} not found", hint="the path is relative to the profile file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{where}: {path} is not readable JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: {path} must hold a JSON object")
    return doc


def _package_json_roots(path: Path, where: str) -> list[Root]:
    """dependencies, devDependencies, optionalDependencies (and non-optional peerDependencies) as ranges."""
    doc = _read_json(path, where)
    roots: list[Root] = []
    meta = doc.get("peerDependenciesMeta") or {}
    for field in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        deps = doc.get(field) or {}
        if not isinstance(deps, dict):
            raise ProfileError(f"{where}: {path}: {field} must be an object")
        for name in sorted(deps):
            if field == "peerDependencies" and isinstance(meta.get(name), dict) and meta[name].get("optional"):
                continue
            root = parse_dependency(name, deps[name], f"{where}: {path.name} {field}.{name}")
            if root is not None:
                roots.append(dataclasses.replace(root, optional=field == "optionalDependencies"))
    return roots


def _package_lock_roots(path: Path, where: str) -> list[Root]:
    """Every registry package a package-lock.json pins, at exactly its version."""
    doc = _read_json(path, where)
    roots: list[Root] = []
    packages = doc.get("packages")
    if isinstance(packages, dict) and doc.get("lockfileVersion", 1) >= 2:
        for key in sorted(packages):
            entry = packages[key]
            if not key or not isinstance(entry, dict) or entry.get("link") or entry.get("inBundle"):
                continue  # the project itself, workspace links, and packages shipped inside another tarball
            if "node_modules/" not in key:
                continue  # a workspace folder
            alias = key.rsplit("node_modules/", 1)[1]
            roots.extend(_lock_entry(entry.get("name") or alias, alias, entry, f"{where}: {path.name} {key}"))
        return roots
    deps = doc.get("dependencies")
    if not isinstance(deps, dict):
        raise ProfileError(
            f"{where}: {path} has neither a packages map nor dependencies",
            hint="point package-lock at a package-lock.json or npm-shrinkwrap.json written by npm",
        )

    def walk(tree: Mapping[str, Any], trail: str) -> None:
        for alias in sorted(tree):
            entry = tree[alias]
            if not isinstance(entry, dict) or entry.get("bundled"):
                continue
            version = str(entry.get("version", ""))
            name = alias
            if version.startswith("npm:"):  # v1 writes aliases as version "npm:name@1.2.3"
                name, version = split_arg(version[4:])
            roots.extend(
                _lock_entry(name, alias, {**entry, "version": version}, f"{where}: {path.name} {trail}{alias}")
            )
            if isinstance(entry.get("dependencies"), dict):
                walk(entry["dependencies"], f"{trail}{alias} > ")

    walk(deps, "")
    return roots


def _lock_entry(name: str, alias: str, entry: Mapping[str, Any], where: str) -> list[Root]:
    version = entry.get("version")
    resolved = entry.get("resolved")
    if not isinstance(version, str) or (isinstance(resolved, str) and not resolved.endswith(".tgz")):
        return []  # git, file or link entries: not registry packages
    if not valid_name(name):
        raise ProfileError(f"{where}: {name!r} is not a valid npm package name", hint=_NAME_HINT)
    if not valid_version(version):
        return []  # "file:..." and other non-registry versions
    integrity = entry.get("integrity") if isinstance(entry.get("integrity"), str) else None

    def strings(field: str) -> tuple[str, ...]:
        v = entry.get(field)
        return tuple(str(x) for x in v) if isinstance(v, list) else ((v,) if isinstance(v, str) else ())

    return [
        Root(
            name=name,
            spec=version,
            origin=where,
            alias=alias if alias != name else None,
            optional=bool(entry.get("optional") or entry.get("devOptional")),
            exact=True,
            integrity=integrity,
            os=strings("os"),
            cpu=strings("cpu"),
            libc=strings("libc"),
        )
    ]


def tarball_path(name: str, version: str) -> str:
    """An npm artifact's path: the public registry's tarball path, scope included
    (``@acme/core/-/core-1.0.0.tgz`` beside ``core/-/core-1.0.0.tgz``), where npm ci looks after
    ``replace-registry-host``."""
    return f"{name}/-/{tarball_filename(name, version)}"


def legacy_path(record: LegacyRecord) -> str:
    return f"{record.name}/-/{record.filename}"


def validate_artifact(artifact: Artifact) -> None:
    """Refuse a locked/imported npm artifact whose name, version or tarball filename is outside the grammar,
    or whose path is not the tarball of that name and version (it would be served under another)."""
    label = f"npm artifact {artifact.name!r} {artifact.version!r} ({artifact.path!r})"
    if not valid_name(artifact.name):
        raise BundleRefused(f"{label}: {artifact.name!r} is not a valid npm package name", hint=_NAME_HINT)
    if not valid_version(artifact.version):
        raise BundleRefused(f"{label}: {artifact.version!r} is not a semver version")
    expected = tarball_path(artifact.name, artifact.version)
    if artifact.path != expected:
        raise BundleRefused(
            f"{label}: the tarball of {artifact.name} {artifact.version} is at {expected!r}",
            hint="the bundle was altered or built wrongly; do not import it",
        )
