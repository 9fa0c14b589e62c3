"""``mirrorctl diff`` over sets of locks: a folder of locks, or that folder as a git revision holds it.

A pull request that touches two profiles is one command: ``mirrorctl diff main`` compares every lock in the
working tree's locks folder (``[profiles] dir``, where ``mirrorctl lock`` writes ``NAME.lock``) against the same
folder at ``main``; ``diff A B`` and ``diff A..B`` compare two revisions, ``diff A...B`` the merge base of A and B
with B (what a pull request from B into A changes); ``diff OLD-FOLDER NEW-FOLDER`` two folders. Profiles pair by
file name (``web.lock`` is profile ``web``); one present on one side only is all added or all removed.

How an argument is read, first match wins (the one-argument and two-argument forms alike):

1. ``current``, ``view:<id>``, ``channel:<name>``: a side in the store (mirrorctl.diff);
2. ``git:REV``: the git revision REV, whatever else the name could be;
3. ``A..B`` or ``A...B`` that is not an existing path: two revisions (only as the one argument);
4. an existing path: a folder is a folder of locks, a file is a lock or a bundle by its suffix (mirrorctl.diff).
   A folder whose name is also a revision is refused as ambiguous (say ``./NAME`` or ``git:NAME``);
5. a name ending in ``.lock``, ``.bundle``, ``.parts.json`` or ``.partNNNN``: a file (not found: exit 2). git
   refuses ``.lock`` at the end of a ref name, so a lock file's name is never a revision;
6. a git revision of the repository the command runs in (``git rev-parse --verify REV^{commit}``);
7. anything else: exit 2 naming it.

git runs as a subprocess, read-only (``rev-parse``, ``merge-base``, ``ls-tree``, ``show REV:path``), with the
revision resolved to a commit id first so that no argument is ever read by git as an option.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirrorctl.diff import Diff, Side, compute_diff, diff_to_dict, markdown_lines, md_cell, render_text
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import UserError
from mirrorctl.lockfile import LegacyPaths, Lock, merge_artifacts, parse_lock, read_lock
from mirrorctl.progress import human_size

STORE_PREFIXES = ("view:", "channel:")
FILE_SUFFIX = re.compile(r"(\.lock|\.bundle|\.parts\.json|\.part\d{4})$")
SET_HELP = (
    "a folder of *.lock files, a git revision (main, HEAD~1, a tag or commit; git:REV to force it), or A..B / "
    "A...B as the one argument"
)


@dataclass(frozen=True, slots=True)
class LockSet:
    spec: str  # as the user wrote it
    label: str  # e.g. "main:profiles/", "profiles/ (working tree)"
    locks: Mapping[str, Lock]  # profile name -> lock
    where: Mapping[str, str]  # profile name -> what the report calls that lock ("main:profiles/web.lock")


def is_store_side(spec: str) -> bool:
    return spec == "current" or spec.startswith(STORE_PREFIXES)


# --- git, read-only ---------------------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("diff: git is not installed, so a revision cannot be read", hint="install git") from None


def git_toplevel(cwd: Path) -> Path | None:
    done = _git(cwd, "rev-parse", "--show-toplevel")
    return Path(done.stdout.decode().strip()) if done.returncode == 0 else None


def resolve_revision(cwd: Path, rev: str) -> str | None:
    """The commit id ``rev`` names in the repository at ``cwd``, or None."""
    if not rev or rev.startswith("-") or "\x00" in rev:
        return None
    done = _git(cwd, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    out = done.stdout.decode().strip()
    return out if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", out) else None


def _require_revision(cwd: Path, rev: str, spec: str) -> str:
    top = git_toplevel(cwd)
    if top is None:
        raise UserError(
            f"{spec}: not a file or folder, and {cwd} is not in a git repository to read a revision from",
            hint=f"give {SET_HELP}, a *.lock or a *.bundle",
        )
    commit = resolve_revision(cwd, rev)
    if commit is None:
        raise UserError(
            f"{spec}: {rev!r} is not a git revision of {top} (nor a file or folder)",
            hint="check the name with `git rev-parse --verify REV`; a branch of a remote may need `git fetch`",
        )
    return commit


def _relative_dir(cwd: Path, locks_dir: Path) -> tuple[Path, str]:
    top = git_toplevel(cwd)
    if top is None:
        raise UserError(f"diff: {cwd} is not in a git repository", hint=f"give {SET_HELP}")
    try:
        rel = locks_dir.resolve().relative_to(top.resolve())
    except ValueError:
        raise UserError(
            f"diff: the locks folder {locks_dir} ([profiles] dir) is outside the git repository {top}",
            hint="run diff inside the repository that holds the profiles, or compare two folders",
        ) from None
    return top, rel.as_posix() if str(rel) != "." else ""


def revision_set(
    cwd: Path, spec: str, rev: str, locks_dir: Path, *, legacy_paths: LegacyPaths | None, commit: str | None = None
) -> LockSet:
    """Every ``*.lock`` directly in ``locks_dir`` as the revision holds it (``git ls-tree``, ``git show``)."""
    commit = commit or _require_revision(cwd, rev, spec)
    top, rel = _relative_dir(cwd, locks_dir)
    prefix = f"{rel}/" if rel else ""
    listed = _git(top, "ls-tree", "-z", "--name-only", commit, "--", prefix or ".")
    if listed.returncode != 0:
        raise UserError(f"{spec}: git ls-tree {rev} failed: {listed.stderr.decode(errors='replace').strip()}")
    locks: dict[str, Lock] = {}
    where: dict[str, str] = {}
    for name in sorted(n for n in listed.stdout.decode(errors="surrogateescape").split("\0") if n):
        base = name.rsplit("/", 1)[-1]
        if not base.endswith(".lock") or name != prefix + base:
            continue
        shown = _git(top, "show", f"{commit}:{name}")
        if shown.returncode != 0:
            continue  # a submodule or a symlink's target outside the tree: not a lock this revision holds
        label = f"{rev}:{name}"
        try:
            text = shown.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{label}: not UTF-8 text, so not a lock") from None
        locks[base.removesuffix(".lock")] = parse_lock(text, label, legacy_paths=legacy_paths)
        where[base.removesuffix(".lock")] = label
    return LockSet(spec, f"{rev}:{prefix or './'}", locks, where)


def folder_set(spec: str, folder: Path, *, legacy_paths: LegacyPaths | None, label: str | None = None) -> LockSet:
    """Every ``*.lock`` directly in ``folder``."""
    locks: dict[str, Lock] = {}
    where: dict[str, str] = {}
    for path in sorted(folder.glob("*.lock")):
        if path.is_file():
            locks[path.stem] = read_lock(path, legacy_paths=legacy_paths)
            where[path.stem] = _shown(path)
    return LockSet(spec, label or f"{spec.rstrip('/')}/", locks, where)


# --- reading the arguments ---------------------------------------------------------------------------------------
def _range(spec: str) -> tuple[str, str, bool] | None:
    for sep, merge_base in (("...", True), ("..", False)):
        if sep in spec:
            a, b = spec.split(sep, 1)
            return (a or "HEAD", b or "HEAD", merge_base)
    return None


def set_kind(spec: str, cwd: Path) -> str:
    """``store``, ``file``, ``folder`` or ``revision`` (see the module docstring for the order); UserError when a
    folder's name is also a revision, or when nothing fits."""
    if is_store_side(spec):
        return "store"
    if spec.startswith("git:"):
        return "revision"
    path = cwd / spec
    if path.is_dir():
        if "/" not in spec and not spec.startswith(".") and resolve_revision(cwd, spec) is not None:
            raise UserError(
                f"{spec}: both a folder and a git revision",
                hint=f"say ./{spec} for the folder or git:{spec} for the revision",
            )
        return "folder"
    if path.exists() or FILE_SUFFIX.search(spec):
        return "file"
    return "revision"


