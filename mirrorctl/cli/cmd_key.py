"""`mirrorctl key generate|rotate|revoke|status`: signing keys for bundles and trust over time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mirrorctl.config import Settings
from mirrorctl.errors import UserError

from .app import Ctx, run_sync

if TYPE_CHECKING:  # cryptography loads only when a key command runs
    from mirrorctl.crossing.trust import RotationReport

key_app = typer.Typer(
    help=(
        "Signing keys for bundles: generate, rotate, revoke, status.\n\n"
        "Example: mirrorctl key generate --out keys/mirrorctl.key"
    ),
    no_args_is_help=True,
)


@key_app.command("generate")
def generate(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Private key file to write (PATH.pub gets the public key).")
    ],
) -> None:
    """Write a new Ed25519 private key (PKCS#8 PEM, mode 0600) and PATH.pub; never overwrites.

    The private key stays on the side that signs ([signing] key in its mirrorctl.toml) and never crosses. For
    the outside's bundle key, copy PATH.pub inside ([trust] keys); an inside key signs only state files and is
    listed in no [trust] keys.

    Example: mirrorctl key generate --out keys/mirrorctl.key
    """
    obj: Ctx = ctx.obj
    from mirrorctl.crossing.signing import generate_key

    key = run_sync(lambda: generate_key(out), obj)
    typer.echo(f"key id {key.key_id}")
    typer.echo(f"private key: {key.private_path} (name it in this side's [signing] key; it never crosses)")
    typer.echo(
        f"public key:  {key.public_path} (a bundle key's goes in the inside's [trust] keys; an inside state key's"
        " in none)"
    )


@key_app.command("rotate")
def rotate(
    ctx: typer.Context,
    new: Annotated[Path, typer.Option("--new", help="The new key: its private key file or its .pub.")],
) -> None:
    """Outside: sign a rotation statement from the current [signing] key to the new key.

    Every later bundle signed with the new key carries the statement (keys/rotation-N.json); inside, import
    then accepts the new key for the lineage and refuses the old one from then on. Afterwards set [signing] key
    to the new private key.

    Example: mirrorctl key generate --out keys/mirrorctl-2027.key && mirrorctl key rotate --new keys/mirrorctl-2027.key
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    progress = obj.progress()

    def run() -> RotationReport:
        from mirrorctl.crossing.trust import rotate as rotate_key

        signing = _signing_key(settings)
        return rotate_key(obj.runtime.store, signing, new, now=datetime.now(UTC), progress=progress)

    r = run_sync(run, obj)
    typer.echo(f"rotation {r.index} of lineage {r.lineage}: key {r.old_key} -> {r.new_key}")
    typer.echo(f"statement: {r.statement} (+ .sig, signed by {r.old_key})")
    typer.echo(f"next: set [signing] key = {new} in mirrorctl.toml (the private key); the next bundle carries it")


@key_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The key id to revoke (16 hex digits).", metavar="KEYID")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded and shown in every refusal.")],
    sign: Annotated[
        bool,
        typer.Option("--sign", help="Outside: also write a statement signed by [signing] key that bundles carry."),
    ] = False,
) -> None:
    """Revoke a key in this store: bundles and statements it signs are refused (audited).

    Inside, this is the local revocation list. Outside, --sign writes a revocation statement signed by the
    [signing] key; every later bundle carries it and the inside applies it on import.

    Example: mirrorctl key revoke 29ee5b8d90250a8b --reason "key file leaked on 2026-03-01"
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    progress = obj.progress()

    def run() -> tuple[bool, Path | None]:
        from mirrorctl.crossing.trust import revoke_local, sign_revocation

        store = obj.runtime.store
        statement = None
        if sign:
            statement = sign_revocation(
                store, _signing_key(settings), key, reason, now=datetime.now(UTC), progress=progress
            )
        return revoke_local(store, key, reason, progress=progress) is not None, statement

    added, statement = run_sync(run, obj)
    typer.echo(f"key {key} {'revoked' if added else 'was already revoked'} in {settings.store_path}")
    if statement is not None:
        typer.echo(f"statement: {statement} (+ .sig); every later bundle carries it")


@key_app.command("status")
def status(ctx: typer.Context) -> None:
    """Show the lineages this store knows, their current keys and rotations, and the revoked keys.

    Example: mirrorctl key status
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    from mirrorctl.crossing.trust import read_state

    state = run_sync(lambda: read_state(obj.runtime.store), obj)
    for path in settings.trusted_keys:
        typer.echo(f"configured  {path}")
    for lineage, rec in sorted(state.get("lineages", {}).items()):
        typer.echo(f"lineage     {lineage}: current key {rec.get('key')}")
        for rot in rec.get("rotations", []):
            typer.echo(f"  rotation {rot['index']}: {rot['from']} -> {rot['to']} ({rot.get('time', '?')})")
    for kid, rec in sorted(state.get("revoked", {}).items()):
        typer.echo(f"revoked     {kid}: {rec.get('reason')} ({rec.get('source')}, {rec.get('time')})")
    for lineage, chain in sorted(state.get("outgoing", {}).get("rotations", {}).items()):
        typer.echo(f"outgoing    lineage {lineage}: " + " -> ".join([lineage, *(r["new"] for r in chain)]))


def _signing_key(settings: Settings) -> Path:
    if settings.signing_key is None:
        raise UserError(
            f"{settings.config_path or 'mirrorctl.toml'}: no signing key configured ([signing] key = ...)",
            hint="set [signing] key to the current private key of the lineage",
        )
    return settings.signing_key


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(key_app, name="key")
