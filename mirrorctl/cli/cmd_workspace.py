"""``mirrorctl workspace-config``: the files and environment that point workspaces at the mirror."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.workspace import DEFAULT_INSTALL_DIR, render_workspace_config, usage_line

from .app import Ctx, run_sync


def register(app: typer.Typer) -> None:
    @app.command("workspace-config")
    def workspace_config_cmd(
        ctx: typer.Context,
        mirror_url: Annotated[
            str, typer.Option("--mirror-url", help="The mirror as workspaces reach it (no credentials).")
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files into.")],
        install_dir: Annotated[
            Path,
            typer.Option(
                "--install-dir", help="Where the workspace will hold the files; written into the env file."
            ),
        ] = DEFAULT_INSTALL_DIR,
    ) -> None:
        """Write pip.conf, uv.toml (and each ecosystem's client files) plus mirrorctl.env into a folder.

        The files make the real clients use only the mirror, overriding what the workspace image already
        configures. Copy the folder to --install-dir in the image and load mirrorctl.env.

        Example: mirrorctl workspace-config --mirror-url http://mirror.internal:8080 --out ws/
        """
        c: Ctx = ctx.obj

        def go() -> None:
            render_workspace_config(mirror_url, out, load_ecosystems(), install_dir)
            typer.echo(usage_line(out, install_dir))

        run_sync(go, c)
