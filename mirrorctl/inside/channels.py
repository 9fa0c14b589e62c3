"""Snapshots and channels: named pointers (dev, staging, prod, ...) to the store's immutable views.

Every import writes an immutable view (``views/<id>/view.json``): that is a *snapshot*, addressed by its id or a
unique prefix of it. A *channel* is a symlink ``channels/<name> -> ../views/<id>`` switched with one atomic
rename, exactly like ``current``; ``current`` itself is the channel named ``current``: what an import without
``--channel`` switches. An import with ``--channel NAME`` switches only that channel, never ``current``.

What the *plain layout* (``/<ecosystem>/...``, no channel prefix) serves is decided in one place,
:func:`plain_channel`: the one channel a server was asked for, else the configured default channel
(``[serve] default-channel`` in mirrorctl.toml), else ``current``, so a store without channels keeps working
unchanged. Only a promote into that channel (or, without channels, a plain import) changes what it serves.

Each channel keeps a small history in ``state/channel-<name>.json``::

    {"channel": "prod", "previous": [older ids ..., the id before the current one], "log": [...]}

``previous`` is a stack: a promote (or an import, for ``current``) pushes the id the channel pointed at before,
and ``rollback`` pops it. The stack is written *before* the link is switched, so a crash between the two leaves
an entry equal to the channel's own target, which rollback skips. The last :data:`HISTORY_KEEP` entries are
kept; every snapshot they name is retained by ``mirrorctl gc`` (a rollback never finds its blobs gone) unless
``gc --keep-history N`` first shortens every channel's history to N steps.

Every promote and rollback, done or refused, is appended to the audit journal, naming the bundle (id, sequence,
lineage) the snapshot was imported from.

Example::

    promote(store, "20261127T1530", "prod", SILENT)   # prod -> that snapshot; the old target is remembered
    rollback(store, "prod", SILENT)                   # prod -> the snapshot it pointed at before
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mirrorctl.errors import IntegrityError, MirrorctlError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.store import CURRENT, Store, View
from mirrorctl.progress import Progress

T = TypeVar("T")

CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
RESERVED = frozenset({"healthz"})  # would clash with the server's own paths in the multi-channel layout
HISTORY_KEEP = 20  # rollback steps remembered per channel (each one retains its snapshot from gc)
_LOG_KEEP = 200


@dataclass(frozen=True, slots=True)
class ChannelSwitch:
    channel: str
    view_id: str
    previous: str | None  # what the channel pointed at before (None: it is new)
    changed: bool


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    view: View
    channels: tuple[str, ...]  # channels pointing at it now
    rollback_for: tuple[str, ...]  # channels whose rollback history names it (so gc keeps it)


@dataclass(frozen=True, slots=True)
class ServedLayout:
    """What one ``mirrorctl serve`` serves: ``plain`` at ``/<ecosystem>/``, and each of ``prefixed`` at
    ``/<channel>/<ecosystem>/`` beside it (empty without ``--channel``)."""

    plain: str
    prefixed: tuple[str, ...]
    default_channel: str | None  # [serve] default-channel, as configured (None: not set)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel served, the plain one first, each once."""
        return tuple(dict.fromkeys((self.plain, *self.prefixed)))


# --- names ------------------------------------------------------------------------------------------------------


def validate_channel_name(name: str) -> str:
    if not CHANNEL_NAME.match(name) or name in RESERVED:
        raise UserError(
            f"channel name {name!r} is not allowed",
            hint="use a lowercase letter, then up to 39 lowercase letters, digits, '-' or '_' (e.g. prod); "
            f"not {', '.join(sorted(RESERVED))}",
        )
    return name


def require_channel(store: Store, name: str) -> str:
    """The view id channel ``name`` points at; UserError naming the known channels if it has none."""
    validate_channel_name(name)
    view_id = store.channel_view_id(name)
    if view_id is None:
        raise UserError(
            f"{store.root}: no channel {name!r} (channels: {', '.join(store.channel_names()) or 'none'})",
            hint=f"create it with `mirrorctl promote SNAPSHOT --channel {name} --create`"
            if name != CURRENT
            else "import a bundle first",
        )
    return view_id


