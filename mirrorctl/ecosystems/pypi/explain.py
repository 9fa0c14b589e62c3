"""What a PyPI resolution tells the user: the notes a lock prints (yanked releases taken under a pin,
pre-releases taken because no final release fits) and, when a target cannot be resolved, a message that
names the chain of requirements and, for each project in it, why its releases were not candidates:

* pre-releases left out because a final release satisfies the requirement (and how to admit them);
* a yanked release, which only an exact pin takes;
* files whose ``requires-python`` excludes the target's Python;
* no wheel for this target while sdists are not allowed (``sdist``, ``sdist-allowed``);
* no such project on the upstream.

Example (the message of a failed target)::

    pypi target py3.11-manylinux_2_28_x86_64: no consistent set of versions:
      lib>=2 <- app 1.0 <- the profile (versions for this target: 1.0)
        lib 2.0: requires-python >=3.12 excludes Python 3.11.0 (this target)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName

from mirrorctl.errors import MirrorctlError

from .choice import PRE_NO_FINAL, candidate_files, exact_pin, group_by_version, names_prerelease, satisfies
from .index import FileRecord
from .spec import PypiSpec
from .targets import Target

if TYPE_CHECKING:  # the resolver imports this module; these names are only annotations here
    from resolvelib.resolvers import ResolutionImpossible

    from .resolver import Candidate, Req, TargetProvider, TargetResult

_LISTED = 5  # versions named per requirement
_EXPLAINED = 3  # versions explained per project


def lock_notes(results: Sequence[TargetResult]) -> list[str]:
    """What the lock takes that pip would warn about or that a reviewer should know: yanked releases (taken
    under an exact pin) and pre-releases admitted because no final release satisfies (PEP 440's default).
    One line per file, in filename order, naming the targets."""
    yanked: dict[str, tuple[FileRecord, set[str]]] = {}
    pre: dict[tuple[str, str], tuple[FileRecord, set[str]]] = {}
    for res in results:
        by_name = {f.filename: f for f in res.files}
        for f in res.files:
            if f.yanked:
                yanked.setdefault(f.filename, (f, set()))[1].add(res.target.id)
        for filename, (reason, wanted) in res.prereleases.items():
            if reason == PRE_NO_FINAL:
                pre.setdefault((filename, wanted), (by_name[filename], set()))[1].add(res.target.id)
    lines = []
    for _, (f, where) in sorted(yanked.items()):
        why = f": {f.yank_reason}" if f.yank_reason else " (no reason given)"
        lines.append(
            f"pypi: {f.name} {f.version} is yanked{why}; locked because a requirement pins it exactly "
            f"(PEP 592), and served as yanked ({', '.join(sorted(where))})"
        )
    for (_, wanted), (f, where) in sorted(pre.items()):
        lines.append(
            f"pypi: {f.name} {f.version} is a pre-release, locked because no final release satisfies "
            f"{wanted} (PEP 440's default, as pip and uv) ({', '.join(sorted(where))})"
        )
    return lines


def impossible_message(
    target: Target, exc: ResolutionImpossible[Req, Candidate], provider: TargetProvider
) -> str:
    """The chain of each conflicting requirement, then why the projects in it had no candidate."""
    lines: list[str] = []
    pages: dict[str, list[FileRecord] | None] = {}
    for cause in exc.causes:
        req: Req = cause.requirement
        chain, names = requirement_chain(req, cause.parent, provider)
        choices = provider._choices.get(req.name, [])
        note = (
            f" (versions for this target: {', '.join(_label(f) for f in choices[:_LISTED])})"
            if choices
            else " (no file installs here)"
        )
        lines.append("  " + " <- ".join(chain) + note)
        for name in names:
            specifiers = [req.specifier] if name == req.name else provider.wanted.get(name, [])
            if name not in pages:
                pages[name] = _unfiltered(provider, name)
            reasons = explain_project(
                name, provider.specifiers(name, specifiers), target, provider.spec,
                provider._choices.get(name, []), pages[name],
            )
            lines.extend(f"    {r}" for r in reasons)
    uniq = list(dict.fromkeys(lines))
    return f"pypi target {target.id}: no consistent set of versions:\n" + "\n".join(uniq)


def requirement_chain(
    req: Req, parent: Candidate | None, provider: TargetProvider
) -> tuple[list[str], list[NormalizedName]]:
    """``lib>=2 <- app 1.0 <- the profile``, as parts, and the projects in it."""
    chain = [req.text]
    names: list[NormalizedName] = [req.name]
    seen: set[str] = set()
    while parent is not None and parent.name not in seen:
        seen.add(parent.name)
        chain.append(str(parent))
        names.append(parent.name)
        parent = provider.parents.get(parent.name)
    chain.append("the profile")
    return chain, names


def _label(f: FileRecord) -> str:
    if f.yanked:
        return f"{f.version} (yanked)"
    return f"{f.version} (pre-release)" if f.version.is_prerelease else str(f.version)


def _unfiltered(provider: TargetProvider, name: str) -> list[FileRecord] | None:
    try:
        files: list[FileRecord] = provider.bridge.run(lambda: provider.index.unfiltered(name))
    except MirrorctlError:  # the explanation is a courtesy: the resolution error itself still stands
        return None
    return files


def explain_project(
    name: str,
    specifiers: Sequence[SpecifierSet],
    target: Target,
    spec: PypiSpec,
    choices: Sequence[FileRecord],
    listed: list[FileRecord] | None,
) -> list[str]:
    """Why releases of ``name`` that satisfy ``specifiers`` were not candidates on ``target`` (empty when
    nothing needs saying). ``choices``: the file chosen per version for the target; ``listed``: every file
    the upstream lists (None when it could not be read now), for the versions that have no file here."""
    out: list[str] = []
    fitting = [f for f in choices if satisfies(f.version, specifiers)]
    admit_all = spec.prereleases or names_prerelease(specifiers)
    yank_ok = exact_pin(specifiers)
    candidates = {f.version for f in candidate_files(fitting, specifiers, admit_all=admit_all, yank_ok=yank_ok)}
    left_out = [f for f in fitting if f.version.is_prerelease and f.version not in candidates and not f.yanked]
    if left_out:
        final = next(f for f in fitting if not f.version.is_prerelease and f.version in candidates)
        wanted = name + ",".join(str(s) for s in specifiers if str(s))
        example = f"{name}>={left_out[0].version}"
        out.append(
            f"{name}: pre-releases were excluded ({', '.join(str(f.version) for f in left_out[:_LISTED])}), "
            f"because final release {final.version} satisfies {wanted} (PEP 440); to admit them, set "
            f"prereleases = true in [pypi] or name a pre-release in the requirement (e.g. {example!r})"
        )
    for f in fitting:
        if f.yanked and f.version not in candidates:
            why = f": {f.yank_reason}" if f.yank_reason else ""
            out.append(
                f"{name} {f.version} is yanked{why}; only an exact pin ({name}=={f.version}) takes a yanked "
                "release (PEP 592)"
            )
    if listed is not None and not listed:
        out.append(f"{name}: the upstream lists no such project (no wheel, no sdist)")
    have = {f.version for f in choices}
    explained = 0
    for version, files in group_by_version(listed or []):
        if version in have or not satisfies(version, specifiers):
            continue
        out.append(_why_no_file(name, str(version), files, target, spec))
        explained += 1
        if explained == _EXPLAINED:
            break
    return out


def _why_no_file(name: str, version: str, files: list[FileRecord], target: Target, spec: PypiSpec) -> str:
    """Why no file of this version installs on ``target``."""
    python = target.full_version
    wheels = [f for f in files if f.kind == "wheel"]
    sdists = [f for f in files if f.kind != "wheel"]
    fitting_wheels = [f for f in wheels if target.tag_priority(f.tags) is not None]
    usable = fitting_wheels + (sdists if spec.sdist_ok(name) else [])
    refused = sorted({f.requires_python or "" for f in usable if not f.python_ok(python)})
    if usable and refused and all(not f.python_ok(python) for f in usable):
        return (
            f"{name} {version}: requires-python {' / '.join(refused)} excludes Python {python} "
            f"(target {target.id})"
        )
    if fitting_wheels:  # the upstream's page changed since the resolver read it
        return f"{name} {version}: no file of it installs on {target.id}"
    tags = sorted({"-".join(f.filename[:-4].rsplit("-", 3)[1:]) for f in wheels})
    wheel_part = (
        f"no wheel fits {target.id} (wheels for: {', '.join(tags[:3])}{', ...' if len(tags) > 3 else ''})"
        if wheels
        else "no wheel at all"
    )
    if not sdists:
        return f"{name} {version}: {wheel_part}, and no sdist"
    if spec.sdist == "never":
        return (
            f"{name} {version}: {wheel_part}, and sdists are not allowed (sdist = \"never\"); "
            f"set sdist = \"fallback\" in [pypi] to take {sdists[0].filename}"
        )
    return (
        f"{name} {version}: {wheel_part}, and sdist-allowed does not name {name}; add it to take "
        f"{sdists[0].filename}"
    )
