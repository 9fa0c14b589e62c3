"""``mirrorctl gc``: remove the blobs (and, with --keep, the snapshots) that nothing retained needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mirrorctl.progress import human_size

from .app import Ctx, run_sync


def _size(n: int) -> str:
    # the exact count for a ticket, then the one size format every other report uses (decimal units)
    return f"{n} bytes" if n < 1000 else f"{n} bytes, {human_size(n)}"


def gc_cmd(
    ctx: typer.Context,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep", min=0, help="Also remove snapshots older than the N most recent (default: keep every snapshot)."
        ),
    ] = None,
    keep_history: Annotated[
        int | None,
        typer.Option(
            "--keep-history",
            min=0,
            help="With --keep: first shorten every channel's rollback history to N steps (default: keep it all).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be removed.")] = False,
    lock: Annotated[
        list[Path] | None,
        typer.Option("--lock", help="Also keep every blob this lock file names (repeatable)."),
    ] = None,
) -> None:
    """Remove blobs that no retained snapshot needs, and only those; report counts and bytes.

    Retained: snapshots a channel (current included) points at or could roll back to, and the --keep most recent
    (all by default); --keep-history N lets rollbacks reach only N steps back, so older snapshots can go. Blobs
    named by every *.lock in the profiles folder (outside: what the next bundle export reads) and by each --lock
    file are kept too. Runs under the store's lock: an import waits. Recorded in the audit journal.

    Example: mirrorctl gc --keep 5 --dry-run
    """
    from mirrorctl.inside.gc import collect

    c: Ctx = ctx.obj
    settings = c.settings()
    store = c.store()
    locks = sorted(settings.profiles_dir.glob("*.lock")) if settings.profiles_dir.is_dir() else []
    locks += list(lock or ())
    report = run_sync(
        lambda: collect(
            store, keep=keep, dry_run=dry_run, lock_files=locks, history_steps=keep_history, progress=c.progress()
        ),
        c,
    )
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {len(report.snapshots_removed)} snapshot(s) and {report.blobs_removed} blob(s) "
        f"({_size(report.bytes_removed)}); kept {len(report.snapshots_kept)} snapshot(s) and "
        f"{report.blobs_kept} blob(s) ({_size(report.bytes_kept)})"
        + (f"; {len(locks)} lock file(s) honoured" if locks else "")
    )
    for view_id in report.snapshots_removed:
        typer.echo(f"  snapshot {view_id}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("gc")(gc_cmd)
