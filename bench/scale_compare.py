"""How bench/scale_bench.py compares mirrorctl's locked versions with uv's, per target, and the rule that
classifies each difference. The rules, applied in this order (the first that holds names the difference):

1. ``same``: both took the same version.
2. ``pre-release``: either side took a pre-release. mirrorctl follows PEP 440's default (a pre-release only
   when a specifier names one or no final release satisfies); uv's default (``if-necessary-or-explicit``)
   decides per requirement, so a specifier like ``>=2.0.0b1`` from one dependent admits different things.
3. ``yanked``: the version mirrorctl took is yanked (PEP 592: only under an exact pin; uv warns and takes it
   the same way, but a different pin upstream of it changes which one).
4. ``requires-python upper bound``: the file mirrorctl took declares ``requires-python`` with an upper
   bound (``<3.13``): uv resolves for the whole range from ``--python-version`` up and drops versions that
   exclude a later Python; mirrorctl resolves for exactly the target's Python.
5. ``only mirrorctl`` / ``only uv``: the project is in one result only: a dependency of a version the other
   resolver did not take (its own difference is classified on its own line).
6. ``other choice in a conflict``: both took a version, different, none of the above. Both sets satisfy
   every requirement among their members; the two searches settled a conflict on different sides (uv's
   PubGrub keeps the newest version of the projects it decided first, resolvelib backtracks from the last
   conflict). This is the rule the issue does not list: the report counts it apart.

Example::

    diffs = compare(ours={"a": Locked("1.0", {})}, theirs={"a": "1.1rc1"})
    diffs[0].rule                        # 'pre-release'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

SAME = "same"
PRERELEASE = "pre-release"
YANKED = "yanked"
PY_UPPER = "requires-python upper bound"
ONLY_OURS = "only mirrorctl"
ONLY_THEIRS = "only uv"
OTHER_CHOICE = "other choice in a conflict"
RULES = (PRERELEASE, YANKED, PY_UPPER, ONLY_OURS, ONLY_THEIRS, OTHER_CHOICE)
LISTED = (PRERELEASE, YANKED, PY_UPPER)  # the rules the issue names


@dataclass(frozen=True)
class Locked:
    version: str
    attrs: Mapping[str, object] = field(default_factory=dict)  # the lock's [artifacts.attrs]


@dataclass(frozen=True)
class Difference:
    name: str
    ours: str | None
    theirs: str | None
    rule: str


def _pre(version: str | None) -> bool:
    if version is None:
        return False
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False


def upper_bounded(requires_python: object) -> bool:
    if not isinstance(requires_python, str):
        return False
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return False
    return any(s.operator in ("<", "<=", "~=") or (s.operator == "==" and "*" in s.version) for s in spec)


def classify(name: str, ours: Locked | None, theirs: str | None) -> str:
    ours_v = ours.version if ours else None
    if ours_v is not None and theirs is not None and _same(ours_v, theirs):
        return SAME
    if _pre(ours_v) or _pre(theirs):
        return PRERELEASE
    if ours is not None and ours.attrs.get("yanked"):
        return YANKED
    if ours is not None and theirs is not None and upper_bounded(ours.attrs.get("requires-python")):
        return PY_UPPER
    if theirs is None:
        return ONLY_OURS
    if ours is None:
        return ONLY_THEIRS
    return OTHER_CHOICE


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def compare(ours: Mapping[str, Locked], theirs: Mapping[str, str]) -> list[Difference]:
    """Every project either side took, by normalized name, with the rule that classifies it."""
    a = {canonicalize_name(k): v for k, v in ours.items()}
    b = {canonicalize_name(k): v for k, v in theirs.items()}
    return [
        Difference(n, a[n].version if n in a else None, b.get(n), classify(n, a.get(n), b.get(n)))
        for n in sorted(set(a) | set(b))
    ]


_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def parse_uv_output(text: str) -> dict[str, str]:
    """``name==version`` lines of ``uv pip compile`` output (comments and ``# via`` lines skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _PINNED.match(line.strip())
        if m:
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def summary(diffs: list[Difference]) -> dict[str, int]:
    counts = {SAME: 0, **{r: 0 for r in RULES}}
    for d in diffs:
        counts[d.rule] += 1
    return counts
