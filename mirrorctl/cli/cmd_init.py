"""``mirrorctl init``: write mirrorctl.toml from the local clients' settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mirrorctl.errors import UserError
from mirrorctl.outside.initconfig import init_config

from .app import Ctx, run_sync


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the settings.")] = Path("mirrorctl.toml"),
        upstream: Annotated[
            list[str] | None,
            typer.Option("--upstream", help="ECOSYSTEM=URL, instead of what the local client uses. Repeatable."),
        ] = None,
        store: Annotated[str, typer.Option(help="Store folder, relative to the settings file.")] = ".mirrorctl/store",
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    ) -> None:
        """Write mirrorctl.toml, taking each ecosystem's upstream from the local client's own settings.

        Example: mirrorctl init --out mirrorctl.toml
        """
        c: Ctx = ctx.obj

        def go() -> None:
            overrides: dict[str, str] = {}
            for item in upstream or []:
                name, sep, url = item.partition("=")
                if not sep or not url:
                    raise UserError(f"--upstream {item!r}: expected ECOSYSTEM=URL")
                overrides[name] = url
            rt = c.runtime
            result = init_config(out, rt.ecosystems, rt.environ, overrides=overrides, store=store, force=force)
            typer.echo(f"wrote {result.path}")
            for name, (url, source) in sorted(result.upstreams.items()):
                typer.echo(f"  {name}: {url}  (from {source})")
            for name in result.missing:
                typer.echo(f"  {name}: no upstream found; add [upstreams.{name}] url = ... or pass --upstream")

        run_sync(go, c)
