"""`mirrorctl import FILE`: verify a bundle completely and serve it, or change nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import Ctx, run_sync
from .render import err_console

if TYPE_CHECKING:
    from mirrorctl.crossing.bundle.importer import ImportReport


def import_cmd(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="The bundle file (it is only read, never changed).")],
    allow_rollback: Annotated[
        bool,
        typer.Option("--allow-rollback", help="Accept a bundle older than the newest imported one (logged)."),
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="With the bundle being served: replace stored blobs that fail `mirrorctl verify` with its bytes.",
        ),
    ] = False,
    accept_expired_until: Annotated[
        str | None,
        typer.Option(
            "--accept-expired-until",
            metavar="TIME",
            help="Accept an expired bundle while the local clock is before TIME (UTC, 2026-03-05T00:00:00Z); "
            "printed and written to the audit journal.",
        ),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            help="Point this channel at the new snapshot instead of current; repeatable. Only the channels named "
            "move, never current, so an import to staging leaves the plain layout as it is. Example: --channel "
            "staging",
        ),
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the --channel channels that do not exist yet (refused otherwise).")
    ] = False,
    from_dirs: Annotated[
        list[Path] | None,
        typer.Option("--from", help="A folder holding parts of a chunked bundle; repeatable, any order."),
    ] = None,
) -> None:
    """Import a signed bundle: signature, every byte and every name checked; all or nothing.

    Needs [trust] keys in mirrorctl.toml. The same bundle again is a no-op; an older one is refused.

    Example: mirrorctl import /media/usb/web-2026-03-01.bundle

    Example: mirrorctl import --accept-expired-until 2026-03-05T18:00:00Z /media/usb/web.bundle   (clock drift)

    Example: mirrorctl import /media/a/web.bundle.parts.json --from /media/b   (a chunked bundle)
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    progress = obj.progress()

    def run() -> ImportReport:
        from mirrorctl.crossing.bundle.chunks import resolve_bundle
        from mirrorctl.crossing.bundle.importer import import_bundle
        from mirrorctl.crossing.signing import load_trusted_keys
        from mirrorctl.crossing.trust import parse_time
        from mirrorctl.inside.filetree import tree_writer

        until = parse_time(accept_expired_until, "--accept-expired-until") if accept_expired_until else None
        keys = load_trusted_keys(settings.trusted_keys, config=settings.config_path)
        return import_bundle(
            resolve_bundle(bundle, list(from_dirs or ()), progress=progress),  # parts: located and checked
            obj.runtime.store,
            keys,
            obj.runtime.ecosystems,
            now=datetime.now(UTC),
            allow_rollback=allow_rollback,
            accept_expired_until=until,
            repair=repair,
            progress=progress,
            channels=tuple(channel or ()),
            create_channels=create,
            view_files=tree_writer(obj.runtime.store, obj.runtime.ecosystems),
        )

    report = run_sync(run, obj)
    for warning in report.warnings:  # expiry overridden, key rotated or revoked: never quietly
        err_console().print(f"WARNING: {warning}", style="bold yellow", markup=False, soft_wrap=True)
    if repair:
        typer.echo(f"repaired {report.new_blobs} blob(s) from bundle {report.bundle_id}; the served view is unchanged")
        from mirrorctl.inside.filetree import repair_trees

        rebuilt = run_sync(lambda: repair_trees(obj.runtime.store, obj.runtime.ecosystems), obj)
        if rebuilt:
            typer.echo(f"rebuilt the file tree of {len(rebuilt)} snapshot(s) from the mended blobs")
        return
    from mirrorctl.inside.channels import plain_channel
    from mirrorctl.inside.store import CURRENT

    plain = plain_channel((), settings.serve_default_channel)
    moved = list(dict.fromkeys(channel or ())) or [CURRENT]
    if report.noop:
        same = (
            f"bundle {report.bundle_id} is sequence {report.sequence} of lineage {report.lineage} again (issued as "
            f"bundle {report.issue or report.bundle_id}), already served from bundle {report.served_as}"
            if report.served_as is not None
            else f"bundle {report.bundle_id} is already served"
        )
        typer.echo(
            f"{same}; nothing changed"
            + (f" but channel(s) {', '.join(channel)} now point at it" if channel else "")
        )
        warn_serve_problems(obj, obj.runtime.store.channel_view_id(moved[0]))
        return
    if moved == [CURRENT]:
        where = f"serving view {report.view_id}"
    else:
        where = f"snapshot {report.view_id}" + "".join(f"; channel {name} -> {report.view_id}" for name in moved)
    typer.echo(
        f"imported bundle {report.bundle_id} (lineage {report.lineage}, sequence {report.sequence}"
        + (", ROLLBACK" if report.rollback else "")
        + f"): profiles {', '.join(report.profiles)}; {report.artifacts} artifacts, "
        f"{report.new_blobs} new blobs ({report.new_bytes} bytes); {where}"
    )
    if plain not in moved:  # say what the plain layout serves, so nobody expects the import to be live there
        typer.echo(
            f"the plain layout (/<ecosystem>/) still serves channel {plain}"
            + (" ([serve] default-channel)" if plain != CURRENT else "")
            + f"; to serve this snapshot there: mirrorctl promote {report.view_id} --channel {plain}"
        )
    warn_serve_problems(obj, report.view_id)


def warn_serve_problems(obj: Ctx, view_id: str | None) -> None:
    """What keeps clients from using the snapshot once served (apt without an archive key), as a WARNING with
    the command that fixes it. The import stands: the fix (a key) is on this host, not in the bundle."""
    if view_id is None:
        return
    from mirrorctl.inside.health import snapshot_problems

    settings = obj.settings()
    problems = run_sync(
        lambda: snapshot_problems(obj.runtime.store, view_id, obj.runtime.ecosystems, settings.serve_options), obj
    )
    for problem in problems:
        err_console().print(
            f"WARNING: {problem.line(obj.runtime.config_path)}", style="bold yellow", markup=False, soft_wrap=True
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("import")(import_cmd)
