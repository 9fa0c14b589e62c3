"""The ``mirrorctl`` command: global options, the one asyncio.run, and the one place errors become exits."""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import click
import typer

from mirrorctl import __version__
from mirrorctl.config import Settings
from mirrorctl.errors import MirrorctlError
from mirrorctl.progress import Progress
from mirrorctl.runtime import Runtime

from .render import err_console, make_progress, print_error, print_unexpected

if TYPE_CHECKING:
    from mirrorctl.ecosystems.base import Ecosystem
    from mirrorctl.inside.store import Store

T = TypeVar("T")

_app = typer.Typer(
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


@dataclass(frozen=True)
class Ctx:
    """The global options and the invocation's one :class:`Runtime` (built by the callback below). The methods
    hand out the runtime's parts, turning an error building one (no mirrorctl.toml, a bad field) into the
    CLI's message and exit code."""

    runtime: Runtime
    verbose: bool
    quiet: bool

    def settings(self) -> Settings:
        return run_sync(lambda: self.runtime.settings, self)

    def store(self) -> Store:
        return run_sync(lambda: self.runtime.store, self)

    def ecosystems(self) -> Mapping[str, Ecosystem]:
        return run_sync(lambda: self.runtime.ecosystems, self)

    def progress(self) -> Progress:
        return self.runtime.progress


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@_app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="mirrorctl.toml to use (default: $MIRRORCTL_CONFIG, ./mirrorctl.toml)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for unexpected errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    # Built once per invocation; its parts (settings, store, ecosystems) only when the command first uses them,
    # so `--help` and commands without a mirrorctl.toml never read one.
    ctx.obj = Ctx(Runtime(progress=make_progress(quiet), environ=os.environ, config_path=config), verbose, quiet)


def fail(err: MirrorctlError) -> typer.Exit:
    print_error(err)
    return typer.Exit(err.exit_code)


def run_sync(fn: Callable[[], T], ctx: Ctx) -> T:
    """A command's synchronous service call; errors are converted here, as :func:`run_async` does."""
    try:
        return fn()
    except MirrorctlError as err:
        raise fail(err) from None
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # the CLI's own exits (they are RuntimeErrors too)
    except Exception as exc:  # an unexpected error: one line and a hint, never a traceback (unless -v)
        if ctx.verbose:
            raise
        print_unexpected(exc)
        raise typer.Exit(1) from None


def run_async(make: Callable[[], Awaitable[T]], ctx: Ctx) -> T:
    """The CLI's one ``asyncio.run``: every command's service runs inside it; errors are converted here."""

    async def _main() -> T:
        return await make()

    try:
        return asyncio.run(_main())
    except MirrorctlError as err:
        raise fail(err) from None
    except KeyboardInterrupt:
        err_console().print("interrupted; nothing half-written was left in place", markup=False)
        raise typer.Exit(130) from None
    except Exception as exc:  # an unexpected error: a bug, or an environment problem we did not foresee
        if ctx.verbose:
            raise
        print_unexpected(exc)
        raise typer.Exit(1) from None


# Which module adds each command or command group, in the order `mirrorctl --help` lists them.
COMMAND_MODULES: dict[str, str] = {
    "init": "cmd_init",
    "lock": "cmd_lock",
    "snapshot": "cmd_snapshot",
    "key": "cmd_key",
    "bundle": "cmd_bundle",
    "import": "cmd_import",
    "serve": "cmd_serve",
    "workspace-config": "cmd_workspace",
    "publish": "cmd_publish",  # publish, history, rollback; the targets group
    "history": "cmd_publish",
    "rollback": "cmd_publish",
    "targets": "cmd_publish",
    "verify": "cmd_verify",
    "audit": "cmd_audit",
    "diff": "cmd_diff",
    "state": "cmd_state",
    "snapshots": "cmd_snapshots",
    "promote": "cmd_channel",  # promote; the channels group
    "channels": "cmd_channel",
    "gc": "cmd_gc",
}
# Adds the command groups the installed ecosystems contribute (apt: archive-key), after the core's.
ECOSYSTEM_COMMANDS = "cmd_ecosystems"
_registered: set[str] = set()


def register_commands(only: str | None = None) -> typer.Typer:
    """Add the commands to the app: all of them, or (``only``, a command name) just the module that adds it,
    so that running one command neither imports nor builds the other thirty (about 0.1 s of start-up). A name
    the core does not have is looked for among the ecosystems' commands first."""
    if only in COMMAND_MODULES:
        _register(COMMAND_MODULES[only])
        return _app
    plugins = importlib.import_module(f"{__package__}.{ECOSYSTEM_COMMANDS}")
    if only is not None and only in plugins.contributed_names():
        plugins.register(_app, only)
        return _app
    for name in dict.fromkeys(COMMAND_MODULES.values()):
        _register(name)
    if ECOSYSTEM_COMMANDS not in _registered:
        _registered.add(ECOSYSTEM_COMMANDS)
        plugins.register(_app, None)
    return _app


def _register(module: str) -> None:
    if module not in _registered:
        _registered.add(module)
        importlib.import_module(f"{__package__}.{module}").register(_app)


def invoked_command(argv: Sequence[str]) -> str | None:
    """The command name in ``argv`` (after the global options), or None (no command, --help, or unsure)."""
    args = iter(argv)
    for arg in args:
        if arg in ("--config", "-c"):
            next(args, None)  # its value
        elif arg == "--" or not arg.startswith("-"):
            return arg if arg != "--" else None
    return None


def __getattr__(name: str) -> typer.Typer:
    # ``app``, with every command (tests and tools use it this way); main() registers only what it runs.
    if name == "app":
        return register_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    argv = sys.argv[1:]
    if "--version" in argv[: argv.index("--") if "--" in argv else len(argv)] and invoked_command(argv) is None:
        # Answered before any command module is imported: a version check costs the interpreter's start only.
        print(__version__)
        sys.exit(0)
    command = register_commands(invoked_command(argv))
    # What start-up allocated (modules, classes, the command tree) lives until exit: frozen, no collection
    # walks it again. A lock allocates a few hundred thousand small objects (page records, versions, tags):
    # with the default threshold (700) collections took about 0.2 s of a 2.5 s lock. Cycles are still
    # collected, in bigger batches.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        command()
        code: str | int | None = 0
    except SystemExit as exc:
        # click uses exit code 2 for usage errors already; keep codes as they are.
        code = exc.code
    # Frozen again, so the interpreter's finalization does not walk the whole heap (another 0.2 s).
    gc.freeze()
    sys.exit(code)