def load_sets(
    a: str, b: str | None, cwd: Path, locks_folder: Callable[[], Path], *, legacy_paths: LegacyPaths | None
) -> tuple[LockSet, LockSet] | None:
    """The two lock sets the arguments name, or None when both are single sides (a lock, bundle or view) that
    mirrorctl.diff reads. ``locks_folder`` gives the ``[profiles] dir`` (asked only when a revision is read).
    UserError (exit 2) for a bad revision, a one-argument form that is not a revision, or a set compared with a
    single side.

    Example: ``load_sets("main", None, Path.cwd(), lambda: settings.profiles_dir, legacy_paths=None)``
    """
    if b is None:
        # Revisions are checked before mirrorctl.toml is read: a bad one is named whatever the configuration.
        rng = None if a.startswith("git:") or (cwd / a).exists() else _range(a)
        if rng is not None:
            old, new, merge_base = rng
            c_old, c_new = _require_revision(cwd, old, a), _require_revision(cwd, new, a)
            if merge_base:
                done = _git(cwd, "merge-base", c_old, c_new)
                if done.returncode != 0:
                    raise UserError(f"{a}: {old} and {new} have no common ancestor", hint="use A..B instead")
                c_old, old = done.stdout.decode().strip(), f"merge-base({old}, {new})"
            locks_dir = locks_folder()
            return (
                revision_set(cwd, a, old, locks_dir, legacy_paths=legacy_paths, commit=c_old),
                revision_set(cwd, a, new, locks_dir, legacy_paths=legacy_paths, commit=c_new),
            )
        if set_kind(a, cwd) != "revision":
            raise UserError(
                f"diff {a}: alone, A is a git revision (compared with the working tree's locks), A..B or A...B",
                hint="give two sides: mirrorctl diff OLD NEW",
            )
        rev = a.removeprefix("git:")
        commit = _require_revision(cwd, rev, a)
        locks_dir = locks_folder()
        old_set = revision_set(cwd, a, rev, locks_dir, legacy_paths=legacy_paths, commit=commit)
        here = folder_set(str(locks_dir), locks_dir, legacy_paths=legacy_paths, label=_tree_label(cwd, locks_dir))
        return old_set, here
    kinds = (set_kind(a, cwd), set_kind(b, cwd))
    sets = {"folder", "revision"}
    if kinds[0] not in sets and kinds[1] not in sets:
        return None
    if kinds[0] not in sets or kinds[1] not in sets:
        for spec, kind in zip((a, b), kinds, strict=True):
            if kind == "revision":  # a mistyped file name is named as such before the mix is refused
                _require_revision(cwd, spec.removeprefix("git:"), spec)
        single, kind = (a, kinds[0]) if kinds[0] not in sets else (b, kinds[1])
        whole = b if single == a else a
        raise UserError(
            f"diff {a} {b}: {whole} is a set of locks (a folder or a git revision) but {single} is a single "
            f"{'lock or bundle file' if kind == 'file' else 'store side'}",
            hint="compare a set with a set (folders, revisions), or one lock, bundle or view with another",
        )

    def one(spec: str, kind: str) -> LockSet:
        if kind == "folder":
            return folder_set(spec, cwd / spec, legacy_paths=legacy_paths)
        rev = spec.removeprefix("git:")
        commit = _require_revision(cwd, rev, spec)  # a bad revision is named before mirrorctl.toml is read
        return revision_set(cwd, spec, rev, locks_folder(), legacy_paths=legacy_paths, commit=commit)

    return one(a, kinds[0]), one(b, kinds[1])


