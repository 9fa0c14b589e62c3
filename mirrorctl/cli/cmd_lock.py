"""``mirrorctl lock``: resolve profiles into hashed, host-free lock files, or check that they are current."""

from __future__ import annotations

from typing import Annotated

import typer

from mirrorctl.errors import UserError
from mirrorctl.outside.locking import LockResult, check_locks, lock_profiles
from mirrorctl.outside.profiles import Profile, list_profiles, load_profile, profile_path

from .app import Ctx, run_async, run_sync


def register(app: typer.Typer) -> None:
    @app.command("lock")
    def lock_cmd(
        ctx: typer.Context,
        profiles: Annotated[
            list[str] | None,
            typer.Argument(help="Profile names (profiles/NAME.toml) or paths; default: every profile."),
        ] = None,
        check: Annotated[
            bool,
            typer.Option("--check", help="Change nothing; fail if any lock is missing or out of date."),
        ] = False,
        refresh: Annotated[
            bool,
            typer.Option(
                "--refresh", "--upgrade",
                help="Resolve again even where the lock is up to date, taking newer upstream releases.",
            ),
        ] = False,
        then_snapshot: Annotated[
            bool,
            typer.Option(
                "--snapshot",
                help="Also snapshot the locks into the store, downloading each file as soon as the resolver picks it.",
            ),
        ] = False,
    ) -> None:
        """Resolve profiles into lock files: every file each target needs, with its size and sha256.

        Writes profiles/NAME.lock next to each profile (deterministic bytes, no host names). A lock that
        is up to date (made from the profile as it is now) is kept without any request; --refresh resolves
        it again. With --check, reads no network and exits 1 when a lock no longer matches its profile.
        With --snapshot, downloads overlap resolution and the store ends as after `mirrorctl snapshot`.

        Example: mirrorctl lock example && mirrorctl lock --check && mirrorctl lock --refresh --snapshot
        """
        c: Ctx = ctx.obj
        rt = c.runtime
        settings = c.settings()

        def load() -> list[Profile]:
            ecosystems = rt.ecosystems
            paths = [profile_path(settings.profiles_dir, p) for p in profiles or []]
            if not paths:
                paths = list_profiles(settings.profiles_dir)
                if not paths:
                    raise UserError(
                        f"{settings.profiles_dir}: no profiles (*.toml) to lock",
                        hint="write one, e.g. profiles/example.toml with a [pypi] table",
                    )
            return [load_profile(p, ecosystems) for p in paths]

        loaded = run_sync(load, c)
        if check and (refresh or then_snapshot):

            def refuse() -> None:
                raise UserError(
                    "--check changes nothing: it cannot be combined with --refresh or --snapshot",
                    hint="run `mirrorctl lock --check` on its own",
                )

            run_sync(refuse, c)
        if check:
            problems = run_sync(lambda: check_locks(loaded, rt.ecosystems), c)
            for problem in problems:
                typer.echo(f"out of date: {problem}", err=True)
            if problems:
                typer.echo(f"error: {len(problems)} problem(s): locks do not match their profiles", err=True)
                typer.echo("hint: run `mirrorctl lock` and commit the lock files", err=True)
                raise typer.Exit(1)
            for p in loaded:
                typer.echo(f"{p.name}: {p.lock_path} is up to date")
            return

        if then_snapshot:
            from mirrorctl.outside.snapshot import LockSnapshotReport, lock_and_snapshot

            from .cmd_snapshot import summary

            async def both() -> LockSnapshotReport:
                async with rt.client() as client:
                    return await lock_and_snapshot(
                        loaded, rt.ecosystems, settings, rt.store, client, rt.progress, refresh=refresh
                    )

            report = run_async(both, c)
            for r in report.locks:
                _echo_result(r)
            typer.echo(summary(report.snapshot))
            if report.early_files or report.early_cancelled or report.early_failed:
                typer.echo(
                    f"  of them started while resolving: {report.early_files} files / "
                    f"{_mb(report.early_bytes)}; {report.early_cancelled} dropped candidate(s) cancelled, "
                    f"{report.early_failed} early failure(s) retried"
                )
            return

        async def go() -> list[LockResult]:
            async with rt.client() as client:
                return await lock_profiles(
                    loaded, rt.ecosystems, settings, rt.store, client, rt.progress, refresh=refresh
                )

        for r in run_async(go, c):
            _echo_result(r)


def _echo_result(r: LockResult) -> None:
    if r.replaced_unreadable:
        typer.echo(f"{r.profile}: the old lock could not be read ({r.replaced_unreadable}); resolved again")
    if not r.resolved:
        state = "up to date, not resolved again; --refresh to take newer releases"
    else:
        state = "changed" if r.changed else "unchanged"
    typer.echo(
        f"{r.profile}: {r.artifacts} artifacts, {len(r.targets)} targets, {_mb(r.size)} -> {r.path} ({state})"
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
