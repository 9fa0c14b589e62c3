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
            "channel:<name>, current, a folder of locks, or a git revision (git:REV forces it). Alone: a "
            "revision (compared with the working tree's locks), A..B or A...B.",
        ),
    ],
    b: Annotated[
        str | None,
        typer.Argument(metavar="[B]", help="The new side, same kinds as A (a set with a set: folders, revisions)."),
    ] = None,
    fmt: Annotated[
        DiffFormat,
        typer.Option("--format", help="text (default), markdown (for a change ticket or a PR body), or json."),
    ] = DiffFormat.text,
    from_dirs: Annotated[
        list[Path] | None,
        typer.Option("--from", help="A folder holding parts of a chunked bundle; repeatable, any order."),
    ] = None,
) -> None:
    """Show what changes from A to B per ecosystem: added, removed, upgraded, downgraded, with sizes.

    Sets of locks are compared per profile: every *.lock of the locks folder ([profiles] dir), at a git
    revision (read with git, nothing changed) or in a folder. How an argument is read, first match wins:
    current/view:/channel:, git:REV, A..B or A...B (alone), an existing folder or file, a *.lock/*.bundle name,
    a git revision. A folder whose name is also a revision is refused: say ./NAME or git:NAME.

    A bundle is read only after it verifies with the [trust] keys; its changes (and a view's) name the
    profiles and targets they are for. A difference is not a failure (exit 0); a missing file, an unknown
    kind, a bad revision or a bundle that does not verify exits 2.

    Example: mirrorctl diff main --format markdown   (every profile's lock against main's: a PR body)

    Example: mirrorctl diff v1.4..v1.5

    Example: mirrorctl diff current /media/usb/web-2026-03-01.bundle --format markdown

    Example: mirrorctl diff channel:prod channel:staging
    """
    from mirrorctl.diff import RENDERERS, compute_diff, load_side
    from mirrorctl.diffsets import SET_RENDERERS, compute_set_diff, load_sets

    obj: Ctx = ctx.obj

    def run() -> str:
        rt = obj.runtime
        # The locks folder comes from mirrorctl.toml only when a side is a revision or a folder of the tree.
        sets = load_sets(a, b, rt.cwd, lambda: rt.settings.profiles_dir, legacy_paths=rt.ecosystems)
        if sets is not None:
            return SET_RENDERERS[fmt.value](compute_set_diff(*sets, rt.ecosystems))
        assert b is not None
        now = datetime.now(UTC)
        search = list(from_dirs or ())
        # The runtime reads mirrorctl.toml (once) only if a side needs it: a diff of two locks needs none.
        old = load_side(a, rt, now=now, search=search)
        new = load_side(b, rt, now=now, search=search)
        return RENDERERS[fmt.value](compute_diff(old, new, rt.ecosystems))

    typer.echo(run_sync(run, obj), nl=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("diff")(diff_cmd)
