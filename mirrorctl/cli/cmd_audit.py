"""``mirrorctl audit verify`` and ``audit show``: the hash-chained journal of imports and publishes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mirrorctl.store import Store

from .app import Ctx, run_sync

audit_app = typer.Typer(
    help=(
        "The audit journal (store/audit/journal.jsonl): every import, refusal, publish and rollback, "
        "hash-chained.\n\nExample: mirrorctl audit verify"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


@audit_app.command("verify")
def verify_cmd(ctx: typer.Context) -> None:
    """Re-read every journal line and check its hash, seq and link to the line before; exit 1 naming the first
    edited, removed, reordered or cut entry.

    Example: mirrorctl audit verify
    """
    from mirrorctl import audit

    c: Ctx = ctx.obj
    settings = c.settings()
    report = run_sync(lambda: audit.verify(Store(settings.store_path)), c)
    typer.echo(f"OK: {report.path}: {report.entries} entries, chain intact")


@audit_app.command("show")
def show_cmd(
    ctx: typer.Context,
    last: Annotated[int | None, typer.Option("--last", "-n", min=1, help="Only the last N entries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The entries as JSON lines, as stored.")] = False,
) -> None:
    """Print the journal's entries, oldest first (does not check the chain: run `audit verify` for that).

    Example: mirrorctl audit show --last 20
    """
    from mirrorctl import audit

    c: Ctx = ctx.obj
    settings = c.settings()
    entries = run_sync(lambda: audit.last_entries(Store(settings.store_path), last), c)
    if not entries:
        typer.echo("the audit journal is empty")
    for e in entries:
        if as_json or "unreadable" in e:
            typer.echo(json.dumps(e, sort_keys=True))
            continue
        rest = {k: v for k, v in e.items() if k not in ("seq", "time", "who", "event", "result", "prev", "hash")}
        details = " ".join(f"{k}={v}" for k, v in sorted(rest.items()) if v is not None)
        typer.echo(f"{e.get('seq')} {e.get('time')} {e.get('who')} {e.get('event')} {e.get('result', '')} {details}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
