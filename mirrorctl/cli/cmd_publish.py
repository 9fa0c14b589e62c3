"""``mirrorctl publish``, ``targets check``, ``history`` and ``rollback``: the internal mirrors (Pulp, devpi)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from mirrorctl.config import Settings
from mirrorctl.errors import UserError
from mirrorctl.inside import publish as service
from mirrorctl.inside import publish_events
from mirrorctl.inside.publish_events import PublishEvent
from mirrorctl.progress import Progress
from mirrorctl.runtime import Runtime
from mirrorctl.targets.base import PublishedVersion, PublishResult, PublishTarget, TargetCheck, make_target

from .app import Ctx, fail, run_async, run_sync
from .render import Column, print_table

T = TypeVar("T")

targets_app = typer.Typer(
    help="Publish targets declared in mirrorctl.toml ([targets.NAME]).\n\nExample: mirrorctl targets check devpi",
    no_args_is_help=True,
)

ToOption = Annotated[str, typer.Option("--to", help="The target: a [targets.NAME] table of mirrorctl.toml.")]
EcosystemOption = Annotated[
    str | None,
    typer.Option("--ecosystem", "-e", help="Which ecosystem's repository (default: the target's only one)."),
]


def target_ecosystem(settings: Settings, target: str, ecosystem: str | None) -> str:
    """``--ecosystem``, or the one ecosystem the target's ``repositories`` name; refused when that is ambiguous."""
    if ecosystem is not None:
        return ecosystem
    named = sorted(settings.target(target).repositories)
    if len(named) == 1:
        return named[0]
    raise UserError(
        f"--to {target}: which ecosystem? targets.{target}.repositories names "
        f"{', '.join(named) if named else 'none'}",
        hint="give --ecosystem NAME",
    )


def with_target(
    runtime: Runtime, name: str, work: Callable[[PublishTarget], Awaitable[T]]
) -> Callable[[], Awaitable[T]]:
    """The coroutine factory for run_async: one HTTP client (closed afterwards) and the target built on it."""

    async def go() -> T:
        target_settings = runtime.settings.target(name)  # inside run_async: an unknown name is a UserError exit
        async with runtime.client() as client:
            return await work(make_target(target_settings, client, runtime.environ, ecosystems=runtime.ecosystems))

    return go


RESULT_COLUMNS = (
    Column("ecosystem"), Column("repository"), Column("result"), Column("uploaded", right=True),
    Column("present", right=True), Column("removed", right=True), Column("version", right=True),
    Column("took", right=True), Column("clients use"),
)


def result_row(r: PublishResult) -> list[object]:
    """One publish result as a row of RESULT_COLUMNS ("present": files the server already had)."""
    return [
        r.ecosystem, r.repository, "changed" if r.changed else "unchanged", r.uploaded, r.present, r.removed,
        r.version, f"{r.seconds:.1f}s", r.endpoint,
    ]


def publish_cmd(
    ctx: typer.Context,
    to: ToOption,
    profiles: Annotated[
        list[str] | None, typer.Argument(help="Profiles of the imported view to publish (default: all).")
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(
            "--channel",
            help="Publish the snapshot this channel points at (default: what the plain layout serves: the channel"
            " [serve] default-channel names, else the current view).",
        ),
    ] = None,
) -> None:
    """Publish what the store serves (its current view, a channel's snapshot, or the named profiles of it)
    into a target.

    Every blob is verified first; one bad blob and nothing is sent. Idempotent: publishing the same content
    again sends nothing. Each publish is recorded in the store's journal as one numbered publish event across
    every repository it touched (see `mirrorctl history --to TARGET`; `mirrorctl rollback --to TARGET --publish N`
    serves an earlier one again).

    Example: mirrorctl publish --to devpi web data-science

    Example: mirrorctl publish --channel prod --to pulp
    """
    c: Ctx = ctx.obj
    settings = c.settings()
    store = c.store()
    progress: Progress = c.progress()
    view = None
    # what a workspace on the plain layout gets is what a publish without --channel sends, so that moving to
    # channels with a default channel changes neither
    channel = channel if channel is not None else settings.serve_default_channel
    if channel is not None:
        from mirrorctl.inside.channels import channel_view

        name = channel
        view = run_sync(lambda: channel_view(store, name), c)
    results = run_async(
        with_target(
            c.runtime,
            to,
            lambda t: service.publish(
                settings, store, t, profiles or None, progress, target_name=to, view=view, channel=channel
            ),
        ),
        c,
    )
    print_table(RESULT_COLUMNS, [result_row(r) for r in results])


