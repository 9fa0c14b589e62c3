"""The command groups ecosystems contribute (apt: ``archive-key``), made into typer commands here. An ecosystem
package registers each group, described as data (mirrorctl/ecosystems/commands.py), as an entry point of
``mirrorctl.commands.v1`` named like the group; so the CLI finds the names without loading any adapter, runs
one group loading only that group's module, and no ecosystem imports the CLI framework."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Annotated, Any

import typer

from mirrorctl.ecosystems.commands import (
    COMMAND_GROUP,
    Command,
    CommandArgs,
    CommandContext,
    CommandGroup,
    Journal,
    Param,
    Value,
)
from mirrorctl.errors import MirrorctlError, UserError

from .app import Ctx, fail, run_sync


def contributed_names() -> list[str]:
    """The group names registered in ``mirrorctl.commands.v1`` (nothing loaded)."""
    return sorted({ep.name for ep in entry_points(group=COMMAND_GROUP)})


def contributed_groups(taken: set[str], only: str | None = None) -> list[CommandGroup]:
    """Every registered group (or just ``only``), by name; refuses a name the core has, a name registered
    twice, and an entry point whose group calls itself otherwise."""
    groups: dict[str, CommandGroup] = {}
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        if only is not None and ep.name != only:
            continue
        if ep.name in taken or ep.name in groups:
            other = "mirrorctl itself" if ep.name in taken else "another plugin"
            raise UserError(
                f"the command plugin {ep.value} adds {ep.name!r}, which {other} already has",
                hint="uninstall one of the two plugins, or report it to their authors",
            )
        group = ep.load()
        if not isinstance(group, CommandGroup) or group.name != ep.name:
            raise UserError(f"the command plugin {ep.value} is not a CommandGroup named {ep.name!r}")
        groups[ep.name] = group
    return list(groups.values())


def _parameter(p: Param) -> inspect.Parameter:
    info: Any
    if p.argument:
        info = typer.Argument(help=p.help, show_default=False)
    else:
        info = typer.Option(p.option, *([p.short] if p.short else []), help=p.help)
    optional = not p.required and p.default is None
    annotation: Any = (p.type | None) if optional else p.type
    default = inspect.Parameter.empty if p.required else p.default
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(p.name, kind, default=default, annotation=Annotated[annotation, info])


def _callback(command: Command) -> Callable[..., None]:
    def callback(ctx: typer.Context, **values: Value) -> None:
        c: Ctx = ctx.obj
        lines = run_sync(lambda: command.run(CommandContext(c.settings, _journal(c)), CommandArgs(values)), c)
        for line in lines:
            typer.echo(line)

    # typer reads a command's options from its signature: declare the params there.
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    callback.__signature__ = inspect.Signature(params + [_parameter(p) for p in command.params])  # type: ignore[attr-defined]
    callback.__doc__ = command.help
    return callback


def _journal(c: Ctx) -> Journal:
    """The store's audit journal, opened when a command first records (``--help`` and refusals of arguments
    open no store)."""

    def journal(event: str, /, **fields: object) -> None:
        from mirrorctl.inside import audit

        audit.record(c.store(), event, c.progress(), **fields)

    return journal


def group_app(group: CommandGroup) -> typer.Typer:
    sub = typer.Typer(help=group.help, no_args_is_help=True)
    for command in group.commands:
        sub.command(command.name, help=command.help)(_callback(command))
    return sub


_added: set[str] = set()  # groups already on the app (one group alone first, then all of them)


def register(app: typer.Typer, only: str | None = None) -> None:
    """Add the contributed command groups (or just ``only``) to the app; a bad plugin is reported as any
    error is, before the command line is parsed."""
    from .app import COMMAND_MODULES

    try:
        for group in contributed_groups(set(COMMAND_MODULES), only):
            if group.name not in _added:
                _added.add(group.name)
                app.add_typer(group_app(group), name=group.name)
    except MirrorctlError as err:
        raise SystemExit(fail(err).exit_code) from None
