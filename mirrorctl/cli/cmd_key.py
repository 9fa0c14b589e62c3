"""`mirrorctl key generate`: a new Ed25519 signing key pair for bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import Ctx, run_sync

key_app = typer.Typer(
    help="Signing keys for bundles.\n\nExample: mirrorctl key generate --out keys/mirrorctl.key",
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

    Keep the private key outside ([signing] key in mirrorctl.toml); copy PATH.pub inside ([trust] keys).

    Example: mirrorctl key generate --out keys/mirrorctl.key
    """
    obj: Ctx = ctx.obj
    from mirrorctl.signing import generate_key

    key = run_sync(lambda: generate_key(out), obj)
    typer.echo(f"key id {key.key_id}")
    typer.echo(f"private key: {key.private_path} (keep it outside: [signing] key)")
    typer.echo(f"public key:  {key.public_path} (copy it inside: [trust] keys)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(key_app, name="key")