def require_existing_or_create(store: Store, name: str, *, create: bool) -> None:
    """Refuse (UserError, exit 2) a channel that does not exist yet unless ``create``: a mistyped name
    (``prdo``) would otherwise become a new channel nobody serves. ``current`` always exists for this purpose
    (an import makes it)."""
    validate_channel_name(name)
    if create or name == CURRENT or name in store.channel_names():
        return
    raise UserError(
        f"{store.root}: channel {name!r} does not exist (channels: {', '.join(store.channel_names()) or 'none'}); "
        "nothing changed",
        hint=f"check the name, or pass --create to create channel {name}",
    )


def resolve_snapshot(store: Store, ref: str) -> str:
    """A snapshot id from its full id or a unique prefix; UserError for an unknown or ambiguous one."""
    if not ref or "/" in ref or "\\" in ref or ref.startswith(".") or "\x00" in ref:
        raise UserError(f"snapshot {ref!r}: not a snapshot id", hint="see `mirrorctl snapshots list`")
    ids = store.view_ids()
    if ref in ids:
        return ref
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"{store.root}: no snapshot {ref!r}", hint="see `mirrorctl snapshots list` for the ids")
    raise UserError(
        f"snapshot {ref!r} is ambiguous: {', '.join(matches[:10])}" + (" ..." if len(matches) > 10 else ""),
        hint="give more characters of the id",
    )


# --- what the plain layout serves ---------------------------------------------------------------------------


def served_layout(channels: Sequence[str] = (), default_channel: str | None = None) -> ServedLayout:
    """The layout of a server asked for ``channels`` (``serve --channel``, in order) with ``default_channel``
    configured (``[serve] default-channel``). The plain layout serves the one channel asked for; with none or
    several, the default channel; without a default, ``current`` (what a store without channels serves).

    Example: ``served_layout(["staging", "prod"], "prod").plain == "prod"``
    """
    asked = tuple(dict.fromkeys(channels))
    plain = asked[0] if len(asked) == 1 else default_channel or CURRENT
    return ServedLayout(plain=plain, prefixed=asked, default_channel=default_channel)


def plain_channel(channels: Sequence[str] = (), default_channel: str | None = None) -> str:
    """The channel the plain layout (``/<ecosystem>/...``, no channel prefix) serves (see :func:`served_layout`).

    Example: ``plain_channel((), None) == "current"``; ``plain_channel((), "prod") == "prod"``
    """
    return served_layout(channels, default_channel).plain


def plain_link(store: Store, channels: Sequence[str] = (), default_channel: str | None = None) -> Path:
    """The symlink whose target is the view the plain layout serves: read it per request (one readlink), as the
    embedded server does, to follow every promote, rollback and import at once."""
    return store.channel_link(plain_channel(channels, default_channel))


def check_layout(store: Store, layout: ServedLayout, reserved: Collection[str] = ()) -> None:
    """Refuse (UserError, exit 2) a layout that cannot be served: an invalid channel name, a channel that does
    not exist yet (naming the command that creates it; ``current`` may be empty: a fresh store serves empty
    indexes), or a prefixed channel named like a path of the plain layout (``reserved``: the ecosystems)."""
    for name in layout.channels:
        validate_channel_name(name)
    for name in layout.prefixed:
        if name in reserved:
            raise UserError(
                f"channel {name!r} cannot be served under /{name}/: that is the plain layout's /{name}/",
                hint=f"promote its snapshot into a channel with another name (`mirrorctl promote channel:{name} "
                "--channel NAME --create`) and serve that one",
            )
    for name in layout.channels:
        if name == CURRENT or store.channel_view_id(name) is not None:
            continue
        configured = name == layout.default_channel and name not in layout.prefixed
        raise UserError(
            f"{store.root}: no channel {name!r}"
            + (" ([serve] default-channel)" if configured else "")
            + f" (channels: {', '.join(store.channel_names()) or 'none'}); the server was not started",
            hint=f"create it with `mirrorctl promote SNAPSHOT --channel {name} --create` "
            "(see `mirrorctl snapshots list`)",
        )


