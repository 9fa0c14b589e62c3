"""``mirrorctl workspace-config``: the files and environment that point workspaces at the mirror."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from mirrorctl.errors import UserError
from mirrorctl.inside.publish import target_name_of
from mirrorctl.inside.store import atomic_write
from mirrorctl.inside.workspace import (
    DEFAULT_INSTALL_DIR,
    WorkspaceConfig,
    render_workspace_config,
    skipped_line,
    usage_line,
)
from mirrorctl.targets.base import PublishTarget

from .app import Ctx, fail, run_async, run_sync
from .cmd_publish import with_target
from .render import err_console

# Files written, but some ecosystem left out (named on stderr): neither success (0) nor a failure that wrote
# nothing (1, 2). docs/workspace-templates.md, "Exit codes".
PARTIAL_EXIT = 3


def register(app: typer.Typer) -> None:
    @app.command("workspace-config")
    def workspace_config_cmd(
        ctx: typer.Context,
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files into.")],
        mirror_url: Annotated[
            str | None, typer.Option("--mirror-url", help="The mirror as workspaces reach it (no credentials).")
        ] = None,
        target: Annotated[
            str | None,
            typer.Option("--target", help="Instead of --mirror-url: a [targets.NAME] that content was published to."),
        ] = None,
        install_dir: Annotated[
            Path,
            typer.Option("--install-dir", help="Where the workspace will hold the files; written into the env file."),
        ] = DEFAULT_INSTALL_DIR,
        channel: Annotated[
            str | None,
            typer.Option(
                "--channel",
                help="With --mirror-url: point at /<channel>/ of a server run with --channel (leave it out for "
                "the plain layout, which serves the default channel). Example: --channel prod",
            ),
        ] = None,
    ) -> None:
        """Write pip.conf, uv.toml (and each ecosystem's client files) plus mirrorctl.env into a folder.

        The files make the real clients use only the mirror, overriding what the workspace image already
        configures. Copy the folder to --install-dir in the image and load mirrorctl.env.

        With --target the files point at what `mirrorctl publish --to NAME` filled (a devpi index, a Pulp
        distribution) instead of `mirrorctl serve`.

        Example: mirrorctl workspace-config --mirror-url http://mirror.internal:8080 --out ws/

        With --channel the files point at that channel of a server run with --channel (`mirrorctl serve
        --channel dev --channel prod`): --mirror-url plus /<channel>. Without it they use the plain layout, which
        such a server keeps serving: the default channel ([serve] default-channel), else current.

        Example: mirrorctl workspace-config --target devpi --out ws/

        Example: mirrorctl workspace-config --mirror-url http://mirror.internal:8080 --channel prod --out ws/

        An ecosystem the mirror cannot serve yet (apt without an archive key) is left out, named with the command
        that fixes it, and the others are written: exit 3 (partial), not 0.
        """
        c: Ctx = ctx.obj
        if (mirror_url is None) == (target is None):
            raise fail(UserError("workspace-config: give exactly one of --mirror-url and --target"))
        if channel is not None:
            from mirrorctl.inside.channels import validate_channel_name

            if target is not None:
                raise fail(UserError("workspace-config: --channel goes with --mirror-url (a served channel)"))
            run_sync(lambda: validate_channel_name(channel), c)
        endpoints: dict[str, str] | None = None
        trust: dict[str, str] = {}  # files a target adds so workspaces trust it (Pulp apt: the signing key)
        if target is not None:
            settings = c.settings()
            name = target
            ecosystems = c.ecosystems()

            async def endpoints_of(t: PublishTarget) -> dict[str, str]:
                found = await _endpoints(t, settings.target(name).repositories, ecosystems)
                for eco in sorted(found):
                    trust.update(await t.trust_files(eco))
                return found

            endpoints = run_async(with_target(c.runtime, name, endpoints_of), c)
            mirror_url = settings.target(name).url
        assert mirror_url is not None
        base_url = mirror_url if channel is None else f"{mirror_url.rstrip('/')}/{channel}"

        def go() -> WorkspaceConfig:
            from mirrorctl.inside.channels import plain_channel
            from mirrorctl.inside.serve.app import StoreContent

            # Without --channel the files point at the plain layout: what it serves is the default channel.
            served = channel or plain_channel((), c.settings().serve_default_channel)
            content = StoreContent(c.runtime.store, served)
            done = render_workspace_config(
                base_url, out, c.runtime.ecosystems, install_dir, endpoints=endpoints, content=content
            )
            for rel, text in sorted(trust.items()):
                atomic_write(out / rel, text.encode())
            typer.echo(usage_line(out, install_dir))
            return done

        done = run_sync(go, c)
        if done.skipped:
            # The other ecosystems' files are written (their teams are not held up), but a partial folder must
            # not pass for a whole one in an image build: a warning per ecosystem left out, and exit 3.
            for problem in (p for ps in done.skipped.values() for p in ps):
                err_console().print(
                    f"WARNING: {skipped_line(problem, c.runtime.config_path)}", style="bold yellow", markup=False,
                    soft_wrap=True,
                )
            err_console().print(
                f"workspace-config: partial: {', '.join(done.skipped)} left out; exit {PARTIAL_EXIT}", markup=False
            )
            raise typer.Exit(PARTIAL_EXIT)


async def _endpoints(
    target: PublishTarget, repositories: Mapping[str, str], ecosystems: Mapping[str, object]
) -> dict[str, str]:
    """Each ecosystem this target publishes (configured in repositories) -> the URL its clients use."""
    found = {eco: target.endpoint(eco) for eco in sorted(target.ecosystems & set(repositories) & set(ecosystems))}
    if not found:
        raise UserError(
            f"target {target_name_of(target)}: no repository configured "
            f"for an ecosystem it publishes ({', '.join(sorted(target.ecosystems))})",
            hint="add repositories = { pypi = ... } to its [targets.NAME] table",
        )
    return found
