"""``mirrorctl diff A B``: what a change adds, removes and upgrades, per ecosystem, for review."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .app import Ctx, run_sync


class DiffFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def diff_cmd(
    ctx: typer.Context,
    a: Annotated[
        str,
        typer.Argument(
            metavar="A",
            help="The old side: a *.lock, a *.bundle (or a chunked bundle's *.parts.json), view:<id>, "
            "channel:<name>, or current.",
        ),
    ],
    b: Annotated[str, typer.Argument(metavar="B", help="The new side, same kinds as A.")],
    fmt: Annotated[
        DiffFormat, typer.Option("--format", help="text (default), markdown (for a change ticket), or json.")
    ] = DiffFormat.text,
    from_dirs: Annotated[
        list[Path] | None,
        typer.Option("--from", help="A folder holding parts of a chunked bundle; repeatable, any order."),
    ] = None,
) -> None:
    """Show what changes from A to B per ecosystem: added, removed, upgraded, downgraded, with sizes.

    A bundle is read only after it verifies with the [trust] keys. A difference is not a failure (exit 0);
    a missing file, an unknown kind or a bundle that does not verify exits 2.

    Example: mirrorctl diff current /media/usb/web-2026-03-01.bundle --format markdown

    Example: mirrorctl diff channel:prod channel:staging
    """
    from mirrorctl.diff import RENDERERS, compute_diff, load_side

    obj: Ctx = ctx.obj

    def run() -> str:
        now = datetime.now(UTC)
        search = list(from_dirs or ())
        # The runtime reads mirrorctl.toml (once) only if a side needs it: a diff of two locks needs none.
        old = load_side(a, obj.runtime, now=now, search=search)
        new = load_side(b, obj.runtime, now=now, search=search)
        return RENDERERS[fmt.value](compute_diff(old, new, obj.runtime.ecosystems))

    typer.echo(run_sync(run, obj), nl=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("diff")(diff_cmd)
