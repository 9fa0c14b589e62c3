"""``mirrorctl publish``: replay what the store serves into an internal mirror (Pulp 3, devpi).

The service chooses *what* to publish and proves it intact; the target decides *how* the server takes it:

1. the artifacts of the store's current view (what the last import committed) or of a channel's snapshot,
   filtered to the named profiles
   through the locks the view records (kept as blobs);
2. per ecosystem the target supports (others are named in a note and left out);
3. every blob of the set (artifacts and companions) verified, size then sha256, *before* anything is sent: one
   bad blob refuses the whole publish, naming it, and nothing reaches the server;
4. ``target.publish`` per ecosystem;
5. each publish recorded in a local journal (``state/publish-<target>.json``): when, who, which view and
   bundle, what each ecosystem did. devpi keeps no versions, so its history is this journal.

Example::

    async with rt.client() as client:
        target = make_target(rt.settings.target("devpi"), client, rt.environ, ecosystems=rt.ecosystems)
        results = await publish(rt.settings, rt.store, target, ["web"], SILENT)
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mirrorctl.config import Settings
from mirrorctl.errors import IntegrityError, MirrorctlError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store, View
from mirrorctl.lockfile import Artifact, parse_lock
from mirrorctl.progress import SILENT, Progress
from mirrorctl.targets.base import PublishedVersion, PublishResult, PublishTarget, TargetCheck

JOURNAL_PREFIX = "publish-"
_JOURNAL_KEEP = 1000  # entries kept per target; older ones are dropped (the server or bundles hold the rest)
_VERIFY_THREADS = 8  # hashlib releases the GIL: a few threads hash several large blobs at once


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One publish (or rollback) as the local journal records it."""

    number: int  # 1, 2, ... per target: the "version" a target without versions is addressed by
    when: str  # ISO 8601 UTC
    who: str
    action: str  # "publish" or "rollback"
    view_id: str | None
    bundle_id: str | None
    profiles: tuple[str, ...]
    results: Mapping[str, Mapping[str, Any]]  # ecosystem -> PublishResult fields (or {"error": ...})
    ok: bool
    channel: str | None = None  # the channel whose snapshot was published (None: the current view)
    restores: int | None = None  # a rollback of the whole publish: the number of the entry it served again


def target_name_of(target: PublishTarget) -> str:
    return target.name or target.kind


# --- choosing and verifying the set -----------------------------------------------------------------------------


def current_view(store: Store) -> View:
    view = store.current_view()
    if view is None:
        raise UserError(
            f"{store.root}: nothing imported yet, so there is nothing to publish",
            hint="run `mirrorctl import BUNDLE` first",
        )
    return view


def select_artifacts(store: Store, view: View, profiles: Sequence[str] | None) -> list[Artifact]:
    """The view's artifacts, or only those the named profiles' locks list (the view records each lock blob)."""
    if not profiles:
        return list(view.artifacts)
    unknown = [p for p in profiles if p not in view.profiles]
    if unknown:
        raise UserError(
            f"view {view.view_id}: no profile {', '.join(repr(p) for p in unknown)} in what was imported "
            f"(profiles present: {', '.join(sorted(view.profiles)) or 'none'})",
            hint="name profiles of the imported bundle, or import a bundle that carries them",
        )
    wanted: set[tuple[str, str]] = set()
    for name in dict.fromkeys(profiles):
        sha = view.profiles[name]
        path = store.blob_path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"view {view.view_id}: the lock of profile {name!r} (blob {sha}) is missing from the store",
                hint="import the bundle again",
            ) from None
        if hashlib.sha256(data).hexdigest() != sha:
            raise IntegrityError(
                f"view {view.view_id}: the lock of profile {name!r} (blob {sha}) does not match its digest",
                hint="the store is damaged; import the bundle again",
            )
        where = f"{path} (lock of profile {name})"
        lock = parse_lock(data.decode("utf-8"), where, legacy_paths=store.legacy_paths(data))
        wanted.update((a.ecosystem, a.path) for a in lock.artifacts)
    return [a for a in view.artifacts if (a.ecosystem, a.path) in wanted]


async def verify_blobs(store: Store, artifacts: Sequence[Artifact], progress: Progress) -> None:
    """Size, then sha256, of every blob (artifact and companions); IntegrityError naming every bad one."""
    blobs = {sha: (size, name) for a in artifacts for sha, size, name in a.blobs()}
    task = progress.task("verify blobs before publishing", sum(s for s, _ in blobs.values()), unit="bytes")
    gate = asyncio.Semaphore(_VERIFY_THREADS)
    bad: list[str] = []

    async def one(sha: str, size: int, name: str) -> None:
        async with gate:
            problem = await asyncio.to_thread(store.verify_blob, sha, size)
        task.advance(size)
        if problem:
            bad.append(f"{name} (sha256 {sha}): {problem}")

    try:
        await asyncio.gather(*(one(sha, size, name) for sha, (size, name) in sorted(blobs.items())))
    finally:
        task.close()
    if bad:
        bad.sort()
        shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise IntegrityError(
            f"{store.root}: {len(bad)} blob(s) fail verification, nothing was published: {shown}",
            hint="the store is damaged: import the bundle again (it restores missing or damaged blobs), then publish",
        )


