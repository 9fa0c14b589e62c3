"""`mirrorctl state export`: inside, describe what the store holds, so the outside can make a delta bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import Ctx, run_sync

if TYPE_CHECKING:
    from mirrorctl.crossing.bundle.state import InsideState

state_app = typer.Typer(
    help=(
        "The inside's state: what its store holds, for delta bundles.\n\n"
        "Example: mirrorctl state export --out /media/usb/inside.state"
    ),
    no_args_is_help=True,
)


@state_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="State file to write (replaced atomically).")],
) -> None:
    """Write the blobs this store holds and each lineage's last imported sequence, signed.

    Signed with [signing] key when set, else with the store's own state key (<store>/keys/state/state.key,
    made on first use).

    Carry the file outside and run `mirrorctl bundle export --since FILE`. The file only tells the outside what
    to leave out: a wrong one makes the delta fail at import, never accepted.

    Example: mirrorctl state export --out /media/usb/inside.state
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()

    def run() -> InsideState:
        from mirrorctl.crossing.bundle.state import export_state, store_state_key

        store = obj.runtime.store
        key = settings.signing_key or store_state_key(store, create=True)
        return export_state(store, out, signing_key=key)

    state = run_sync(run, obj)
    lineages = ", ".join(f"{name} at sequence {rec.sequence}" for name, rec in sorted(state.lineages.items()))
    typer.echo(
        f"wrote {state.path}: {len(state.blobs)} blobs ({sum(state.blobs.values())} bytes), "
        f"lineages: {lineages or 'none'}"
    )
    typer.echo(f"  state sha256  {state.digest}")
    whose = "[signing] key" if settings.signing_key else "the store's own state key"
    typer.echo(f"  signed by     {state.signer} ({whose})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(state_app, name="state")