def _shown(path: Path) -> str:
    """A path as the report names it: relative to where the command runs when it is below it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _tree_label(cwd: Path, locks_dir: Path) -> str:
    try:
        shown = locks_dir.resolve().relative_to(cwd.resolve()).as_posix()
    except ValueError:
        shown = str(locks_dir)
    return f"{shown}/ (working tree)" if shown != "." else "./ (working tree)"


# --- comparing and rendering per profile -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SetDiff:
    a: LockSet
    b: LockSet
    changed: tuple[tuple[str, Diff], ...]  # profile name -> its diff, only the profiles that change
    unchanged: tuple[str, ...]
    # All profiles' files merged on each side: a file two profiles share is counted once, as a bundle of them
    # carries it once.
    union: Diff

    @property
    def bytes_added(self) -> int:
        return self.union.bytes_added

    @property
    def bytes_removed(self) -> int:
        return self.union.bytes_removed


def _side(s: LockSet, name: str) -> Side:
    lock = s.locks.get(name)
    if lock is None:
        return Side(s.spec, "lock", f"{name}.lock absent in {s.label}", ())
    return Side(s.spec, "lock", s.where[name], tuple(merge_artifacts([lock.artifacts])))


def compute_set_diff(a: LockSet, b: LockSet, ecosystems: Mapping[str, Ecosystem]) -> SetDiff:
    """One lock diff per profile (paired by name); a profile on one side only is all added or all removed."""
    changed, unchanged = [], []
    for name in sorted(a.locks.keys() | b.locks.keys()):
        d = compute_diff(_side(a, name), _side(b, name), ecosystems)
        if d.changed or (name in a.locks) != (name in b.locks):
            changed.append((name, d))
        else:
            unchanged.append(name)
    def merged(s: LockSet) -> Side:
        return Side(s.spec, "lock", s.label, tuple(merge_artifacts(lock.artifacts for lock in s.locks.values())))

    return SetDiff(a, b, tuple(changed), tuple(unchanged), compute_diff(merged(a), merged(b), ecosystems))


def _headline(d: SetDiff) -> str:
    names = ", ".join(n for n, _ in d.changed) or "none"
    kept = f", {len(d.unchanged)} unchanged ({', '.join(d.unchanged)})" if d.unchanged else ""
    return f"{len(d.changed)} profile{'' if len(d.changed) == 1 else 's'} changed ({names}){kept}"


def _total(d: SetDiff) -> str:
    return (
        f"{human_size(d.bytes_added, signed=True)}, -{human_size(d.bytes_removed)}, "
        f"net {human_size(d.bytes_added - d.bytes_removed, signed=True)}"
    )


def render_set_text(d: SetDiff) -> str:
    out = [f"diff {d.a.label} -> {d.b.label}: {_headline(d)}"]
    for name, one in d.changed:
        out += ["", f"== profile {name}", render_text(one).rstrip("\n")]
    out += ["", f"all profiles (shared files once): {_total(d)}"]
    return "\n".join(out) + "\n"


def render_set_markdown(d: SetDiff) -> str:
    """A pull request body: the headline, then one section per changed profile, each with its ecosystems."""
    out = [f"## Mirror change: `{md_cell(d.a.label)}` -> `{md_cell(d.b.label)}`", "", md_cell(_headline(d)), ""]
    for name, one in d.changed:
        title = f"Profile `{md_cell(name)}`: `{md_cell(one.a.label)}` -> `{md_cell(one.b.label)}`"
        out += [*markdown_lines(one, level=3, title=title), ""]
    out.append(f"**All profiles** (shared files once): {_total(d)}")
    return "\n".join(out) + "\n"


def set_diff_to_dict(d: SetDiff) -> dict[str, Any]:
    return {
        "a": {"spec": d.a.spec, "label": d.a.label},
        "b": {"spec": d.b.spec, "label": d.b.label},
        "profiles": {name: diff_to_dict(one) for name, one in d.changed},
        "unchanged-profiles": list(d.unchanged),
        "totals": {
            "bytes-added": d.bytes_added, "bytes-removed": d.bytes_removed,
            "bytes-net": d.bytes_added - d.bytes_removed,
        },
    }


SET_RENDERERS: Mapping[str, Callable[[SetDiff], str]] = {
    "text": render_set_text,
    "markdown": render_set_markdown,
    "json": lambda d: json.dumps(set_diff_to_dict(d), indent=2, sort_keys=True) + "\n",
}


__all__ = [
    "SET_RENDERERS", "LockSet", "SetDiff", "compute_set_diff", "folder_set", "is_store_side", "load_sets",
    "revision_set", "set_kind",
]