def layout_warnings(store: Store, layout: ServedLayout) -> list[str]:
    """What to say when a server starts: a store with channels but no default channel, whose plain layout
    keeps serving ``current``."""
    named = [n for n in store.channel_names() if n != CURRENT]
    if layout.plain == CURRENT and named and layout.default_channel is None:
        return [
            f"{store.root} has channels ({', '.join(named)}) but no default channel: the plain layout "
            "/<ecosystem>/ serves current (what an import without --channel switches); to serve a channel there, "
            f'set default-channel = "{"prod" if "prod" in named else named[0]}" under [serve] in mirrorctl.toml '
            "and restart `mirrorctl serve`"
        ]
    return []


# --- what a snapshot needs ----------------------------------------------------------------------------------------


def view_blobs(store: Store, view: View) -> dict[str, int | None]:
    """Every blob a snapshot needs (sha256 -> size, None when unknown): artifacts and companions, the profiles'
    locks, and every file of the signed bundle manifest kept beside it."""
    out: dict[str, int | None] = {}
    for sha in view.profiles.values():
        out.setdefault(sha, None)
    manifest = store.root / "views" / view.view_id / "bundle-manifest.json"
    try:
        doc = json.loads(manifest.read_bytes())
    except FileNotFoundError:
        doc = {}
    except ValueError as exc:
        raise IntegrityError(
            f"{manifest}: unreadable ({exc})", hint="the store is damaged; nothing was changed"
        ) from None
    for entry in doc.get("files", []):
        out[str(entry["sha256"])] = int(entry["size"])
    for art in view.artifacts:
        for sha, size, _ in art.blobs():
            out[sha] = size
    return out


def missing_blobs(store: Store, view: View) -> list[str]:
    """``name (sha256 ...)`` for each artifact blob (or bundle file) absent or of the wrong size."""
    named = {sha: name for a in view.artifacts for sha, _, name in a.blobs()}
    manifest_sizes = {sha: size for sha, size in view_blobs(store, view).items() if size is not None}
    return [
        f"{named.get(sha, 'bundle file')} (sha256 {sha})"
        for sha, size in sorted(manifest_sizes.items())
        if not store.has_blob(sha, size)
    ]


# --- history ------------------------------------------------------------------------------------------------------


def _state_name(channel: str) -> str:
    return f"channel-{channel}"


def history(store: Store, channel: str) -> dict[str, Any]:
    """``{"channel", "previous": [ids, newest last], "log": [{when, who, action, from, to}, ...]}``."""
    doc = store.read_state(_state_name(channel))
    return {"channel": channel, "previous": list(doc.get("previous", [])), "log": list(doc.get("log", []))}


def switch_locked(store: Store, channel: str, view_id: str, *, action: str) -> ChannelSwitch:
    """Point ``channel`` at ``view_id`` and remember where it pointed before. The caller holds
    ``store.exclusive()`` (an import does; promote takes it)."""
    before = store.channel_view_id(channel)
    if before == view_id:
        return ChannelSwitch(channel, view_id, before, False)
    doc = history(store, channel)
    previous = doc["previous"]
    if before is not None and (not previous or previous[-1] != before):
        previous.append(before)
    _write_history(store, channel, previous, doc["log"], action, before, view_id)
    store.switch_channel(channel, view_id)  # the commit point
    return ChannelSwitch(channel, view_id, before, True)


def _write_history(
    store: Store, channel: str, previous: list[str], log: list[Any], action: str, before: str | None, to: str
) -> None:
    entry = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "who": audit.who(),
        "action": action,
        "from": before,
        "to": to,
    }
    store.write_state(
        _state_name(channel),
        {"channel": channel, "previous": previous[-HISTORY_KEEP:], "log": [*log, entry][-_LOG_KEEP:]},
    )


def channel_targets(store: Store) -> dict[str, str]:
    """Channel name -> the snapshot id it points at now (``current`` included)."""
    out = {}
    for name in store.channel_names():
        view_id = store.channel_view_id(name)
        if view_id is not None:
            out[name] = view_id
    return out


def served_views(store: Store) -> list[View]:
    """Every snapshot a channel (``current`` included) points at now, each once, oldest first: the newest is
    what the last import made, whichever channel it went to."""
    ids = set(channel_targets(store).values())
    return [store.load_view(view_id) for view_id in store.view_ids() if view_id in ids]


