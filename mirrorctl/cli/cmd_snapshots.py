"""``mirrorctl snapshots list|show|prune``: the served snapshots (the views imports write) on the inside.

Not to be confused with ``mirrorctl snapshot`` (singular), which fetches what the locks name into the store
outside.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from mirrorctl.progress import human_size

from .app import Ctx, run_sync
from .render import Column, print_table

if TYPE_CHECKING:
    from mirrorctl.inside.store import View

snapshots_app = typer.Typer(
    help=(
        "Served snapshots: the immutable view each import creates, which channels point at. Not the same as "
        "`mirrorctl snapshot` (singular), which fetches locked artifacts into the store outside.\n\n"
        "Example: mirrorctl snapshots list"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


def view_bytes(view: View) -> int:
    """What a snapshot's files weigh, companions (e.g. PEP 658 metadata) included: what crossed the gap."""
    return sum(a.size + sum(c.size for c in a.companions) for a in view.artifacts)


def _channels_text(channels: tuple[str, ...], rollback_for: tuple[str, ...]) -> str:
    parts = list(channels) + [f"{c} (rollback)" for c in rollback_for if c not in channels]
    return ", ".join(parts) or "-"


@snapshots_app.command("list")
def list_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document instead of a table.")] = False,
) -> None:
    """List the snapshots, oldest first, as a table: id, created, bundle, sequence, profiles, artifacts, size
(their files with companions, e.g. 12 MB), channels.

    A channel marked "(rollback)" could go back to the snapshot with `mirrorctl rollback --channel`.

    Example: mirrorctl snapshots list
    """
    from mirrorctl.inside.channels import list_snapshots

    c: Ctx = ctx.obj
    store = c.store()
    infos = run_sync(lambda: list_snapshots(store), c)
    if as_json:
        doc = [
            {
                "id": i.view.view_id,
                "created": i.view.created,
                "bundle-id": i.view.bundle_id,
                "sequence": i.view.sequence,
                "profiles": sorted(i.view.profiles),
                "artifacts": len(i.view.artifacts),
                "bytes": view_bytes(i.view),
                "channels": list(i.channels),
                "rollback-for": list(i.rollback_for),
            }
            for i in infos
        ]
        typer.echo(json.dumps(doc, indent=1))
        return
    if not infos:
        typer.echo(f"no snapshots in {store.root} yet: `mirrorctl import BUNDLE` creates one")
        return
    print_table(
        [
            Column("id"), Column("created"), Column("bundle"), Column("sequence", right=True), Column("profiles"),
            Column("artifacts", right=True), Column("size", right=True), Column("channels"),
        ],
        [
            [
                i.view.view_id, i.view.created, i.view.bundle_id, i.view.sequence, ",".join(sorted(i.view.profiles)),
                len(i.view.artifacts), human_size(view_bytes(i.view)), _channels_text(i.channels, i.rollback_for),
            ]
            for i in infos
        ],
    )


@snapshots_app.command("show")
def show_cmd(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="A snapshot id, or a unique prefix of one.")],
) -> None:
    """Show one snapshot: where it came from, its profiles, its artifacts per ecosystem, its channels.

    Example: mirrorctl snapshots show 20261127T1530
    """
    from mirrorctl.inside.channels import missing_blobs, show_snapshot

    c: Ctx = ctx.obj
    store = c.store()
    info = run_sync(lambda: show_snapshot(store, snapshot), c)
    v = info.view
    typer.echo(f"snapshot  {v.view_id}")
    typer.echo(f"created   {v.created}")
    typer.echo(f"bundle    {v.bundle_id} (lineage {v.lineage}, sequence {v.sequence})")
    typer.echo(f"channels  {_channels_text(info.channels, info.rollback_for)}")
    for name, sha in sorted(v.profiles.items()):
        typer.echo(f"profile   {name} (lock sha256 {sha})")
    by_eco: dict[str, int] = {}
    for a in v.artifacts:
        by_eco[a.ecosystem] = by_eco.get(a.ecosystem, 0) + 1
    for eco, n in sorted(by_eco.items()):
        typer.echo(f"artifacts {eco}: {n}")
    missing = missing_blobs(store, v)
    typer.echo(f"blobs     {'all present' if not missing else f'{len(missing)} MISSING: ' + '; '.join(missing[:5])}")
    typer.echo(f"size      {human_size(view_bytes(v))}")
    for a in sorted(v.artifacts, key=lambda a: (a.ecosystem, a.name.lower(), a.version, a.filename)):
        typer.echo(f"  {a.ecosystem} {a.name} {a.version} {a.filename} {a.size}")


@snapshots_app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    keep: Annotated[int, typer.Option("--keep", min=0, help="How many of the most recent snapshots to keep.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
) -> None:
    """Remove snapshot folders older than the --keep most recent, except those a channel points at or could roll
    back to. Blobs are left; `mirrorctl gc` removes the ones nothing needs any more.

    Example: mirrorctl snapshots prune --keep 10 --dry-run
    """
    from mirrorctl.inside.gc import collect

    c: Ctx = ctx.obj
    store = c.store()
    report = run_sync(lambda: collect(store, keep=keep, dry_run=dry_run, blobs=False, progress=c.progress()), c)
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {len(report.snapshots_removed)} snapshot(s)"
        + (f": {', '.join(report.snapshots_removed)}" if report.snapshots_removed else "")
        + f"; kept {len(report.snapshots_kept)}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(snapshots_app, name="snapshots")
