"""Which files and versions are candidates for a requirement on one target, the way pip and uv decide it.

Files: one per version that installs on the target (:func:`choose_files`): the best wheel by tag priority,
else, where the profile allows it, an sdist; never a file whose ``requires-python`` excludes the target.

Versions (:func:`candidate_files`), for the specifiers of every requirement on a project plus the profile's
constraints on it:

* yanked releases (PEP 592) only under an exact pin (``==`` or ``===``, no wildcard); a yanked release is then
  locked with its reason and served as yanked, so pip and uv inside warn as they do outside;
* pre-releases by PEP 440's default: where no final release satisfies the specifiers, their pre-releases do
  (as ``packaging``'s ``SpecifierSet.filter`` and pip decide); always, where a specifier names a pre-release
  (``>=2.0b1``) or the profile sets ``prereleases = true``.

Example::

    files = candidate_files(choices, specifiers, admit_all=False, yank_ok=False)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from .index import FileRecord
from .spec import PypiSpec
from .targets import Target

# The lock attr saying why a pre-release was admitted: one of the reasons below (joined by "," when targets
# differ). Free-form for the lock format; these words are what `mirrorctl lock` prints and docs explain.
PRERELEASE_ATTR = "prerelease"
PRE_PROFILE = "profile"  # prereleases = true
PRE_SPECIFIER = "specifier"  # a requirement or constraint names a pre-release (>=2.0b1)
PRE_NO_FINAL = "no-final-release"  # no final release satisfies the requirements (PEP 440's default)
# The lock attr recording a yank (PEP 592): the reason, or true when the index gives none.
YANKED_ATTR = "yanked"

VersionGroups = list[tuple[Version, list[FileRecord]]]


def group_by_version(files: Sequence[FileRecord]) -> VersionGroups:
    """A project's files by version, newest first: computed once per project, shared by every target
    (sorting and hashing thousands of Versions per target was a visible cost on big projects)."""
    groups: dict[Version, list[FileRecord]] = {}
    for f in files:
        groups.setdefault(f.version, []).append(f)
    return sorted(groups.items(), key=lambda item: item[0], reverse=True)


def choose_files(
    files: Sequence[FileRecord], target: Target, spec: PypiSpec, groups: VersionGroups | None = None
) -> list[FileRecord]:
    """One file per version that installs on ``target``: versions with a wheel first (newest first), then,
    where the profile allows sdists, versions that only have an sdist. Yanked files only when nothing else."""
    # Big projects list thousands of files but only a handful of distinct requires-python values and tag
    # sets (shared objects, see index._wheel_tags): both checks are memoized per call.
    full_version = target.full_version
    python_ok: dict[str | None, bool] = {}
    priority: dict[frozenset[Tag], int | None] = {}
    wheels: list[FileRecord] = []
    sdists: list[FileRecord] = []
    for _version, group in groups if groups is not None else group_by_version(files):
        best: tuple[bool, int, str, FileRecord] | None = None
        srcs: list[FileRecord] = []
        for f in group:
            ok = python_ok.get(f.requires_python)
            if ok is None:
                ok = python_ok[f.requires_python] = f.python_ok(full_version)
            if not ok:
                continue
            if f.kind != "wheel":
                srcs.append(f)
                continue
            if f.tags in priority:
                prio = priority[f.tags]
            else:
                prio = priority[f.tags] = target.tag_priority(f.tags)
            if prio is not None and (best is None or (f.yanked, prio, f.filename) < best[:3]):
                best = (f.yanked, prio, f.filename, f)
        if best is not None:
            wheels.append(best[3])
        elif srcs and spec.sdist_ok(srcs[0].name):
            srcs.sort(key=lambda f: (f.yanked, not f.filename.endswith(".tar.gz"), f.filename))
            sdists.append(srcs[0])
    return wheels + sdists


def exact_pin(specifiers: Iterable[SpecifierSet]) -> bool:
    """Whether a specifier pins one version exactly (``==1.0``, ``===1.0``; not ``==1.*``): PEP 592's
    condition for installing a yanked release."""
    return any(s.operator in ("==", "===") and not s.version.endswith("*") for ss in specifiers for s in ss)


def names_prerelease(specifiers: Iterable[SpecifierSet]) -> bool:
    """Whether a specifier names a pre-release (``>=2.0b1``, ``==3.0rc2``), which admits pre-releases for
    its project (``SpecifierSet.prereleases``; ``!=``, ``<`` and ``>`` do not count, as in packaging)."""
    return any(bool(ss.prereleases) for ss in specifiers)


def satisfies(version: Version, specifiers: Iterable[SpecifierSet]) -> bool:
    return all(ss.contains(version, prereleases=True) for ss in specifiers)


def candidate_files(
    files: Iterable[FileRecord], specifiers: Sequence[SpecifierSet], *, admit_all: bool, yank_ok: bool
) -> Iterator[FileRecord]:
    """The files (newest first, as ``files`` is ordered) whose versions are candidates for ``specifiers``.

    ``admit_all``: pre-releases are candidates like any release (the profile or a specifier says so); else
    only where no final release satisfies ``specifiers``. A final that is not a candidate itself (yanked,
    without an exact pin) does not count. Lazy, as pip is: a resolver usually takes the first match, and big
    projects list thousands of versions; pre-releases are held back until the list shows no final fits."""
    held: list[FileRecord] = []
    final = False
    for f in files:
        if (f.yanked and not yank_ok) or not satisfies(f.version, specifiers):
            continue
        if f.version.is_prerelease and not admit_all:
            if not final:
                held.append(f)
            continue
        final = final or not f.version.is_prerelease
        yield f
    if not final:
        yield from held


def prerelease_reason(version: Version, specifiers: Sequence[SpecifierSet], spec: PypiSpec) -> str | None:
    """Why a pinned ``version`` was a candidate, if it is a pre-release (one of the PRE_* words)."""
    if not version.is_prerelease:
        return None
    if spec.prereleases:
        return PRE_PROFILE
    if names_prerelease(specifiers):
        return PRE_SPECIFIER
    return PRE_NO_FINAL