def newest_served_view(store: Store) -> View | None:
    """The newest snapshot a channel points at (for a store without channels: ``current``'s)."""
    views = served_views(store)
    return views[-1] if views else None


def served_view_of(views: Sequence[View], bundle_id: str) -> View | None:
    """The newest of ``views`` imported from ``bundle_id`` (None: none)."""
    found = [v for v in views if v.bundle_id == bundle_id]
    return found[-1] if found else None


def rollback_targets(store: Store) -> dict[str, list[str]]:
    """Channel name -> the snapshot ids its rollback history names (oldest first)."""
    out: dict[str, list[str]] = {}
    folder = store.root / "state"
    names = set(store.channel_names())
    if folder.is_dir():
        names |= {p.stem.removeprefix("channel-") for p in folder.glob("channel-*.json")}
    for name in sorted(names):
        previous = history(store, name)["previous"]
        if previous:
            out[name] = previous
    return out


def retained_by_channels(store: Store, history_steps: int | None = None) -> set[str]:
    """Snapshots that a channel points at, or that a channel's rollback could go back to (within its last
    ``history_steps`` steps when given)."""
    kept = set(channel_targets(store).values())
    for ids in rollback_targets(store).values():
        kept.update(ids if history_steps is None else ids[len(ids) - history_steps :] if history_steps else [])
    return kept


def trim_history(store: Store, steps: int) -> None:
    """Keep only the last ``steps`` rollback steps of every channel (the caller holds ``store.exclusive()``)."""
    for name, ids in rollback_targets(store).items():
        if len(ids) > steps:
            doc = history(store, name)
            store.write_state(
                _state_name(name),
                {"channel": name, "previous": ids[len(ids) - steps :] if steps else [], "log": doc["log"]},
            )


# --- the services -------------------------------------------------------------------------------------------------


def _audited(store: Store, event: str, progress: Progress, fields: dict[str, Any], work: Callable[[], T]) -> T:
    try:
        result = work()
    except MirrorctlError as exc:
        audit.record(store, event, progress, **fields, result="refused", error=exc.message)
        raise
    return result


def promote(
    store: Store, snapshot: str, channel: str, progress: Progress, *, create: bool = True
) -> ChannelSwitch:
    """Point ``channel`` at ``snapshot``: an id or unique prefix, or ``channel:NAME`` (the snapshot channel NAME
    points at, as ``mirrorctl diff`` reads it). Its blobs must all be present. A channel that does not exist yet
    is created only with ``create`` (the CLI passes its ``--create``). Refusals change nothing and name what is
    wrong.

    Example: ``promote(Store(root), "20261127T153000Z-000004", "prod", SILENT)``
    """

    def work() -> ChannelSwitch:
        validate_channel_name(channel)
        with store.exclusive():
            require_existing_or_create(store, channel, create=create)
            view_id = resolve_promoted(store, snapshot)
            view = store.load_view(view_id)
            missing = missing_blobs(store, view)
            if missing:
                shown = "; ".join(missing[:20]) + (f"; and {len(missing) - 20} more" if len(missing) > 20 else "")
                raise IntegrityError(
                    f"snapshot {view_id}: {len(missing)} blob(s) missing from {store.root}, "
                    f"channel {channel} not changed: {shown}",
                    hint="import the snapshot's bundle again (or `mirrorctl import --repair`), then promote",
                )
            return switch_locked(store, channel, view_id, action="promote")

    done = _audited(store, "promote", progress, {"channel": channel, "snapshot": snapshot}, work)
    audit.record(
        store, "promote", progress, channel=channel,
        **{"view-id": done.view_id, "from": done.previous, **audit.snapshot_fields(store, done.view_id)},
        result="ok" if done.changed else "noop",
    )
    return done


def resolve_promoted(store: Store, ref: str) -> str:
    """The snapshot id ``ref`` names: ``channel:NAME`` (what that channel points at) or an id or prefix."""
    if ref.startswith("channel:"):
        name = ref.removeprefix("channel:")
        try:
            return require_channel(store, name)
        except UserError as exc:
            raise UserError(f"{ref}: {exc.message}", hint=exc.hint) from exc
    return resolve_snapshot(store, ref)