# --- the service ------------------------------------------------------------------------------------------------


async def publish(
    settings: Settings,
    store: Store,
    target: PublishTarget,
    profiles: Sequence[str] | None,
    progress: Progress,
    *,
    target_name: str | None = None,
    view: View | None = None,
    channel: str | None = None,
) -> list[PublishResult]:
    """Publish the current view, or ``view`` (a channel's snapshot, ``channel`` naming it for the record), or the
    named profiles of it, to ``target``; one result per ecosystem. The whole publish is one entry of the journal
    (one *publish event*, its number in every audit entry it makes): what each repository served afterwards,
    which ``rollback --publish N`` serves again together.

    Example: ``await publish(settings, store, target, ["web"], SILENT, view=channel_view(store, "prod"))``
    """
    name = target_name or target_name_of(target)
    if view is None:
        view = current_view(store)
    chosen = select_artifacts(store, view, profiles)
    by_eco: dict[str, list[Artifact]] = {}
    for art in chosen:
        by_eco.setdefault(art.ecosystem, []).append(art)
    skipped = sorted(set(by_eco) - set(target.ecosystems))
    if skipped:
        progress.note(
            f"target {name} ({target.kind}) cannot take {', '.join(skipped)}: "
            f"{sum(len(by_eco[e]) for e in skipped)} artifact(s) left out"
        )
    work = {eco: arts for eco, arts in sorted(by_eco.items()) if eco in target.ecosystems}
    if not work:
        raise UserError(
            f"view {view.view_id}: nothing {target.kind} target {name} can take "
            f"(ecosystems in the set: {', '.join(sorted(by_eco)) or 'none'}; "
            f"{target.kind} takes {', '.join(sorted(target.ecosystems))})",
            hint="publish profiles with artifacts of an ecosystem this target supports",
        )

    started = time.monotonic()
    try:
        await verify_blobs(store, [a for arts in work.values() for a in arts], progress)
    except MirrorctlError as exc:  # a damaged store refuses the publish: worth a line in the audit journal
        audit.record(
            store, "publish", progress, target=name, **{"view-id": view.view_id, "bundle-id": view.bundle_id},
            result="refused", error=exc.message,
        )
        raise
    progress.note(f"verified {sum(len(a) for a in work.values())} artifact(s) in {time.monotonic() - started:.1f}s")

    results: list[PublishResult] = []
    record: dict[str, Mapping[str, Any]] = {}
    entry: JournalEntry | None = None
    try:
        for eco, arts in work.items():
            t0 = time.monotonic()
            try:
                result = await target.publish(eco, arts, store, progress)
            except MirrorctlError as exc:
                record[eco] = {"error": exc.message, "artifacts": len(arts)}
                raise
            except BaseException as exc:  # interrupted (Ctrl-C, a closed output pipe): still journaled below
                record[eco] = {"error": f"interrupted ({type(exc).__name__})", "artifacts": len(arts)}
                raise
            if not result.seconds:
                result = _with_seconds(result, time.monotonic() - t0)
            results.append(result)
            record[eco] = {**_result_dict(result), "artifacts": len(arts)}
    finally:
        if record:
            entry = append_journal(
                store,
                name,
                action="publish",
                view=view,
                profiles=tuple(profiles or sorted(view.profiles)),
                results=record,
                ok=len(results) == len(work),
                channel=channel,
            )
        for eco, rec in record.items():  # one audit entry per ecosystem, each naming the publish event
            audit.record(
                store, "publish", progress,
                target=name, publish=entry.number if entry else None, ecosystem=eco,
                repository=rec.get("repository"), version=rec.get("version"), changed=rec.get("changed"),
                **{"view-id": view.view_id, "bundle-id": view.bundle_id, **({"channel": channel} if channel else {})},
                artifacts=rec.get("artifacts"),
                result="failed" if "error" in rec else "ok",
                **({"error": rec["error"]} if "error" in rec else {}),
            )
    return results


async def check_target(target: PublishTarget) -> TargetCheck:
    return await target.check()