def check_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The target: a [targets.NAME] table of mirrorctl.toml.")],
) -> None:
    """Say whether a target is reachable, its credentials work and the plugins it needs are there.

    Exits 1 when anything is wrong. A warning (exit 0) names a setting that works but breaks a promise of
    mirrorctl's: on Pulp, DISTRIBUTED_PUBLICATION_RETENTION_PERIOD not 0 (removed packages stay served).

    Example: mirrorctl targets check pulp
    """
    c: Ctx = ctx.obj
    settings = c.settings()
    result: TargetCheck = run_async(with_target(c.runtime, name, service.check_target), c)
    kind = settings.target(name).kind
    typer.echo(f"target {name} ({kind}) at {settings.target(name).url}")
    typer.echo(f"  reachable      {'yes' if result.reachable else 'NO'}")
    typer.echo(f"  credentials    {'ok' if result.authenticated else 'NOT OK'}")
    typer.echo(f"  server         {result.server_version or 'unknown'}")
    for plugin, version in sorted(result.plugins.items()):
        typer.echo(f"  plugin         {plugin} {version}")
    for problem in result.problems:
        typer.echo(f"  problem        {problem}")
    for warning in result.warnings:
        typer.echo(f"  warning        {warning}")
    typer.echo("ok" if result.ok else "NOT OK")
    if not result.ok:
        raise typer.Exit(1)


# Details a target keeps for its own use (Pulp's API address of the version, which rollback reads): data, not
# something a person reviewing the history acts on.
_HIDDEN_DETAILS = frozenset({"href"})
_DETAIL_ORDER = ("added", "removed", "uploaded", "present", "view", "bundle", "who", "error")


def print_versions(versions: list[PublishedVersion]) -> None:
    """The versions as a table: `*` marks the served one; the details any version has become columns."""
    keys = {k for v in versions for k, val in v.details.items() if val and k not in _HIDDEN_DETAILS}
    extra = [k for k in _DETAIL_ORDER if k in keys] + sorted(keys - set(_DETAIL_ORDER))
    numeric = {"added", "removed", "uploaded", "present"}
    print_table(
        [
            Column(""), Column("version", right=True), Column("created"), Column("repository"),
            Column("artifacts", right=True), *(Column(k, right=k in numeric) for k in extra),
        ],
        [
            ["*" if v.served else " ", v.version, v.created, v.repository, v.artifacts,
             *(v.details.get(k) for k in extra)]
            for v in versions
        ],
    )


EVENT_COLUMNS = (
    Column(""), Column("publish", right=True), Column("when"), Column("what"), Column("from"), Column("snapshot"),
    Column("repositories (version)"),
)


def event_rows(events: list[PublishEvent]) -> list[list[object]]:
    """The publish events as rows of EVENT_COLUMNS: `*` on the one served now."""
    rows: list[list[object]] = []
    for e in events:
        what = e.action if e.restores is None else f"rollback to {e.restores}"
        if not e.ok:
            what += " (FAILED)"
        source = f"channel {e.channel}" if e.channel else "current" if e.view_id else "-"  # a rollback: none
        repos = ", ".join(
            f"{r.ecosystem} {r.repository}" + (f" v{r.version}" if r.version is not None else "")
            + (" FAILED" if r.error else "")
            for r in e.repositories
        )  # fmt: skip
        rows.append(["*" if e.served else " ", e.number, e.when, what, source, e.view_id, repos])
    return rows


def history_cmd(ctx: typer.Context, to: ToOption, ecosystem: EcosystemOption = None) -> None:
    """List the publish events of a target: each publish (and rollback) across every repository it touched, with
    the version each repository served after it; `*` marks the event served now. `rollback --to TARGET --publish
    N` serves event N again.

    With --ecosystem: that one repository's own versions instead (Pulp; for experts: `rollback --to TARGET
    --ecosystem ECO --version N`). devpi keeps no versions: its events are the local publish journal.

    Example: mirrorctl history --to pulp

    Example: mirrorctl history --to pulp --ecosystem npm
    """
    c: Ctx = ctx.obj
    store = c.store()
    if ecosystem is None:
        found = run_async(with_target(c.runtime, to, lambda t: publish_events.events(store, t, target_name=to)), c)
        if not found:
            typer.echo(f"nothing published to {to} yet")
            return
        print_table(EVENT_COLUMNS, event_rows(found))
        return
    eco = ecosystem
    versions = run_async(with_target(c.runtime, to, lambda t: service.history(store, t, eco, target_name=to)), c)
    if not versions:
        typer.echo(f"nothing published to {to} for {eco} yet")
        return
    print_versions(versions)


