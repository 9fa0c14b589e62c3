"""Publish events: one ``mirrorctl publish`` (or ``rollback --publish``) across every repository it touched.

A target keeps versions per repository (Pulp: each repository has its own numbers), so "go back to the last good
publish" needs what mirrorctl recorded: each entry of the local publish journal (``state/publish-<target>.json``,
see publish.py) is one event, numbered 1, 2, ... per target, holding the version each repository served after it.
``history --to TARGET`` lists the events; ``rollback --to TARGET --publish N`` serves event N's versions again,
all of them together.

All-or-nothing as far as the server allows: no target switches several distributions in one transaction, so the
rollback first checks that every repository still holds its version (refused before anything moves otherwise),
then switches one repository after another; if one switch fails, those already switched are put back to the
versions they served before, and the error says so (or names each one that could not be put back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mirrorctl.errors import MirrorctlError, TargetError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.publish import JournalEntry, append_journal, read_journal, target_name_of
from mirrorctl.inside.store import Store
from mirrorctl.progress import Progress
from mirrorctl.targets.base import PublishTarget


@dataclass(frozen=True, slots=True)
class EventRepository:
    ecosystem: str
    repository: str
    version: int | None  # what the repository served after the event; None: the target keeps no versions
    error: str | None = None  # the publish of this repository failed


@dataclass(frozen=True, slots=True)
class PublishEvent:
    number: int
    when: str
    who: str
    action: str  # "publish", or "rollback" (of one repository, or of a whole event: ``restores``)
    channel: str | None
    view_id: str | None
    repositories: tuple[EventRepository, ...]
    ok: bool
    served: bool  # every repository serves this event's version now (versionless target: the last good publish)
    restores: int | None = None


@dataclass(frozen=True, slots=True)
class RestoredRepository:
    ecosystem: str
    repository: str
    version: int
    previous: int | None  # the version served before the rollback
    changed: bool  # False: it served this version already


def _repositories(entry: JournalEntry) -> tuple[EventRepository, ...]:
    out = []
    for eco, res in sorted(entry.results.items()):
        version = res.get("version")
        out.append(
            EventRepository(
                eco,
                str(res.get("repository", "")),
                int(version) if version is not None else None,
                str(res["error"]) if "error" in res else None,
            )
        )
    return tuple(out)


async def _served_versions(target: PublishTarget, ecosystems: set[str]) -> dict[str, int | None]:
    """ecosystem -> the version its repository serves now; absent where the target keeps no versions. A
    repository the server does not have (any more) counts as serving nothing."""
    served: dict[str, int | None] = {}
    for eco in sorted(ecosystems & set(target.ecosystems)):
        try:
            versions = await target.history(eco)
        except TargetError:
            served[eco] = None
            continue
        if versions:
            served[eco] = next((v.version for v in versions if v.served), None)
    return served


async def events(store: Store, target: PublishTarget, *, target_name: str | None = None) -> list[PublishEvent]:
    """Every recorded event of ``target``, oldest first, each marked whether it is what the target serves now."""
    entries = read_journal(store, target_name or target_name_of(target))
    if not entries:
        return []
    served = await _served_versions(target, {eco for e in entries for eco in e.results})
    last_good = max((e.number for e in entries if e.ok and e.action == "publish"), default=None)
    matching: dict[int, frozenset[str]] = {}  # event number -> the ecosystems it published
    for e in entries:
        repos = _repositories(e)
        if repos and all(r.ecosystem in served for r in repos):
            if e.ok and all(r.version is not None and served[r.ecosystem] == r.version for r in repos):
                matching[e.number] = frozenset(r.ecosystem for r in repos)
        elif e.number == last_good:  # the target keeps no versions: the journal is all there is
            matching[e.number] = frozenset()
    # several events can name the versions served now (a rollback restores an earlier event's, a publish with
    # nothing new repeats them): the one served now is the latest of them for its repositories, the one that
    # put them there; an earlier one whose repositories a later match also names is history
    now = {
        n
        for n, ecos in matching.items()
        if not any(later > n and (ecos & other or not ecos) for later, other in matching.items())
    }
    return [
        PublishEvent(
            e.number, e.when, e.who, e.action, e.channel, e.view_id, _repositories(e), e.ok, e.number in now, e.restores
        )
        for e in entries
    ]


async def _put_back(target: PublishTarget, moved: list[RestoredRepository]) -> tuple[str, dict[str, int | None]]:
    """Switch ``moved`` back to what each served before; (what that did, in words; ecosystem -> version of each
    repository that could not be put back)."""
    if not moved:
        return "nothing had been switched yet, nothing changed", {}
    restored: list[str] = []
    stuck: dict[str, int | None] = {}
    for d in moved:
        try:
            if d.previous is None:
                raise TargetError("it served no explicit version before")
            await target.rollback(d.ecosystem, d.previous)
            restored.append(f"{d.repository} ({d.ecosystem}) to version {d.previous}")
        except MirrorctlError as undo:
            stuck[d.ecosystem] = d.version
            restored.append(f"NOT {d.repository} ({d.ecosystem}), which serves version {d.version}: {undo.message}")
    if stuck:
        return f"put back {', '.join(restored)}", stuck
    return f"put back {', '.join(restored)}: nothing changed", {}


def _event_to_restore(entries: list[JournalEntry], number: int, name: str) -> JournalEntry:
    entry = next((e for e in entries if e.number == number), None)
    if entry is None:
        known = f"{entries[0].number}-{entries[-1].number}" if entries else "none yet"
        raise UserError(
            f"--publish {number}: target {name} has no publish event {number} (events: {known})",
            hint=f"`mirrorctl history --to {name}` lists them",
        )
    repos = _repositories(entry)
    failed = [f"{r.ecosystem}: {r.error}" for r in repos if r.error]
    if not entry.ok or failed or not repos:
        raise UserError(
            f"--publish {number}: publish event {number} of target {name} did not complete"
            + (f" ({'; '.join(failed)})" if failed else ""),
            hint=f"pick an event that completed (`mirrorctl history --to {name}`)",
        )
    if any(r.version is None for r in repos):
        raise UserError(
            f"--publish {number}: target {name} keeps no versions, so event {number} cannot be served again by "
            "switching back",
            hint="publish the earlier snapshot instead: `mirrorctl rollback --channel NAME`, then "
            f"`mirrorctl publish --channel NAME --to {name}`",
        )
    return entry


async def rollback_publish(
    store: Store, target: PublishTarget, number: int, progress: Progress, *, target_name: str | None = None
) -> list[RestoredRepository]:
    """Serve publish event ``number``'s version of every repository again, together (see the module text)."""
    name = target_name or target_name_of(target)
    entry = _event_to_restore(read_journal(store, name), number, name)  # usage errors: nothing asked, nothing logged
    repos = _repositories(entry)
    unsupported = sorted(r.ecosystem for r in repos if r.ecosystem not in target.ecosystems)
    if unsupported:
        raise UserError(
            f"--publish {number}: target {name} ({target.kind}) no longer takes {', '.join(unsupported)}",
            hint="check the target's repositories in mirrorctl.toml",
        )

    def fail(message: str, hint: str, switched: Mapping[str, int | None] | None = None) -> TargetError:
        audit.record(store, "rollback", progress, target=name, publish=number, result="failed", error=message)
        if switched:  # some repositories moved and could not be put back: the journal says what is served now
            append_journal(
                store, name, action="rollback", view=None, profiles=(), ok=False, restores=number,
                results={r.ecosystem: {"repository": r.repository, "version": switched[r.ecosystem]}
                         for r in repos if r.ecosystem in switched},
            )  # fmt: skip
        return TargetError(message, hint=hint)

    # 1. every repository still holds its version; what each serves now (to put it back on a failure)
    before: dict[str, int | None] = {}
    missing: list[str] = []
    for r in repos:
        try:
            versions = await target.history(r.ecosystem)
        except MirrorctlError as exc:
            raise fail(f"--publish {number}: {exc.message}; nothing was switched", exc.hint or "") from exc
        if not any(v.version == r.version for v in versions):
            missing.append(f"{r.repository} ({r.ecosystem}) has no version {r.version} any more")
        before[r.ecosystem] = next((v.version for v in versions if v.served), None)
    if missing:
        raise fail(
            f"--publish {number}: target {name}: {'; '.join(missing)}; nothing was switched",
            f"pick a later event (`mirrorctl history --to {name}`); a deleted version cannot be served again",
        )

    # 2. one repository after another; on a failure, put the switched ones back
    done: list[RestoredRepository] = []
    for r in repos:
        assert r.version is not None
        if before[r.ecosystem] == r.version:
            done.append(RestoredRepository(r.ecosystem, r.repository, r.version, r.version, False))
            continue
        try:
            await target.rollback(r.ecosystem, r.version)
        except MirrorctlError as exc:
            what, stuck = await _put_back(target, [d for d in done if d.changed])
            message = (
                f"--publish {number}: switching {r.repository} ({r.ecosystem}) to version {r.version} failed: "
                f"{exc.message}; {what}"
            )
            raise fail(message, exc.hint or "fix the cause and run the rollback again", stuck) from exc
        done.append(RestoredRepository(r.ecosystem, r.repository, r.version, before[r.ecosystem], True))
        progress.note(f"{r.repository} ({r.ecosystem}): now serves version {r.version}")

    results = {
        d.ecosystem: {"repository": d.repository, "version": d.version, "previous": d.previous, "changed": d.changed}
        for d in done
    }
    made = append_journal(
        store, name, action="rollback", view=None, profiles=(), results=results, ok=True, restores=number
    )
    audit.record(
        store, "rollback", progress, target=name, publish=number, entry=made.number, result="ok",
        repositories={d.ecosystem: {"repository": d.repository, "version": d.version, "previous": d.previous}
                      for d in done},
    )  # fmt: skip
    return done


__all__ = ["EventRepository", "PublishEvent", "RestoredRepository", "events", "rollback_publish"]
