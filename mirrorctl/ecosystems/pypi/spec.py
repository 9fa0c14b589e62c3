"""The ``[pypi]`` profile table -> :class:`PypiSpec`, and the grammar check import applies to PyPI artifacts.

Example profile table::

    [pypi]
    requirements = ["httpx[http2]>=0.27", "tomli; python_version < '3.11'"]
    python = ["3.11", "3.12"]
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"]
    sdist = "never"                  # or "fallback": an sdist where a project has no wheel for a target
    sdist-allowed = ["pyyaml"]       # with "fallback": only these projects may fall back (default: any)
    constraints = ["urllib3<3"]      # apply to the whole closure, not requested by themselves
    prereleases = false
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mirrorctl.ecosystems.base import ProfileSource
from mirrorctl.errors import BundleRefused, ProfileError
from mirrorctl.lockfile import Artifact, LegacyRecord

from .targets import PLATFORM_GRAMMAR, Target, platform_is_valid, python_is_valid

SDIST_POLICIES = ("never", "fallback")
_KEYS = ("requirements", "python", "platforms", "sdist", "sdist-allowed", "constraints", "prereleases")


@dataclass(frozen=True, slots=True)
class PypiSpec:
    requirements: tuple[Requirement, ...]
    pythons: tuple[str, ...]
    platforms: tuple[str, ...]
    sdist: str = "never"
    sdist_allowed: frozenset[NormalizedName] | None = None  # None: any project may fall back
    constraints: tuple[Requirement, ...] = ()
    prereleases: bool = False

    def targets(self) -> list[Target]:
        return [Target(py, plat) for py in self.pythons for plat in self.platforms]

    def target_ids(self) -> list[str]:
        return [t.id for t in self.targets()]

    def sdist_ok(self, name: str) -> bool:
        if self.sdist != "fallback":
            return False
        return self.sdist_allowed is None or canonicalize_name(name) in self.sdist_allowed


def parse_spec(table: Mapping[str, Any], source: ProfileSource) -> PypiSpec:
    """Validate the ``[pypi]`` table; every refusal names file, field and line (ProfileError, exit 2)."""
    for key in table:
        if key not in _KEYS:
            raise ProfileError(
                f"{source.ref(key)}: unknown key {key!r}", hint=f"[pypi] accepts: {', '.join(_KEYS)}"
            )
    if "requirements" not in table:
        raise ProfileError(
            f"{source.ref('requirements')}: missing",
            hint='list what to mirror, e.g. requirements = ["requests>=2.31"]',
        )
    requirements = _requirements(table, "requirements", source, required=True)
    constraints = _requirements(table, "constraints", source, required=False)
    for i, c in enumerate(constraints):
        if c.extras or c.url:
            raise ProfileError(
                f"{source.ref('constraints', i)}: a constraint names a version range only, got {str(c)!r}",
                hint='write e.g. "urllib3<3" (no extras, no URL)',
            )

    pythons = _strings(table, "python", source)
    for i, py in enumerate(pythons):
        if not python_is_valid(py):
            raise ProfileError(
                f"{source.ref('python', i)}: {py!r} is not a Python version",
                hint='write versions like "3.11" or "3.12" (3.6 or newer)',
            )
    platforms = _strings(table, "platforms", source)
    for i, plat in enumerate(platforms):
        if not platform_is_valid(plat):
            raise ProfileError(
                f"{source.ref('platforms', i)}: unknown platform {plat!r}",
                hint=f"accepted: {PLATFORM_GRAMMAR}",
            )

    sdist = table.get("sdist", "never")
    if sdist not in SDIST_POLICIES:
        raise ProfileError(
            f"{source.ref('sdist')}: must be one of {' or '.join(map(repr, SDIST_POLICIES))}, got {sdist!r}",
            hint='"fallback" takes an sdist only where a project has no wheel for a target',
        )
    allowed: frozenset[NormalizedName] | None = None
    if "sdist-allowed" in table:
        names = _strings(table, "sdist-allowed", source)
        if sdist != "fallback":
            raise ProfileError(
                f'{source.ref("sdist-allowed")}: only meaningful with sdist = "fallback"',
                hint='set sdist = "fallback", or remove sdist-allowed',
            )
        for i, n in enumerate(names):
            if not _valid_name(n):
                raise ProfileError(f"{source.ref('sdist-allowed', i)}: {n!r} is not a project name")
        allowed = frozenset(canonicalize_name(n) for n in names)
    prereleases = table.get("prereleases", False)
    if not isinstance(prereleases, bool):
        raise ProfileError(f"{source.ref('prereleases')}: must be true or false, got {prereleases!r}")

    return PypiSpec(
        requirements=tuple(requirements),
        pythons=tuple(dict.fromkeys(pythons)),
        platforms=tuple(dict.fromkeys(platforms)),
        sdist=sdist,
        sdist_allowed=allowed,
        constraints=tuple(constraints),
        prereleases=prereleases,
    )


def _strings(table: Mapping[str, Any], key: str, source: ProfileSource) -> list[str]:
    value = table.get(key)
    if value is None:
        raise ProfileError(f"{source.ref(key)}: missing", hint=_EXAMPLES.get(key))
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{source.ref(key)}: must be a non-empty list of strings", hint=_EXAMPLES.get(key))
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ProfileError(
                f"{source.ref(key, i)}: must be a string, got {item!r}", hint=_EXAMPLES.get(key)
            )
    return list(value)


_EXAMPLES = {
    "python": 'e.g. python = ["3.11", "3.12"]',
    "platforms": 'e.g. platforms = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"]',
    "requirements": 'e.g. requirements = ["requests>=2.31", "httpx[http2]"]',
    "constraints": 'e.g. constraints = ["urllib3<3"]',
    "sdist-allowed": 'e.g. sdist-allowed = ["pyyaml"]',
}


def _requirements(
    table: Mapping[str, Any], key: str, source: ProfileSource, *, required: bool
) -> list[Requirement]:
    if key not in table and not required:
        return []
    reqs: list[Requirement] = []
    seen: dict[str, int] = {}
    for i, text in enumerate(_strings(table, key, source)):
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise ProfileError(
                f"{source.ref(key, i)}: invalid requirement {text!r}: {exc}",
                hint="use PEP 508, e.g. \"httpx[http2]>=0.27; python_version >= '3.11'\"",
            ) from exc
        if req.url:
            raise ProfileError(
                f"{source.ref(key, i)}: {text!r} is a direct URL reference",
                hint="mirrorctl locks from the configured index only; name a project and a version range",
            )
        name = canonicalize_name(req.name)
        if name in seen and key == "constraints":
            raise ProfileError(
                f"{source.ref(key, i)}: {req.name!r} is constrained twice (also [{seen[name]}])"
            )
        seen.setdefault(name, i)
        reqs.append(req)
    return reqs


def _valid_name(name: str) -> bool:
    try:
        Requirement(name)
    except InvalidRequirement:
        return False
    return Requirement(name).name == name and len(name) <= 200


def artifact_path(name: str, filename: str) -> str:
    """A PyPI artifact's path: ``<normalized project>/<file name>`` (``charset-normalizer/charset_normalizer-
    3.4.0-py3-none-any.whl``), the simple API's project page and file, so one project's files sit together."""
    return f"{canonicalize_name(name)}/{filename}"


def legacy_path(record: LegacyRecord) -> str:
    return artifact_path(record.name, record.filename)


def validate_artifact(artifact: Artifact) -> None:
    """Refuse a locked/imported PyPI artifact whose name, version or filename is outside the grammar, or
    whose filename names another project or version (it would be served under the wrong name), or whose path
    is not ``artifact_path`` of them."""
    label = f"pypi artifact {artifact.name!r} {artifact.version!r} ({artifact.path!r})"
    if not _valid_name(artifact.name) or "/" in artifact.name:
        raise BundleRefused(f"{label}: {artifact.name!r} is not a valid project name")
    try:
        version = Version(artifact.version)
    except InvalidVersion:
        raise BundleRefused(f"{label}: {artifact.version!r} is not a PEP 440 version") from None
    name = canonicalize_name(artifact.name)
    try:
        if artifact.filename.endswith(".whl"):
            fname, fversion, _build, _tags = parse_wheel_filename(artifact.filename)
        elif artifact.filename.endswith((".tar.gz", ".zip")):
            fname, fversion = parse_sdist_filename(artifact.filename)
        else:
            raise BundleRefused(f"{label}: not a wheel (.whl) or sdist (.tar.gz, .zip) file name")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise BundleRefused(f"{label}: file name does not parse: {exc}") from None
    if fname != name or fversion != version:
        raise BundleRefused(
            f"{label}: file name is for {fname} {fversion}, not {name} {version}",
            hint="the bundle was altered or built wrongly; do not import it",
        )
    expected = artifact_path(artifact.name, artifact.filename)
    if artifact.path != expected:
        raise BundleRefused(
            f"{label}: the path of {artifact.filename} is {expected!r}",
            hint="the bundle was altered or built wrongly; do not import it",
        )


def requirement_names(reqs: Sequence[Requirement]) -> list[NormalizedName]:
    return [canonicalize_name(r.name) for r in reqs]
