"""``mirrorctl promote SNAPSHOT --channel NAME`` and ``mirrorctl channels list|history|remove``."""

from __future__ import annotations

from typing import Annotated

import typer

from mirrorctl.errors import MirrorctlError

from .app import Ctx, run_sync
from .render import Column, print_table

channels_app = typer.Typer(
    help=(
        "Channels (current, dev, staging, prod, ...): named pointers to snapshots, switched atomically by "
        "`mirrorctl promote` and `mirrorctl rollback --channel`.\n\nExample: mirrorctl channels list"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


def promote_cmd(
    ctx: typer.Context,
    snapshot: Annotated[
        str,
        typer.Argument(
            help="A snapshot id or unique prefix (see `mirrorctl snapshots list`), or channel:NAME (the snapshot "
            "channel NAME points at)."
        ),
    ],
    channel: Annotated[str, typer.Option("--channel", help="The channel to point at it.")],
    create: Annotated[
        bool, typer.Option("--create", help="Create the channel if it does not exist yet (refused otherwise).")
    ] = False,
) -> None:
    """Point a channel at a snapshot in one atomic switch; servers of that channel see it at the next request.

    Refuses an unknown snapshot, one with blobs missing from the store (naming them), or a channel that does
    not exist yet unless --create is given (a mistyped name is not created silently). The channel's previous
    snapshot is remembered: `mirrorctl rollback --channel NAME` goes back to it. Recorded in the audit journal.

    Example: mirrorctl promote 20261127T153000Z --channel prod

    Example: mirrorctl promote channel:staging --channel prod

    Example: mirrorctl promote 20261127T153000Z --channel staging --create   (a new channel)
    """
    from mirrorctl.inside import channels

    c: Ctx = ctx.obj
    store = c.store()
    done = run_sync(lambda: channels.promote(store, snapshot, channel, c.progress(), create=create), c)
    if not done.changed:
        typer.echo(f"channel {channel} already points at {done.view_id}; nothing changed")
    else:
        typer.echo(f"channel {channel}: now {done.view_id}" + (f" (was {done.previous})" if done.previous else ""))


@channels_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the channels as a table: the snapshot each points at, when that snapshot was made, its bundle's
sequence, and how many rollback steps the channel has.

    Example: mirrorctl channels list
    """
    from mirrorctl.inside import channels

    c: Ctx = ctx.obj
    store = c.store()
    targets = run_sync(lambda: channels.channel_targets(store), c)
    if not targets:
        typer.echo(f"no channels in {store.root} yet")
        return
    rows = []
    for name, view_id in sorted(targets.items()):
        try:
            view = store.load_view(view_id)
            created, sequence = view.created, view.sequence
        except (MirrorctlError, OSError, ValueError):
            created, sequence = "(snapshot unreadable)", None  # still list the channel: the pointer is the news
        rows.append([name, view_id, created, sequence, len(channels.history(store, name)["previous"])])
    print_table(
        [
            Column("channel"), Column("snapshot"), Column("created"), Column("sequence", right=True),
            Column("rollback steps", right=True),
        ],
        rows,
    )


@channels_app.command("history")
def history_cmd(
    ctx: typer.Context, channel: Annotated[str, typer.Argument(help="The channel, e.g. prod.")]
) -> None:
    """Every switch of a channel (import, promote, rollback): when, who, from which snapshot to which.

    Example: mirrorctl channels history prod
    """
    from mirrorctl.inside import channels

    c: Ctx = ctx.obj
    store = c.store()
    run_sync(lambda: channels.require_channel(store, channel), c)
    print_table(
        [Column("when"), Column("who"), Column("action"), Column("from"), Column("to")],
        [[e["when"], e["who"], e["action"], e.get("from"), e["to"]] for e in channels.history(store, channel)["log"]],
    )


@channels_app.command("remove")
def remove_cmd(
    ctx: typer.Context, channel: Annotated[str, typer.Argument(help="The channel to remove, e.g. staging.")]
) -> None:
    """Remove a channel and its rollback history; the snapshot it pointed at stays (see `mirrorctl gc`).

    Refuses `current` and a channel that does not exist (exit 2, nothing changed); stop a server that serves
    the channel first. Recorded in the audit journal.

    Example: mirrorctl channels remove prdo
    """
    from mirrorctl.inside import channels

    c: Ctx = ctx.obj
    store = c.store()
    view_id = run_sync(lambda: channels.remove(store, channel, c.progress()), c)
    typer.echo(f"channel {channel} removed (it pointed at {view_id}, which stays in the store)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("promote")(promote_cmd)
    app.add_typer(channels_app, name="channels")
