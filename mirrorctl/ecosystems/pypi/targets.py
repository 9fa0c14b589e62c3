"""A PyPI target: one Python version on one platform. It says which wheels install there (their tags, in
pip's order of preference) and how environment markers evaluate there, so each target can be resolved on any
machine, without the target's interpreter.

Example::

    t = Target("3.11", "manylinux_2_28_x86_64")
    t.id                                   # 'py3.11-manylinux_2_28_x86_64'
    t.tag_priority(parse_tag("cp311-cp311-manylinux_2_17_x86_64"))   # a small int: lower is better
    t.marker_env()["sys_platform"]         # 'linux'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms

# Architectures a manylinux/musllinux/linux platform may name, and what uname -m says there.
LINUX_ARCHES = ("x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l", "ppc64", "riscv64")
MAC_ARCHES = ("x86_64", "arm64")
WINDOWS = {"win_amd64": "AMD64", "win_arm64": "ARM64", "win32": "x86"}
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_LEGACY_ARCHES = {
    "manylinux2014": ("x86_64", "i686", "aarch64", "ppc64le", "s390x", "armv7l", "ppc64"),
    "manylinux2010": ("x86_64", "i686"),
    "manylinux1": ("x86_64", "i686"),
}
_ARCH = "|".join(LINUX_ARCHES)
_PATTERNS = (
    re.compile(rf"^manylinux_2_(?P<minor>\d{{1,2}})_(?P<arch>{_ARCH})$"),
    re.compile(r"^(?P<legacy>manylinux2014|manylinux2010|manylinux1)_(?P<arch>\w+)$"),
    re.compile(rf"^musllinux_1_(?P<musl>\d)_(?P<arch>{_ARCH})$"),
    re.compile(r"^macosx_(?P<major>1[0-9]|2[0-9])_(?P<mminor>\d{1,2})_(?P<arch>x86_64|arm64)$"),
    re.compile(r"^(?P<win>win_amd64|win_arm64|win32)$"),
    re.compile(rf"^linux_(?P<arch>{_ARCH})$"),
)
PLATFORM_GRAMMAR = (
    "manylinux_2_<glibc minor>_<arch> (e.g. manylinux_2_28_x86_64), manylinux2014_<arch>, "
    "manylinux2010_<arch>, "
    "manylinux1_<arch>, musllinux_1_<minor>_<arch>, macosx_<major>_<minor>_{x86_64,arm64}, "
    "win_amd64, win_arm64, win32, linux_<arch>; arch is one of " + ", ".join(LINUX_ARCHES)
)
_PYTHON = re.compile(r"^3\.(\d{1,2})(?:\.(\d{1,2}))?$")


def platform_is_valid(platform: str) -> bool:
    m = _match(platform)
    if m is None:
        return False
    legacy = m.groupdict().get("legacy")
    if legacy and m.group("arch") not in _LEGACY_ARCHES[legacy]:
        return False
    minor = m.groupdict().get("minor")
    return not (minor is not None and int(minor) < 5)


def python_is_valid(version: str) -> bool:
    m = _PYTHON.match(version)
    return m is not None and int(m.group(1)) >= 6


def _match(platform: str) -> re.Match[str] | None:
    for pattern in _PATTERNS:
        m = pattern.match(platform)
        if m:
            return m
    return None


@dataclass(frozen=True, slots=True, order=True)
class Target:
    python: str  # "3.11" or "3.11.4"
    platform: str  # validated by spec.py with platform_is_valid

    @property
    def id(self) -> str:
        return f"py{self.python}-{self.platform}"

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def full_version(self) -> str:
        """What requires-python and python_full_version compare against ("3.11" -> "3.11.0")."""
        return self.python if self.python.count(".") == 2 else f"{self.python}.0"

    @property
    def os(self) -> str:
        if self.platform.startswith("macosx_"):
            return "darwin"
        if self.platform.startswith("win"):
            return "windows"
        return "linux"

    @property
    def machine(self) -> str:
        if self.platform in WINDOWS:
            return WINDOWS[self.platform]
        m = _match(self.platform)
        return m.group("arch") if m else ""

    def platform_tags(self) -> list[str]:
        """The platform tags a wheel may carry to install here, best first (as pip orders them)."""
        m = _match(self.platform)
        if m is None:
            return [self.platform]
        groups = m.groupdict()
        arch = groups.get("arch")
        if groups.get("win"):
            return [self.platform]
        if groups.get("major"):
            return list(mac_platforms((int(groups["major"]), int(groups["mminor"])), str(arch)))
        if groups.get("musl") is not None:
            return [f"musllinux_1_{n}_{arch}" for n in range(int(groups["musl"]), -1, -1)] + [f"linux_{arch}"]
        if groups.get("legacy"):
            glibc = {v: k for k, v in _LEGACY_MANYLINUX.items()}[groups["legacy"]]
            return _manylinux(glibc, str(arch))
        if groups.get("minor") is not None:
            return _manylinux(int(groups["minor"]), str(arch))
        return [self.platform]

    def tag_priority(self, tags: Iterable[Tag]) -> int | None:
        """The best (lowest) priority among a wheel's tags, or None when none installs here."""
        order = _tag_order(self)
        found = [order[t] for t in tags if t in order]
        return min(found) if found else None

    def marker_env(self) -> dict[str, str]:
        """The marker environment of a CPython of this version on this platform."""
        system, sys_platform, os_name = {
            "linux": ("Linux", "linux", "posix"),
            "darwin": ("Darwin", "darwin", "posix"),
            "windows": ("Windows", "win32", "nt"),
        }[self.os]
        return {
            "implementation_name": "cpython",
            "implementation_version": self.full_version,
            "os_name": os_name,
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": system,
            "platform_version": "",
            "python_full_version": self.full_version,
            "python_version": ".".join(str(n) for n in self.version_tuple),
            "sys_platform": sys_platform,
        }


def _manylinux(glibc_minor: int, arch: str) -> list[str]:
    """manylinux_2_X expands to every lower glibc down to the oldest one the arch had, with the legacy
    aliases at their glibc versions (2_17 -> manylinux2014, 2_12 -> manylinux2010, 2_5 -> manylinux1)."""
    floor = 5 if arch in ("x86_64", "i686") else 17
    tags: list[str] = []
    for minor in range(glibc_minor, floor - 1, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        legacy = _LEGACY_MANYLINUX.get(minor)
        if legacy and arch in _LEGACY_ARCHES[legacy]:
            tags.append(f"{legacy}_{arch}")
    tags.append(f"linux_{arch}")
    return tags


@lru_cache(maxsize=64)
def _tag_order(target: Target) -> dict[Tag, int]:
    """Every tag that installs on ``target`` -> its rank (0 is best), in pip's order."""
    version = target.version_tuple
    platforms = target.platform_tags()
    tags: Iterable[Tag] = (
        *cpython_tags(version, platforms=platforms),
        *compatible_tags(version, f"cp{version[0]}{version[1]}", platforms=platforms),
    )
    order: dict[Tag, int] = {}
    for tag in tags:
        order.setdefault(tag, len(order))
    return order
