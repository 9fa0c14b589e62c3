"""`mirrorctl snapshot`: download every locked artifact into the store, verified against the locks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer

from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import UserError
from mirrorctl.lockfile import Lock
from mirrorctl.outside.profiles import list_profiles, load_profile, profile_path
from mirrorctl.outside.snapshot import SnapshotReport, load_locks, snapshot

from .app import Ctx, run_async, run_sync


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""

    @app.command("snapshot")
    def snapshot_cmd(
        ctx: typer.Context,
        profiles: Annotated[
            list[str] | None,
            typer.Argument(help="Profile names (or paths to .toml files); default: all in profiles/."),
        ] = None,
    ) -> None:
        """Download every artifact the profiles' locks name into the store, checking size and sha256.

        Files already in the store are skipped without any request; an interrupted run resumes where it
        stopped. Refuses a lock whose profile changed since it was locked.

        Example: mirrorctl snapshot web data-science
        """
        obj: Ctx = ctx.obj
        rt = obj.runtime
        settings = obj.settings()

        def load() -> tuple[Mapping[str, Ecosystem], list[tuple[str, Lock]]]:
            ecosystems = rt.ecosystems
            if profiles:
                paths = [profile_path(settings.profiles_dir, p) for p in profiles]
            else:
                paths = list_profiles(settings.profiles_dir)
                if not paths:
                    raise UserError(
                        f"{settings.profiles_dir}: no profiles (*.toml) found",
                        hint="write a profile there, or name one: mirrorctl snapshot profiles/web.toml",
                    )
            loaded = [load_profile(p, ecosystems) for p in paths]
            return ecosystems, load_locks(loaded, legacy_paths=ecosystems)

        ecosystems, locks = run_sync(load, obj)
        async def run() -> SnapshotReport:
            async with rt.client() as client:
                return await snapshot(locks, ecosystems, settings, rt.store, client, rt.progress)

        report = run_async(run, obj)
        typer.echo(summary(report))


def summary(report: SnapshotReport) -> str:
    """One line, e.g. ``snapshot web: downloaded 12 files / 48.3 MB in 3.2 s, 140 already present``."""
    names = ", ".join(report.profiles)
    return (
        f"snapshot {names}: downloaded {report.downloaded} files / {report.downloaded_bytes / 1e6:.1f} MB "
        f"in {report.elapsed:.1f} s, {report.present} already present"
    )