def rollback_cmd(
    ctx: typer.Context,
    to: Annotated[
        str | None, typer.Option("--to", help="A target: a [targets.NAME] table of mirrorctl.toml (needs --version).")
    ] = None,
    publish: Annotated[
        int | None,
        typer.Option(
            "--publish",
            help="With --to: serve publish event N again, every repository it touched together (see `history --to"
            " TARGET`). Example: mirrorctl rollback --to pulp --publish 3",
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            help="With --to: one repository's own version to serve again (see `history --to TARGET -e ECO`; give -e"
            " when the target has several). Example: mirrorctl rollback --to pulp -e npm --version 4",
        ),
    ] = None,
    ecosystem: EcosystemOption = None,
    channel: Annotated[
        str | None,
        typer.Option("--channel", help="Instead of --to: point this channel back at its previous snapshot."),
    ] = None,
) -> None:
    """Serve something earlier again: a target's earlier publish (--to), or a channel's previous snapshot
    (--channel). Give exactly one of the two.

    --to TARGET --publish N: every repository publish event N touched serves the version it served after N
    again. Checked first (each version must still exist), then switched one repository after another; if one
    switch fails, those already switched are put back and nothing changed. --to TARGET -e ECO --version N: one
    repository only (for experts). devpi keeps no versions and refuses (publish the earlier snapshot instead).

    --channel: the channel points at the snapshot it pointed at before its last promote (or import, for
    current), in one atomic switch; nothing is deleted and the newer snapshot stays listed.

    Example: mirrorctl rollback --to pulp --publish 3

    Example: mirrorctl rollback --to pulp --ecosystem npm --version 4

    Example: mirrorctl rollback --channel prod
    """
    c: Ctx = ctx.obj
    if (to is None) == (channel is None):
        raise fail(
            UserError("rollback: give exactly one of --to TARGET (with --publish or --version) and --channel NAME")
        )
    store = c.store()
    if channel is not None:
        if version is not None or publish is not None:
            raise fail(
                UserError(
                    "rollback --channel: --publish and --version are for --to TARGET; a channel goes back one step"
                )
            )
        from mirrorctl.inside import channels

        name = channel
        done = run_sync(lambda: channels.rollback(store, name, c.progress()), c)
        typer.echo(f"channel {name}: now {done.view_id} (was {done.previous}); nothing was deleted")
        return
    assert to is not None
    if publish is not None:
        if version is not None or ecosystem is not None:
            raise fail(
                UserError(
                    "rollback --to: --publish N restores every repository of publish event N; --version and "
                    "--ecosystem are the one-repository form instead",
                    hint="give either --publish N, or --ecosystem ECO --version N",
                )
            )
        event, target_name = publish, to
        restored = run_async(
            with_target(
                c.runtime,
                target_name,
                lambda t: publish_events.rollback_publish(store, t, event, c.progress(), target_name=target_name),
            ),
            c,
        )
        for d in restored:
            was = "already served it" if not d.changed else f"was version {d.previous}"
            typer.echo(f"{to}: {d.ecosystem} {d.repository} serves version {d.version} ({was})")
        typer.echo(f"{to}: publish event {publish} is served again")
        return
    if version is None:
        raise fail(
            UserError(
                "rollback --to: give --publish N (see `mirrorctl history --to TARGET`) or --ecosystem ECO --version N"
            )
        )
    target_name, number = to, version
    eco = run_sync(lambda: target_ecosystem(c.runtime.settings, target_name, ecosystem), c)
    v = run_async(
        with_target(
            c.runtime, target_name, lambda t: service.rollback(store, t, eco, number, target_name=target_name)
        ),
        c,
    )
    typer.echo(f"{to}: {v.ecosystem} {v.repository} now serves version {v.version} ({v.artifacts} artifacts)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("publish")(publish_cmd)
    app.command("history")(history_cmd)
    app.command("rollback")(rollback_cmd)
    targets_app.command("check")(check_cmd)
    app.add_typer(targets_app, name="targets")
