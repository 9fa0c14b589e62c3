"""The ``mirrorctl`` command: global options, the one asyncio.run, and the one place errors become exits."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from mirrorctl.config import Settings, find_config_path, load_settings
from mirrorctl.errors import MirrorctlError
from mirrorctl.progress import Progress

from .render import err_console, make_progress

T = TypeVar("T")

app = typer.Typer(
    name="mirrorctl",
    help=(
        "Declarative, verifiable package mirrors for air-gapped developer workspaces.\n\n"
        "Outside: init -> lock -> snapshot -> bundle export. Inside: import -> serve -> workspace-config.\n\n"
        "Example: mirrorctl lock example && mirrorctl snapshot example && "
        "mirrorctl bundle export --out example.bundle example"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class Ctx:
    config: Path | None
    verbose: bool
    quiet: bool

    def settings(self) -> Settings:
        return run_sync(lambda: load_settings(find_config_path(self.config, os.environ, Path.cwd())), self)

    def progress(self) -> Progress:
        return make_progress(self.quiet)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="mirrorctl.toml to use (default: $MIRRORCTL_CONFIG, ./mirrorctl.toml)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for unexpected errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    ctx.obj = Ctx(config, verbose, quiet)


def fail(err: MirrorctlError) -> typer.Exit:
    err_console.print(f"error: {err.message}", style="bold red", markup=False, soft_wrap=True)
    if err.hint:
        err_console.print(f"hint: {err.hint}", markup=False, soft_wrap=True)
    return typer.Exit(err.exit_code)


def run_sync(fn: Callable[[], T], ctx: Ctx) -> T:
    try:
        return fn()
    except MirrorctlError as err:
        raise fail(err) from None


def run_async(make: Callable[[], Awaitable[T]], ctx: Ctx) -> T:
    """The CLI's one ``asyncio.run``: every command's service runs inside it; errors are converted here."""

    async def _main() -> T:
        return await make()

    try:
        return asyncio.run(_main())
    except MirrorctlError as err:
        raise fail(err) from None
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing half-written was left in place", markup=False)
        raise typer.Exit(130) from None
    except Exception as exc:  # an unexpected error: a bug, or an environment problem we did not foresee
        if ctx.verbose:
            raise
        err_console.print(f"error: unexpected {type(exc).__name__}: {exc}", style="bold red", markup=False)
        err_console.print("hint: run again with -v for the traceback, and report it", markup=False)
        raise typer.Exit(1) from None


def _register_commands() -> None:
    # Each command module adds its commands to ``app``; imported here so ``mirrorctl --help`` lists them.
    from . import cmd_bundle, cmd_import, cmd_init, cmd_key, cmd_lock, cmd_serve, cmd_snapshot, cmd_workspace

    for module in (cmd_init, cmd_lock, cmd_snapshot, cmd_key, cmd_bundle, cmd_import, cmd_serve, cmd_workspace):
        module.register(app)
    from . import cmd_publish, cmd_verify  # publish, targets check, history, rollback; verify

    cmd_publish.register(app)
    cmd_verify.register(app)
    from . import cmd_audit  # audit verify, audit show

    cmd_audit.register(app)
    from . import cmd_diff  # diff A B: review a change

    cmd_diff.register(app)
    from . import cmd_state  # state export: what the inside holds, for delta bundles

    cmd_state.register(app)
    from . import cmd_channel, cmd_gc, cmd_snapshots  # snapshots list/show/prune; promote, channels; gc

    for extra in (cmd_snapshots, cmd_channel, cmd_gc):
        extra.register(app)
    from . import cmd_archive_key  # archive-key generate/import/rotate/export/show: the apt signing key

    cmd_archive_key.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        # click uses exit code 2 for usage errors already; keep codes as they are.
        sys.exit(exc.code)
