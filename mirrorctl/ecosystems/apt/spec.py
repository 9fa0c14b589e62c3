"""The ``[apt]`` profile table -> :class:`AptSpec`, and the grammar checks import applies to apt artifacts.

Example profile table::

    [apt]
    suite = "bookworm"                        # as the upstream names it under dists/ (one suite), or:
    # suites = ["bookworm", "bookworm-updates", "bookworm-security"]   # resolved together, as apt does
    # priorities = { "bookworm-backports" = 500 }   # apt_preferences "Pin: release a=<suite>" (see below)
    components = ["main"]                     # default ["main"]
    architectures = ["amd64", "arm64"]        # default ["amd64"]
    packages = ["build-essential", "git", "curl=7.88.1-10+deb12u5"]   # name, or name=version (a pin)
    essential = false                         # true: also the suite's Essential/required set (base images)
    recommends = false                        # true: follow Recommends as apt does by default
    fingerprints = ["B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"]   # optional: only these keys may sign

Several suites (``suites``) are resolved together the way apt resolves every source in its sources.list: each
version of a package is a candidate, the one with the highest priority wins and, among equal priorities, the
highest version (apt_preferences(5)). A suite's priority is 500, 100 when its signed Release says
``NotAutomatic: yes`` and ``ButAutomaticUpgrades: yes`` (backports), 1 with ``NotAutomatic: yes`` alone
(experimental), unless ``priorities`` sets it (matched against the suite as the profile names it; a negative
priority means never from that suite). Which archive serves each suite is mirrorctl.toml's business
(``[upstreams.apt]`` and ``[upstreams.apt.archives.<name>]``, see :mod:`.settings`), never the profile's.

Names follow Debian policy (lowercase letters, digits, ``+ - .``, at least two characters, starting with a
letter or digit); pinned versions are checked with python-debian's Debian version grammar.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from debian.debian_support import Version

from mirrorctl.ecosystems.base import ProfileSource
from mirrorctl.errors import BundleRefused, ProfileError
from mirrorctl.lockfile import Artifact, LegacyRecord

_KEYS = ("suite", "suites", "priorities", "components", "architectures", "packages", "essential", "recommends",
         "fingerprints")

# Debian's release and ports architectures (dpkg's names); "all" is a package property, never a target.
DEBIAN_ARCHITECTURES = (
    "alpha", "amd64", "arm64", "armel", "armhf", "hppa", "hurd-amd64", "hurd-i386", "i386", "ia64", "loong64",
    "m68k", "mips64el", "mipsel", "powerpc", "ppc64", "ppc64el", "riscv64", "s390x", "sh4", "sparc64", "x32",
)
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# Suites may be nested (``bookworm/updates`` on old archives) but never climb out of dists/.
_SUITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~+-]*(?:/[A-Za-z0-9][A-Za-z0-9._~+-]*)*$")
_COMPONENT = _SUITE
# The name of an ``[upstreams.apt.archives.<name>]`` table, recorded as attrs.archive.
ARCHIVE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FINGERPRINT = re.compile(r"^(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$")

_NAME_HINT = "Debian package names are lowercase letters, digits and + - . (at least two characters)"
_PKG_HINT = 'write e.g. packages = ["git", "curl=7.88.1-10+deb12u5"]'


@dataclass(frozen=True, slots=True)
class AptSpec:
    suite: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    packages: tuple[str, ...]  # names, in profile order, without pins
    pins: Mapping[str, str] = field(default_factory=dict)  # name -> exact version
    essential: bool = False
    recommends: bool = False
    fingerprints: tuple[str, ...] | None = None
    # Where each package / architecture was named, for messages ("profiles/base.toml: apt.packages[2] (line 5)").
    origins: Mapping[str, str] = field(default_factory=dict)
    more_suites: tuple[str, ...] = ()  # after ``suite``, in profile order: resolved together with it
    priorities: Mapping[str, int] = field(default_factory=dict)  # suite -> apt pin priority (overrides Release)

    @property
    def suites(self) -> tuple[str, ...]:
        return (self.suite, *self.more_suites)

    def target_ids(self) -> list[str]:
        return list(self.architectures)

    def origin(self, key: str) -> str:
        return self.origins.get(key, "the profile")


def valid_package_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 128 and bool(_PACKAGE.match(name))


def valid_suite(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 128 and bool(_SUITE.match(name)) and ".." not in name


def valid_version(version: object) -> bool:
    """A Debian version (``[epoch:]upstream[-revision]``) as python-debian parses it, upstream starting with a
    digit (policy 5.6.12; dpkg warns otherwise and no archive ships one)."""
    if not isinstance(version, str) or not version or len(version) > 256:
        return False
    try:
        parsed = Version(version)
    except ValueError:
        return False
    upstream = parsed.upstream_version or ""
    return upstream[:1].isdigit() and not any(c.isspace() for c in version)


def parse_spec(table: Mapping[str, Any], source: ProfileSource) -> AptSpec:
    """Validate the ``[apt]`` table; every refusal names file, field and line (ProfileError, exit 2)."""
    for key in table:
        if key not in _KEYS:
            raise ProfileError(f"{source.ref(key)}: unknown key {key!r}", hint=f"[apt] accepts: {', '.join(_KEYS)}")
    origins: dict[str, str] = {}
    suites = _suites(table, source, origins)
    priorities = _priorities(table, source, suites)
    components = _strings(table, "components", source, ["main"])
    for i, comp in enumerate(components):
        if not _COMPONENT.match(comp) or ".." in comp:
            raise ProfileError(f"{source.ref('components', i)}: {comp!r} is not a component name",
                               hint='e.g. components = ["main", "contrib"]')
        origins[f"component:{comp}"] = str(source.ref("components", i if "components" in table else None))
    architectures = _strings(table, "architectures", source, ["amd64"])
    for i, arch in enumerate(architectures):
        if arch == "all":
            # A package property, not a machine: Architecture: all packages are locked with each architecture
            # that needs them (from binary-<arch> or binary-all, as apt reads the suite).
            raise ProfileError(
                f"{source.ref('architectures', i)}: 'all' is not an architecture to lock for",
                hint="name the machines' architectures, e.g. architectures = [\"amd64\", \"arm64\"]; "
                "Architecture: all packages are locked with each of them",
            )
        if arch not in DEBIAN_ARCHITECTURES:
            raise ProfileError(
                f"{source.ref('architectures', i)}: unknown architecture {arch!r}",
                hint="Debian architectures: " + ", ".join(DEBIAN_ARCHITECTURES),
            )
        origins[f"arch:{arch}"] = str(source.ref("architectures", i))
    packages: list[str] = []
    pins: dict[str, str] = {}
    for i, item in enumerate(_strings(table, "packages", source, None)):
        where = source.ref("packages", i)
        name, sep, version = item.strip().partition("=")
        if not valid_package_name(name):
            raise ProfileError(f"{where}: {name!r} is not a Debian package name", hint=f"{_NAME_HINT}; {_PKG_HINT}")
        if sep and not valid_version(version):
            raise ProfileError(
                f"{where}: pin {item!r}: {version!r} is not a Debian version",
                hint="a pin is name=version exactly as the index lists it, e.g. curl=7.88.1-10+deb12u5",
            )
        if name in origins:
            raise ProfileError(f"{where}: {name!r} is listed twice (also at {origins[name]})", hint="keep one entry")
        origins[name] = str(where)
        packages.append(name)
        if sep:
            pins[name] = version
    flags = {}
    for key in ("essential", "recommends"):
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise ProfileError(f"{source.ref(key)}: must be true or false, got {value!r}")
        flags[key] = value
    fingerprints: tuple[str, ...] | None = None
    if "fingerprints" in table:
        fprs = _strings(table, "fingerprints", source, None)
        for i, fpr in enumerate(fprs):
            if not _FINGERPRINT.match(fpr.replace(" ", "")):
                raise ProfileError(
                    f"{source.ref('fingerprints', i)}: {fpr!r} is not an OpenPGP fingerprint",
                    hint="40 (v4) or 64 (v6) hex digits, as `gpg --with-colons --fingerprint` prints them",
                )
        fingerprints = tuple(f.replace(" ", "").upper() for f in fprs)
    return AptSpec(
        suite=suites[0],
        more_suites=tuple(suites[1:]),
        priorities=priorities,
        components=tuple(dict.fromkeys(components)),
        architectures=tuple(dict.fromkeys(architectures)),
        packages=tuple(packages),
        pins=pins,
        essential=flags["essential"],
        recommends=flags["recommends"],
        fingerprints=fingerprints,
        origins=origins,
    )


_SUITE_HINT = ('name the suite as the upstream has it under dists/, e.g. suite = "bookworm", or several: '
               'suites = ["bookworm", "bookworm-updates", "bookworm-security"]')


def _suites(table: Mapping[str, Any], source: ProfileSource, origins: dict[str, str]) -> list[str]:
    """``suite`` (one, the form before several suites) or ``suites`` (several, resolved together)."""
    if "suite" in table and "suites" in table:
        raise ProfileError(f"{source.ref('suites')}: give either suite or suites, not both",
                           hint="suites = [...] names the first suite too")
    key = "suites" if "suites" in table else "suite"
    if key == "suite":
        suite = table.get("suite")
        if not isinstance(suite, str) or not _SUITE.match(suite) or ".." in suite:
            raise ProfileError(
                f"{source.ref('suite')}: " + ("missing" if suite is None else f"{suite!r} is not a suite name"),
                hint=_SUITE_HINT,
            )
        origins["suite:" + suite] = str(source.ref("suite"))
        return [suite]
    names = _strings(table, "suites", source, None)
    for i, suite in enumerate(names):
        if not _SUITE.match(suite) or ".." in suite:
            raise ProfileError(f"{source.ref('suites', i)}: {suite!r} is not a suite name", hint=_SUITE_HINT)
        if "suite:" + suite in origins:
            raise ProfileError(f"{source.ref('suites', i)}: {suite!r} is listed twice", hint="keep one entry")
        origins["suite:" + suite] = str(source.ref("suites", i))
    return names


def _priorities(table: Mapping[str, Any], source: ProfileSource, suites: list[str]) -> dict[str, int]:
    value = table.get("priorities", {})
    if not isinstance(value, Mapping):
        raise ProfileError(f"{source.ref('priorities')}: must be a table of suite = priority",
                           hint='e.g. priorities = { "bookworm-backports" = 500 }')
    out: dict[str, int] = {}
    for suite, prio in value.items():
        if suite not in suites:
            raise ProfileError(f"{source.ref('priorities')}: {suite!r} is not one of the profile's suites",
                               hint="profile suites: " + ", ".join(suites))
        if isinstance(prio, bool) or not isinstance(prio, int) or not -32768 <= prio <= 32767:
            raise ProfileError(f"{source.ref('priorities')}: {suite} = {prio!r} is not a whole number",
                               hint="apt pin priorities: 500 default, 100 backports, 1 experimental, < 0 never")
        out[suite] = prio
    return out


def _strings(table: Mapping[str, Any], key: str, source: ProfileSource, default: list[str] | None) -> list[str]:
    value = table.get(key)
    if value is None:
        if default is not None:
            return default
        raise ProfileError(f"{source.ref(key)}: missing", hint=_PKG_HINT if key == "packages" else None)
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{source.ref(key)}: must be a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ProfileError(f"{source.ref(key, i)}: must be a string, got {item!r}")
    return list(value)


def legacy_path(record: LegacyRecord) -> str:
    """An apt artifact's path is its pool path (``pool/main/c/curl/curl_7.88.1-10_amd64.deb``), which
    lock-version 1 recorded as ``attrs.pool``."""
    pool = record.attrs["pool"]
    if not isinstance(pool, str):
        raise ValueError(f"attrs.pool must be a string, got {pool!r}")
    return pool


def check_pool_path(pool: object, label: str) -> str:
    """``pool`` when it is a plain path under ``pool/`` (it becomes the artifact's path and a served path)."""
    if not isinstance(pool, str) or not pool.startswith("pool/"):
        raise BundleRefused(f"{label}: attrs.pool must be a path under pool/, got {pool!r}",
                            hint="the bundle was altered or built wrongly; do not import it")
    parts = pool.split("/")
    if ".." in parts or "." in parts or "" in parts or "\\" in pool or posixpath.normpath(pool) != pool:
        raise BundleRefused(f"{label}: attrs.pool {pool!r} is not a plain path under pool/",
                            hint="the bundle was altered or built wrongly; do not import it")
    return pool


def validate_artifact(artifact: Artifact) -> None:
    """Refuse a locked/imported apt artifact outside the grammar: a bad package name or version, a filename that
    is not the basename of its pool path, or a pool path that could leave the pool (it becomes a served path)."""
    label = f"apt artifact {artifact.name!r} {artifact.version!r} ({artifact.filename!r})"
    if not valid_package_name(artifact.name):
        raise BundleRefused(f"{label}: {artifact.name!r} is not a Debian package name", hint=_NAME_HINT)
    if not valid_version(artifact.version):
        raise BundleRefused(f"{label}: {artifact.version!r} is not a Debian version")
    pool = check_pool_path(artifact.attrs.get("pool"), label)
    if artifact.path != pool or not artifact.filename.endswith(".deb"):
        raise BundleRefused(f"{label}: the path must be the .deb of attrs.pool ({pool!r})",
                            hint="the bundle was altered or built wrongly; do not import it")
    for key in ("architecture", "suite", "component"):
        value = artifact.attrs.get(key)
        if not isinstance(value, str) or not _SUITE.match(value) or ".." in value:
            raise BundleRefused(f"{label}: attrs.{key} is missing or malformed ({value!r})")
    archive = artifact.attrs.get("archive")
    if archive is not None and (not isinstance(archive, str) or not ARCHIVE_NAME.match(archive)):
        raise BundleRefused(f"{label}: attrs.archive is malformed ({archive!r})")
    together = artifact.attrs.get("suites")
    if together is not None and (not isinstance(together, str) or not all(
            _SUITE.match(s) and ".." not in s for s in together.split()) or not together.split()):
        raise BundleRefused(f"{label}: attrs.suites is malformed ({together!r})")
    arch = artifact.attrs["architecture"]
    if arch != "all" and arch not in DEBIAN_ARCHITECTURES:
        raise BundleRefused(f"{label}: attrs.architecture {arch!r} is not a Debian architecture")
    for target in artifact.targets:
        if target not in DEBIAN_ARCHITECTURES:
            raise BundleRefused(f"{label}: target {target!r} is not a Debian architecture")
