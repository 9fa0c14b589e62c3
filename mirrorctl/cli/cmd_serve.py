"""``mirrorctl serve``: the embedded mirror over the store's current view, or over one or several channels."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import Ctx, fail, run_async


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        ctx: typer.Context,
        host: Annotated[
            str | None,
            typer.Option("--host", help="Address to listen on (default: [serve] host, 127.0.0.1)."),
        ] = None,
        port: Annotated[
            int | None,
            typer.Option(
                "--port", min=0, max=65535, help="Port (default: [serve] port, 8080; 0 picks a free one)."
            ),
        ] = None,
        access_log: Annotated[
            bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
        ] = True,
        workers: Annotated[
            int,
            typer.Option(
                "--workers",
                help="Worker processes sharing the port (default 1). Each reads the store read-only and follows "
                "every import, promote and rollback at its next request; about one per CPU core.",
            ),
        ] = 1,
        channel: Annotated[
            list[str] | None,
            typer.Option(
                "--channel",
                help="Serve this channel at /<channel>/<ecosystem>/; repeat it to serve several. The plain "
                "/<ecosystem>/ layout serves the one channel given, else [serve] default-channel, else current. "
                "A channel that does not exist yet is refused (exit 2). Example: --channel staging --channel prod",
            ),
        ] = None,
        front: Annotated[
            str | None,
            typer.Option(
                "--front",
                help="Start this front server for package files (only nginx; default: [serve] front, none). "
                "mirrorctl writes its configuration, starts it on --host/--port and serves everything else "
                "behind it; the binary is [serve] nginx or nginx on PATH. Example: --front nginx",
            ),
        ] = None,
    ) -> None:
        """Serve the imported packages to pip, uv and the other clients; never fetches from upstream.

        Every served channel follows each promote, rollback and import into it at the next request. With
        nothing imported yet, indexes are empty.

        The plain layout /<ecosystem>/ (e.g. /pypi/simple/) serves the one --channel given; else the default
        channel ([serve] default-channel = "prod" in mirrorctl.toml); else current (what an import without
        --channel switches: a store without channels works as it always did). Each --channel is also served
        under its name: --channel staging --channel prod serves /staging/pypi/simple/ and /prod/pypi/simple/
        beside the plain /pypi/simple/, so workspaces configured before channels keep working.

        Example: mirrorctl serve --host 0.0.0.0 --port 8080

        Example: mirrorctl serve --channel dev --channel prod

        Example: mirrorctl serve --workers 4

        Example: mirrorctl serve --front nginx --workers 2   (nginx sends the files, mirrorctl the indexes)
        """
        c: Ctx = ctx.obj
        settings = c.settings()
        from mirrorctl.config import SERVE_FRONTS
        from mirrorctl.errors import UserError
        from mirrorctl.inside.serve.runner import ServeOptions, serve

        chosen_front = front if front is not None else settings.serve_front
        if chosen_front is not None and chosen_front not in SERVE_FRONTS:
            raise fail(
                UserError(
                    f"--front {chosen_front!r}: not a front server mirrorctl can start",
                    hint="--front " + " or --front ".join(SERVE_FRONTS),
                )
            )
        options = ServeOptions(
            host=host if host is not None else settings.serve_host,
            port=port if port is not None else settings.serve_port,
            access_log=access_log,
            workers=workers,
            ecosystems=settings.serve_options,
            config=c.runtime.config_path,
            front=chosen_front,
            nginx=settings.serve_nginx,
            default_channel=settings.serve_default_channel,
        )
        store, ecosystems = c.store(), c.ecosystems()
        channels = list(channel or ())
        run_async(lambda: serve(store, ecosystems, options, c.progress(), channels), c)