async def history(
    store: Store, target: PublishTarget, ecosystem: str, *, target_name: str | None = None
) -> list[PublishedVersion]:
    """The server's versions (Pulp); for a target without versions (devpi), the local journal's publishes."""
    _check_ecosystem(target, ecosystem)
    versions = await target.history(ecosystem)
    if versions:
        return versions
    name = target_name or target_name_of(target)
    entries = [e for e in read_journal(store, name) if e.action == "publish" and ecosystem in e.results]
    out: list[PublishedVersion] = []
    for i, e in enumerate(entries):
        res = e.results[ecosystem]
        details = {"who": e.who, "view": e.view_id or "", "bundle": e.bundle_id or ""}
        details.update({k: str(res[k]) for k in ("uploaded", "present", "removed", "error") if k in res})
        out.append(
            PublishedVersion(
                ecosystem=ecosystem,
                repository=str(res.get("repository", "")),
                version=e.number,
                created=e.when,
                artifacts=int(res.get("artifacts", 0)),
                served=i == len(entries) - 1 and "error" not in res,
                details=details,
            )
        )
    return out


async def rollback(
    store: Store, target: PublishTarget, ecosystem: str, version: int, *, target_name: str | None = None
) -> PublishedVersion:
    """Serve an earlier version again where the target keeps versions; the journal records it."""
    _check_ecosystem(target, ecosystem)
    name = target_name or target_name_of(target)
    try:
        result = await target.rollback(ecosystem, version)
    except MirrorctlError as exc:
        audit.record(
            store, "rollback", SILENT, target=name, ecosystem=ecosystem, version=version,
            result="failed", error=exc.message,
        )
        raise
    audit.record(store, "rollback", SILENT, target=name, ecosystem=ecosystem, version=version, result="ok")
    append_journal(
        store,
        name,
        action="rollback",
        view=None,
        profiles=(),
        results={ecosystem: {"version": version, "repository": result.repository}},
        ok=True,
    )
    return result


def _check_ecosystem(target: PublishTarget, ecosystem: str) -> None:
    if ecosystem not in target.ecosystems:
        raise UserError(
            f"--ecosystem {ecosystem}: a {target.kind} target takes {', '.join(sorted(target.ecosystems))}",
        )


# --- the journal ------------------------------------------------------------------------------------------------


def _result_dict(result: PublishResult) -> dict[str, Any]:
    d = asdict(result)
    d["errors"] = list(result.errors)
    d["seconds"] = round(result.seconds, 3)
    return d


def _with_seconds(result: PublishResult, seconds: float) -> PublishResult:
    d = asdict(result)
    d["seconds"] = seconds
    d["errors"] = tuple(result.errors)
    return PublishResult(**d)


def _journal_state(target_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target_name)
    return JOURNAL_PREFIX + safe


def read_journal(store: Store, target_name: str) -> list[JournalEntry]:
    doc = store.read_state(_journal_state(target_name))
    out = []
    for e in doc.get("entries", []):
        out.append(
            JournalEntry(
                number=int(e["number"]),
                when=str(e["when"]),
                who=str(e["who"]),
                action=str(e["action"]),
                view_id=e.get("view-id"),
                bundle_id=e.get("bundle-id"),
                profiles=tuple(e.get("profiles", ())),
                results=dict(e.get("results", {})),
                ok=bool(e.get("ok", False)),
                channel=e.get("channel"),
                restores=int(e["restores"]) if e.get("restores") is not None else None,
            )
        )
    return out


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (some containers)
        return "unknown"


def append_journal(
    store: Store,
    target_name: str,
    *,
    action: str,
    view: View | None,
    profiles: tuple[str, ...],
    results: Mapping[str, Mapping[str, Any]],
    ok: bool,
    channel: str | None = None,
    restores: int | None = None,
) -> JournalEntry:
    """Add one entry; read-modify-write under the store's lock so two publishes cannot lose each other's."""
    state = _journal_state(target_name)
    with store.exclusive():
        doc = store.read_state(state)
        entries = list(doc.get("entries", []))
        number = int(entries[-1]["number"]) + 1 if entries else 1
        entry = JournalEntry(
            number=number,
            when=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            who=_who(),
            action=action,
            view_id=view.view_id if view else None,
            bundle_id=view.bundle_id if view else None,
            profiles=profiles,
            results=results,
            ok=ok,
            channel=channel,
            restores=restores,
        )
        entries.append(
            {
                "number": entry.number,
                "when": entry.when,
                "who": entry.who,
                "action": entry.action,
                "view-id": entry.view_id,
                "bundle-id": entry.bundle_id,
                "profiles": list(entry.profiles),
                "results": {k: dict(v) for k, v in results.items()},
                "ok": ok,
                **({"channel": channel} if channel else {}),
                **({"restores": restores} if restores is not None else {}),
            }
        )
        store.write_state(state, {"target": target_name, "entries": entries[-_JOURNAL_KEEP:]})
    return entry


__all__ = [
    "JournalEntry",
    "append_journal",
    "check_target",
    "history",
    "publish",
    "read_journal",
    "rollback",
    "select_artifacts",
    "verify_blobs",
]
