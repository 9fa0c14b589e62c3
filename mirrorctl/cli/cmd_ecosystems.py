"""The command groups ecosystems contribute (``Ecosystem.cli_commands``, e.g. apt's ``archive-key``), made into
typer commands here: the adapters describe them as data (mirrorctl/ecosystems/commands.py) and never import
the CLI framework."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from mirrorctl.ecosystems.base import Ecosystem, load_ecosystems
from mirrorctl.ecosystems.commands import Command, CommandArgs, CommandContext, CommandGroup, Param, Value
from mirrorctl.errors import UserError

from .app import Ctx, run_sync


def ecosystem_groups(ecosystems: Mapping[str, Ecosystem], taken: set[str]) -> list[CommandGroup]:
    """Every contributed group, in ecosystem order; refuses a name the core or another ecosystem uses."""
    groups: list[CommandGroup] = []
    owner: dict[str, str] = {}
    for eco_name, eco in sorted(ecosystems.items()):
        for group in eco.cli_commands():
            if group.name in taken or group.name in owner:
                other = owner.get(group.name, "mirrorctl itself")
                raise UserError(
                    f"ecosystem {eco_name!r} adds a command {group.name!r}, which {other} already has",
                    hint="uninstall one of the two ecosystem plugins, or report it to its authors",
                )
            owner[group.name] = f"ecosystem {eco_name!r}"
            groups.append(group)
    return groups


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
        lines = run_sync(lambda: command.run(CommandContext(c.settings), CommandArgs(values)), c)
        for line in lines:
            typer.echo(line)

    # typer reads a command's options from its signature: declare the params there.
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    callback.__signature__ = inspect.Signature(params + [_parameter(p) for p in command.params])  # type: ignore[attr-defined]
    callback.__doc__ = command.help
    return callback


def group_app(group: CommandGroup) -> typer.Typer:
    sub = typer.Typer(help=group.help, no_args_is_help=True)
    for command in group.commands:
        sub.command(command.name, help=command.help)(_callback(command))
    return sub


def register(app: typer.Typer, ecosystems: Mapping[str, Ecosystem] | None = None) -> None:
    """Add every ecosystem's command groups to the app."""
    taken = {c.name or "" for c in app.registered_commands} | {g.name or "" for g in app.registered_groups}
    from .app import COMMAND_MODULES

    taken |= set(COMMAND_MODULES)
    for group in ecosystem_groups(ecosystems if ecosystems is not None else load_ecosystems(), taken):
        app.add_typer(group_app(group), name=group.name)
