"""``mirrorctl audit verify`` and ``audit show``: the hash-chained journal of imports and publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import Ctx, run_sync
from .render import Column, print_table

if TYPE_CHECKING:
    from mirrorctl.inside import audit

audit_app = typer.Typer(
    help=(
        "The audit journal (store/audit/journal.jsonl): every import, refusal, publish and rollback, "
        "hash-chained.\n\nExample: mirrorctl audit verify"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


@audit_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    expect_head: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-head",
            metavar="ENTRIES:SHA256",
            help="A head an earlier `audit verify` printed: it must still be that entry of the chain (entries "
            "appended since are fine). Repeatable.",
        ),
    ] = None,
    against_state: Annotated[
        Path | None,
        typer.Option(
            "--against-state",
            help="A state file from `mirrorctl state export` (kept outside): the head it carries must still be "
            "in the chain. Its digest, and signature when signed, are checked first.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The result as one JSON object.")] = False,
) -> None:
    """Re-read every journal line and check its hash, seq and link to the line before; check that the store's
    anchor (audit/head.json) and every head given is still in the chain. Prints the entry count and the head
    (ENTRIES:SHA256): keep it outside the store and pass it back with --expect-head to detect entries removed
    from the end or a rewritten chain. Exit 1 naming the first edited, removed, reordered or cut entry.

    Example: mirrorctl audit verify --expect-head 5:3f1c...e9 (the head printed last time)
    """
    from mirrorctl.inside import audit

    c: Ctx = ctx.obj
    settings = c.settings()

    def run() -> tuple[audit.AuditReport, str | None]:
        heads = [audit.parse_head(h, f"the head you gave ({h})") for h in expect_head or []]
        state_note = None
        if against_state is not None:
            from mirrorctl.crossing.bundle.state import audit_head_of_state

            head, state_note = audit_head_of_state(against_state, c.runtime.store, settings.signing_key)
            heads.append(head)
        return audit.verify(c.runtime.store, tuple(heads)), state_note

    report, state_note = run_sync(run, c)
    head = report.head
    last = report.head_entry or {}
    if as_json:
        doc = {
            "journal": str(report.path),
            "entries": report.entries,
            "chain": "intact",
            "head": None
            if head is None
            else {
                "head": str(head), "entries": head.entries, "sha256": head.sha256, "seq": last.get("seq"),
                "time": last.get("time"), "event": last.get("event"), "result": last.get("result"),
                "who": last.get("who"),
            },
            "anchor": None if report.anchor is None else str(report.anchor),
            "checked": [{"head": str(h), "source": h.source} for h in report.checked],
            "state-file": state_note,
        }
        typer.echo(json.dumps(doc, sort_keys=True))
        return
    typer.echo(f"OK: {report.path}: {report.entries} entries, chain intact")
    if head is None:
        typer.echo("head: none (the journal is empty)")
    else:
        typer.echo(
            f"head: {head}  (entry {head.entries}: {last.get('event')} {last.get('result', '')} at "
            f"{last.get('time')} by {last.get('who')})"
        )
        typer.echo("  keep this head outside the store; later: mirrorctl audit verify --expect-head " + str(head))
    if report.anchor is None and head is not None:
        typer.echo("anchor: none yet (a journal from before anchors; the next entry writes audit/head.json)")
    elif report.anchor is not None:
        typer.echo(f"anchor: {report.anchor} (audit/head.json) found in the chain")
    for h in report.checked:
        typer.echo(f"checked: {h} ({h.source}) found in the chain")
    if state_note:
        typer.echo(f"state file: {state_note}")


@audit_app.command("show")
def show_cmd(
    ctx: typer.Context,
    last: Annotated[int | None, typer.Option("--last", "-n", min=1, help="Only the last N entries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The entries as JSON lines, as stored.")] = False,
) -> None:
    """Print the journal's entries, oldest first, as a table numbered as `audit verify` counts them (entry N is
    the Nth line; its seq is N-1), then the entry count and the head. Does not check the chain: run `audit verify`
    for that; on an intact journal both say the same count and head.

    Example: mirrorctl audit show --last 20
    """
    from mirrorctl.inside import audit

    c: Ctx = ctx.obj
    shown = run_sync(lambda: audit.listing(c.runtime.store, last), c)
    if as_json:
        for _, e in shown.shown:
            typer.echo(json.dumps(e, sort_keys=True))
        return
    if not shown.entries:
        typer.echo("the audit journal is empty")
        return
    rows = []
    for number, e in shown.shown:
        if "unreadable" in e:
            rows.append([number, None, None, "(unreadable line)", None, e["unreadable"]])
            continue
        rest = {k: v for k, v in e.items() if k not in ("seq", "time", "who", "event", "result", "prev", "hash")}
        details = " ".join(f"{k}={v}" for k, v in sorted(rest.items()) if v is not None)
        rows.append([number, e.get("time"), e.get("who"), e.get("event"), e.get("result"), details])
    print_table([Column("entry", right=True), "time", "who", "event", "result", "details"], rows)
    first = shown.shown[0][0]
    which = "" if first == 1 else f" (entries {first} to {shown.entries} shown)"
    typer.echo(
        f"{shown.entries} entries{which}; head {shown.head} (not checked here: `mirrorctl audit verify` checks it)"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