def rollback(store: Store, channel: str, progress: Progress) -> ChannelSwitch:
    """Point ``channel`` back at the snapshot it pointed at before its last promote (or import, for
    ``current``). No blob is deleted; the newer snapshot stays listed and can be promoted again.

    Example: ``rollback(Store(root), "prod", SILENT)``
    """

    def work() -> ChannelSwitch:
        with store.exclusive():
            now = require_channel(store, channel)
            doc = history(store, channel)
            previous = doc["previous"]
            while previous and previous[-1] == now:  # left by a crash between history write and switch
                previous.pop()
            if not previous:
                raise UserError(
                    f"channel {channel}: no earlier snapshot to go back to (it points at {now}, its first)",
                    hint="promote a snapshot explicitly: `mirrorctl promote SNAPSHOT --channel "
                    f"{channel}` (see `mirrorctl snapshots list`)",
                )
            target = previous[-1]
            view = store.load_view(target)
            missing = missing_blobs(store, view)
            if missing:
                raise IntegrityError(
                    f"channel {channel}: the earlier snapshot {target} lacks {len(missing)} blob(s), "
                    f"nothing changed: {'; '.join(missing[:20])}",
                    hint="import its bundle again, then roll back",
                )
            previous.pop()
            _write_history(store, channel, previous, doc["log"], "rollback", now, target)
            store.switch_channel(channel, target)
            return ChannelSwitch(channel, target, now, True)

    done = _audited(store, "rollback", progress, {"channel": channel}, work)
    audit.record(
        store, "rollback", progress, channel=channel,
        **{"view-id": done.view_id, "from": done.previous, **audit.snapshot_fields(store, done.view_id)},
        result="ok",
    )
    return done


def remove(store: Store, channel: str, progress: Progress) -> str:
    """Remove ``channel`` (not ``current``) and its rollback history; return the snapshot it pointed at, which
    stays in the store (``mirrorctl gc`` may then delete it if nothing else keeps it). Journaled, done or refused.

    Example: ``remove(Store(root), "prdo", SILENT)``
    """

    def work() -> str:
        validate_channel_name(channel)
        if channel == CURRENT:
            raise UserError(
                f"{store.root}: the channel {CURRENT} cannot be removed (every import switches it; a plain "
                "`mirrorctl serve` serves it); nothing changed",
                hint="remove another channel, e.g. `mirrorctl channels remove staging` (see `mirrorctl channels list`)",
            )
        with store.exclusive():
            view_id = require_channel(store, channel)
            store.remove_channel(channel)  # the commit point: a crash after it leaves only a stale history
            (store.root / "state" / f"{_state_name(channel)}.json").unlink(missing_ok=True)
            return view_id

    view_id = _audited(store, "channel-remove", progress, {"channel": channel}, work)
    audit.record(
        store, "channel-remove", progress, channel=channel,
        **{"view-id": view_id, **audit.snapshot_fields(store, view_id)}, result="ok",
    )
    return view_id


def channel_view(store: Store, channel: str) -> View:
    """The snapshot a channel points at now (UserError for a channel that does not exist)."""
    return store.load_view(require_channel(store, channel))


def list_snapshots(store: Store) -> list[SnapshotInfo]:
    """Every snapshot, oldest first, with the channels that point at it or could roll back to it."""
    targets = channel_targets(store)
    rollbacks = rollback_targets(store)
    out = []
    for view_id in store.view_ids():
        out.append(
            SnapshotInfo(
                view=store.load_view(view_id),
                channels=tuple(sorted(n for n, v in targets.items() if v == view_id)),
                rollback_for=tuple(sorted(n for n, ids in rollbacks.items() if view_id in ids)),
            )
        )
    return out


def show_snapshot(store: Store, ref: str) -> SnapshotInfo:
    view_id = resolve_snapshot(store, ref)
    targets = channel_targets(store)
    rollbacks = rollback_targets(store)
    return SnapshotInfo(
        view=store.load_view(view_id),
        channels=tuple(sorted(n for n, v in targets.items() if v == view_id)),
        rollback_for=tuple(sorted(n for n, ids in rollbacks.items() if view_id in ids)),
    )
