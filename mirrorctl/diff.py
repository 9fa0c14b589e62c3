"""``mirrorctl diff A B``: what changes between two sets of artifacts, per ecosystem, for change control.

A side is one of:

* a lock file (``*.lock``);
* a bundle (``*.bundle``, or a chunked bundle's ``*.parts.json`` index or any ``*.partNNNN``, its parts found
  beside it and in the ``search`` folders), only after it verifies completely with the trusted keys: an
  unverified bundle's locks are the claims of whoever wrote the file, so they are never shown as fact;
* a view of the store (``view:<id>``), the snapshot a channel points at (``channel:<name>``), or the view being
  served (``current``).

Files are grouped per (ecosystem, project name), so a version bump of a project with four wheels is one change
with four files. A file's size counts its companions (e.g. PEP 658 metadata): that is what crosses the gap.
Version ordering and name folding come from each ecosystem's adapter (``compare_versions``, ``fold_name``); an
ecosystem that is not installed, or a version its adapter cannot parse, gives "changed" instead of a guessed
up/down.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import BundleRefused, MirrorctlError, UserError
from mirrorctl.inside.store import Store, View
from mirrorctl.lockfile import Artifact, Lock, merge_artifacts, parse_lock, read_lock
from mirrorctl.progress import human_size

if TYPE_CHECKING:
    from mirrorctl.runtime import Runtime

KINDS = ("added", "removed", "upgraded", "downgraded", "changed")
_SIGN = {"added": "+", "removed": "-", "upgraded": "^", "downgraded": "v", "changed": "~"}
KIND_HELP = (
    "a *.lock file, a *.bundle file or a chunked bundle's *.parts.json (verified with [trust] keys), view:<id>, "
    "channel:<name>, or current"
)


# --- per-ecosystem rules: how names fold and versions order, as the adapters say -------------------------------
@dataclass(frozen=True, slots=True)
class Rules:
    fold: Callable[[str], str]  # the name two spellings of one project share
    compare: Callable[[str, str], int | None]  # <0, 0, >0, or None when the order is unknown


_DEFAULT_RULES = Rules(lambda n: n, lambda a, b: None)


def rules_for(ecosystem: str, ecosystems: Mapping[str, Ecosystem]) -> Rules:
    adapter = ecosystems.get(ecosystem)
    return _DEFAULT_RULES if adapter is None else Rules(adapter.fold_name, adapter.compare_versions)


# --- sides -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Side:
    spec: str  # as the user wrote it
    kind: str  # lock | bundle | view
    label: str  # what the report calls it (a view id is resolved for ``current``)
    artifacts: tuple[Artifact, ...]
    # sha256 -> the profiles whose locks hold that file: a bundle or a view carries several profiles' locks
    owners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def owners_of(locks: Mapping[str, Lock]) -> dict[str, tuple[str, ...]]:
    """sha256 -> the sorted names of the profiles (locks) that hold a file with it."""
    out: dict[str, set[str]] = {}
    for name, lock in locks.items():
        for a in lock.artifacts:
            out.setdefault(a.sha256, set()).add(name)
    return {sha: tuple(sorted(names)) for sha, names in out.items()}


def load_side(
    spec: str,
    runtime: Runtime,
    *,
    now: datetime | None = None,
    search: Sequence[Path] = (),
) -> Side:
    """Read one side. The runtime's settings are read only for a bundle (trusted keys, and its ecosystems to
    check it) or a view (its store): a diff of two locks needs no mirrorctl.toml.
    ``search``: more folders where a chunked bundle's parts may lie.

    Example: ``load_side("profiles/web.lock", Runtime.for_settings(settings))``
    """
    if spec == "current" or spec.startswith("view:"):
        return _load_view(spec, runtime.store)
    if spec.startswith("channel:"):
        return _load_channel(spec, runtime.store)
    path = Path(spec)
    # A chunked bundle: named by its index or a part, or as the bundle whose index lies beside it.
    if _is_chunked(path) or (path.suffix == ".bundle" and not path.exists() and _index_beside(path).exists()):
        return _load_bundle(_parts(path, search), spec, runtime, now or datetime.now(UTC))
    if path.suffix not in (".lock", ".bundle"):
        raise UserError(f"{spec}: unknown kind of diff side", hint=f"give {KIND_HELP}")
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: is not a file")
    if path.suffix == ".lock":
        lock = read_lock(path, legacy_paths=runtime.ecosystems)
        return Side(spec, "lock", spec, tuple(merge_artifacts([lock.artifacts])))
    return _load_bundle(path, spec, runtime, now or datetime.now(UTC))


def _load_bundle(path: Path, spec: str, runtime: Runtime, now: datetime) -> Side:
    from mirrorctl.crossing.bundle.verify import verify_bundle
    from mirrorctl.crossing.signing import load_trusted_keys

    settings = runtime.settings

    if not settings.trusted_keys:
        where = f" in {settings.config_path}" if settings.config_path else ""
        raise UserError(
            f"{path}: cannot verify this bundle: no trusted keys configured{where}; "
            "an unverified bundle's content is not shown",
            hint='list the signing key\'s .pub file in mirrorctl.toml: [trust] keys = ["keys/mirrorctl.key.pub"]',
        )
    keys = load_trusted_keys(settings.trusted_keys, config=settings.config_path)
    try:
        # A delta rebuilds its locks from the inside copies in this store (read only).
        verified = verify_bundle(path, keys, now, ecosystems=runtime.ecosystems, store=runtime.store)
    except BundleRefused as exc:
        # For diff a bundle that does not verify is bad input, not a failed operation: exit 2, named.
        raise UserError(
            f"{exc.message}" if str(path) in exc.message else f"{path}: {exc.message}",
            hint="diff reads a bundle only once it verifies; get an untouched copy or check [trust] keys",
        ) from exc
    return Side(spec, "bundle", spec, tuple(verified.artifacts), owners_of(verified.locks))


# mirrorctl.crossing.bundle is imported only when a side is a bundle: a diff of two locks does not pay for it.
_INDEX_SUFFIX = ".parts.json"  # mirrorctl/crossing/bundle/chunks.py INDEX_SUFFIX


def _is_chunked(path: Path) -> bool:
    return path.name.endswith(_INDEX_SUFFIX) or re.search(r"\.part\d{4}$", path.name) is not None


def _index_beside(path: Path) -> Path:
    return path.parent / (path.name + _INDEX_SUFFIX)


def _parts(path: Path, search: Sequence[Path]) -> Path:
    """The checked parts as one readable bundle; a missing or damaged part is named (exit 2 for diff)."""
    from mirrorctl.crossing.bundle.chunks import resolve_bundle

    try:
        return resolve_bundle(path, search)
    except BundleRefused as exc:
        raise UserError(exc.message, hint=exc.hint) from exc


def _load_channel(spec: str, store: Store) -> Side:
    from mirrorctl.inside.channels import require_channel

    name = spec.removeprefix("channel:")
    try:
        view_id = require_channel(store, name)
    except UserError as exc:
        raise UserError(f"{spec}: {exc.message}", hint=exc.hint) from exc
    side = _load_view(f"view:{view_id}", store)
    return Side(spec, "view", f"{spec} (view:{view_id})", side.artifacts, side.owners)


def _load_view(spec: str, store: Store) -> Side:
    if spec == "current":
        view_id = store.current_view_id()
        if view_id is None:
            raise UserError(f"current: {store.root} serves no view yet", hint="import a bundle first")
    else:
        view_id = spec.removeprefix("view:")
        # The id becomes a folder name: refuse anything that could leave views/.
        if not view_id or "/" in view_id or "\\" in view_id or view_id.startswith(".") or "\x00" in view_id:
            raise UserError(f"{spec}: not a view id", hint="view ids are folder names under <store>/views/")
    try:
        view = store.load_view(view_id)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{store.root / 'views' / view_id / 'view.json'}: unreadable view ({exc})") from exc
    label = spec if spec.startswith("view:") else f"current (view:{view_id})"
    return Side(spec, "view", label, tuple(merge_artifacts([view.artifacts])), _view_owners(store, view))


def _view_owners(store: Store, view: View) -> dict[str, tuple[str, ...]]:
    """The profiles of each file, from the locks the view was imported with (kept in the store as blobs by
    their sha256). A lock that is missing or does not match its digest is left out: its files show no profile
    (``mirrorctl verify`` names the damage), the diff itself stays right."""
    locks: dict[str, Lock] = {}
    for name, sha in view.profiles.items():
        try:
            data = store.blob_path(sha).read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                continue
            where = f"{view.view_id}:{name}.lock"
            locks[name] = parse_lock(data.decode("utf-8"), where, legacy_paths=store.legacy_paths(data))
        except (OSError, ValueError, MirrorctlError):
            continue
    return owners_of(locks)


# --- comparison ------------------------------------------------------------------------------------------------
def file_size(a: Artifact) -> int:
    return a.size + sum(c.size for c in a.companions)


@dataclass(frozen=True, slots=True)
class Change:
    ecosystem: str
    name: str
    kind: str  # one of KINDS
    old_versions: tuple[str, ...]
    new_versions: tuple[str, ...]
    files: int  # files on the new side (the old side for a removal)
    bytes_added: int  # files only on the new side
    bytes_removed: int  # files only on the old side
    profiles: tuple[str, ...] = ()  # bundle and view sides: the profiles whose locks hold the changed files
    targets: tuple[str, ...] = ()  # the targets (python/platform, npm platform, apt arch) of the changed files

    @property
    def net(self) -> int:
        return self.bytes_added - self.bytes_removed

    def to_dict(self, *, columns: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ecosystem": self.ecosystem, "name": self.name, "kind": self.kind,
            "old-versions": list(self.old_versions), "new-versions": list(self.new_versions),
            "files": self.files, "bytes-added": self.bytes_added, "bytes-removed": self.bytes_removed,
            "bytes-net": self.net,
        }
        if columns:
            doc.update({"profiles": list(self.profiles), "targets": list(self.targets)})
        return doc


@dataclass(frozen=True, slots=True)
class EcosystemDiff:
    ecosystem: str
    changes: tuple[Change, ...]
    unchanged: int

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    @property
    def bytes_added(self) -> int:
        return sum(c.bytes_added for c in self.changes)

    @property
    def bytes_removed(self) -> int:
        return sum(c.bytes_removed for c in self.changes)


@dataclass(frozen=True, slots=True)
class Diff:
    a: Side
    b: Side
    ecosystems: tuple[EcosystemDiff, ...]

    @property
    def bytes_added(self) -> int:
        return sum(e.bytes_added for e in self.ecosystems)

    @property
    def bytes_removed(self) -> int:
        return sum(e.bytes_removed for e in self.ecosystems)

    @property
    def columns(self) -> bool:
        """Profile and target columns: a bundle or a view holds several profiles, so which one a change is for
        is news; a lock is one profile."""
        return "bundle" in (self.a.kind, self.b.kind) or "view" in (self.a.kind, self.b.kind)

    @property
    def changed(self) -> bool:
        return any(e.changes for e in self.ecosystems)


def _group(artifacts: Iterable[Artifact], rules: Callable[[str], Rules]) -> dict[tuple[str, str], list[Artifact]]:
    groups: dict[tuple[str, str], list[Artifact]] = {}
    for a in artifacts:
        groups.setdefault((a.ecosystem, rules(a.ecosystem).fold(a.name)), []).append(a)
    return groups


def _sorted_versions(versions: Iterable[str], rules: Rules) -> tuple[str, ...]:
    def cmp(x: str, y: str) -> int:
        c = rules.compare(x, y)
        return (x > y) - (x < y) if c is None else c  # an order for display only; the kind says "changed"

    return tuple(sorted(set(versions), key=functools.cmp_to_key(cmp)))


def _kind(old: Sequence[Artifact], new: Sequence[Artifact], rules: Rules) -> str:
    if not old:
        return "added"
    if not new:
        return "removed"
    old_v, new_v = {a.version for a in old}, {a.version for a in new}
    gone, came = old_v - new_v, new_v - old_v
    if not gone or not came:
        return "changed"  # same versions with other files, or a version added/dropped beside kept ones
    orders = {rules.compare(x, y) for x in came for y in gone}
    if None in orders:
        return "changed"
    if all(o > 0 for o in orders if o is not None):
        return "upgraded"
    if all(o < 0 for o in orders if o is not None):
        return "downgraded"
    return "changed"


def compute_diff(a: Side, b: Side, ecosystems: Mapping[str, Ecosystem]) -> Diff:
    """Compare two sides: per ecosystem, one Change per project whose files differ, plus an unchanged count.
    ``ecosystems`` order versions and fold names (see the module docstring)."""
    cache: dict[str, Rules] = {}

    def rules_of(eco: str) -> Rules:
        if eco not in cache:
            cache[eco] = rules_for(eco, ecosystems)
        return cache[eco]

    old_groups, new_groups = _group(a.artifacts, rules_of), _group(b.artifacts, rules_of)
    per_eco: dict[str, list[Change]] = {}
    unchanged: dict[str, int] = {}
    for key in sorted(old_groups.keys() | new_groups.keys()):
        eco = key[0]
        per_eco.setdefault(eco, [])
        unchanged.setdefault(eco, 0)
        old, new = old_groups.get(key, []), new_groups.get(key, [])
        old_sha, new_sha = {x.sha256 for x in old}, {x.sha256 for x in new}
        if old_sha == new_sha:
            unchanged[eco] += 1
            continue
        rules = rules_of(eco)
        name = (new or old)[0].name
        moved = [x for x in new if x.sha256 not in old_sha] + [x for x in old if x.sha256 not in new_sha]
        owners = {p for x in old for p in a.owners.get(x.sha256, ())} | {
            p for x in new for p in b.owners.get(x.sha256, ())
        }
        per_eco[eco].append(
            Change(
                ecosystem=eco,
                name=name,
                kind=_kind(old, new, rules),
                old_versions=_sorted_versions((x.version for x in old), rules),
                new_versions=_sorted_versions((x.version for x in new), rules),
                files=len(new) if new else len(old),
                bytes_added=sum(file_size(x) for x in new if x.sha256 not in old_sha),
                bytes_removed=sum(file_size(x) for x in old if x.sha256 not in new_sha),
                profiles=tuple(sorted(owners)),
                targets=tuple(sorted({t for x in moved for t in x.targets})),
            )
        )
    order = {k: i for i, k in enumerate(KINDS)}
    ecos = tuple(
        EcosystemDiff(
            eco,
            tuple(sorted(changes, key=lambda c: (order[c.kind], rules_of(eco).fold(c.name), c.name))),
            unchanged[eco],
        )
        for eco, changes in sorted(per_eco.items())
    )
    return Diff(a, b, ecos)


# --- rendering -------------------------------------------------------------------------------------------------
def _versions(c: Change) -> str:
    old, new = ", ".join(c.old_versions), ", ".join(c.new_versions)
    if c.kind == "added":
        return new
    if c.kind == "removed":
        return old
    return old if old == new else f"{old} -> {new}"


def _files(n: int) -> str:
    return f"{n} file" + ("" if n == 1 else "s")


def _summary(e: EcosystemDiff) -> str:
    counts = ", ".join(f"{e.count(k)} {k}" for k in KINDS)
    return (
        f"{counts}, {e.unchanged} unchanged; {human_size(e.bytes_added, signed=True)}, "
        f"-{human_size(e.bytes_removed)}, net {human_size(e.bytes_added - e.bytes_removed, signed=True)}"
    )


def _columns_text(c: Change) -> str:
    parts = []
    if c.profiles:
        parts.append(f"profile{'s' if len(c.profiles) > 1 else ''} {', '.join(c.profiles)}")
    if c.targets:
        parts.append(f"target{'s' if len(c.targets) > 1 else ''} {', '.join(c.targets)}")
    return f" [{'; '.join(parts)}]" if parts else ""


def _total(d: Diff) -> str:
    return (
        f"{human_size(d.bytes_added, signed=True)}, -{human_size(d.bytes_removed)}, "
        f"net {human_size(d.bytes_added - d.bytes_removed, signed=True)}"
    )


def render_text(d: Diff) -> str:
    lines = [f"diff {d.a.label} -> {d.b.label}"]
    if not d.ecosystems:
        lines.append("both sides are empty")
    for e in d.ecosystems:
        lines.append(f"{e.ecosystem}: {_summary(e)}")
        for c in e.changes:
            lines.append(
                f"  {_SIGN[c.kind]} {c.name} {_versions(c)} ({_files(c.files)}, {human_size(c.net, signed=True)})"
                + (_columns_text(c) if d.columns else "")
            )
    lines.append(f"total: {_total(d)}")
    return "\n".join(lines) + "\n"


def md_cell(text: str) -> str:
    # Cell text from a lock is data: keep it from closing the cell or opening markup.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def markdown_lines(d: Diff, *, level: int = 2, title: str | None = None) -> list[str]:
    """The markdown of one diff, its title at heading ``level`` and each ecosystem one level below (a diff of
    several profiles nests one per profile)."""
    h = "#" * level
    out = [f"{h} {title or f'Mirror change: `{md_cell(d.a.label)}` -> `{md_cell(d.b.label)}`'}", ""]
    for e in d.ecosystems:
        out += [f"{h}# {md_cell(e.ecosystem)}", "", _summary(e), ""]
        if e.changes:
            if d.columns:
                out += [
                    "| change | name | from | to | profile | target | files | size |",
                    "|---|---|---|---|---|---|--:|--:|",
                ]
            else:
                out += ["| change | name | from | to | files | size |", "|---|---|---|---|--:|--:|"]
            for c in e.changes:
                extra = f"{md_cell(', '.join(c.profiles))} | {md_cell(', '.join(c.targets))} | " if d.columns else ""
                out.append(
                    f"| {c.kind} | {md_cell(c.name)} | {md_cell(', '.join(c.old_versions))} | "
                    f"{md_cell(', '.join(c.new_versions))} | {extra}{c.files} | {human_size(c.net, signed=True)} |"
                )
            out.append("")
    out.append(
        f"**Total:** {human_size(d.bytes_added, signed=True)} added, {human_size(d.bytes_removed)} removed, "
        f"net {human_size(d.bytes_added - d.bytes_removed, signed=True)}"
    )
    return out


def render_markdown(d: Diff) -> str:
    return "\n".join(markdown_lines(d)) + "\n"


def diff_to_dict(d: Diff) -> dict[str, Any]:
    return {
        "a": {"spec": d.a.spec, "kind": d.a.kind, "label": d.a.label},
        "b": {"spec": d.b.spec, "kind": d.b.kind, "label": d.b.label},
        "ecosystems": {
            e.ecosystem: {
                "summary": {
                    **{k: e.count(k) for k in KINDS},
                    "unchanged": e.unchanged,
                    "bytes-added": e.bytes_added,
                    "bytes-removed": e.bytes_removed,
                    "bytes-net": e.bytes_added - e.bytes_removed,
                },
                "changes": [c.to_dict(columns=d.columns) for c in e.changes],
            }
            for e in d.ecosystems
        },
        "totals": {
            "bytes-added": d.bytes_added,
            "bytes-removed": d.bytes_removed,
            "bytes-net": d.bytes_added - d.bytes_removed,
        },
    }


def render_json(d: Diff) -> str:
    return json.dumps(diff_to_dict(d), indent=2, sort_keys=True) + "\n"


RENDERERS: Mapping[str, Callable[[Diff], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
}
