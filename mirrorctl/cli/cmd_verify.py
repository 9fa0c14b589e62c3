"""``mirrorctl verify``: re-hash the store."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import Ctx, run_async


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(
        ctx: typer.Context,
        everything: Annotated[
            bool, typer.Option("--all", help="Check every stored blob, not only the served ones.")
        ] = False,
    ) -> None:
        """Re-hash every blob the mirror serves (size, then sha256) and check the file trees of served snapshots
        (what serve --front nginx sends); name each damaged one; exit 1 if any.

        Example: mirrorctl verify
        """
        from mirrorctl.inside.verify import verify_store

        c: Ctx = ctx.obj
        store = c.store()
        layouts = c.ecosystems()
        report = run_async(lambda: verify_store(store, c.progress(), everything=everything, layouts=layouts), c)
        typer.echo(f"OK: {report.checked} blobs, {report.bytes} bytes, all match their sha256")
        typer.echo(
            f"    {report.snapshots} snapshot(s) as their import made them"
            + (f", {report.unrecorded} imported before digests were recorded" if report.unrecorded else "")
            + (f"; {report.trees} served file tree(s) exactly their blobs" if report.trees else "")
        )
