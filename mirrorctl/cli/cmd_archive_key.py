"""`mirrorctl archive-key`: the inside's OpenPGP key that signs the served apt repository."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from mirrorctl.ecosystems.apt.archive_key import DEFAULT_UID, ArchiveKey
from mirrorctl.errors import UserError
from mirrorctl.store import atomic_write

from .app import Ctx, run_sync

archive_key_app = typer.Typer(
    help=(
        "The apt archive key that signs the mirror's InRelease (kept in <store>/keys/apt, never bundled).\n\n"
        "Example: mirrorctl archive-key generate && mirrorctl archive-key export --out keyring.gpg"
    ),
    no_args_is_help=True,
)


def _key(ctx: typer.Context) -> ArchiveKey:
    obj: Ctx = ctx.obj
    return ArchiveKey(obj.settings().store_path / "keys")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from exc


@archive_key_app.command("generate")
def generate(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Option("--algorithm", help="ed25519 or rsa4096.")] = "ed25519",
    uid: Annotated[str | None, typer.Option("--uid", help="User id, e.g. 'ACME apt archive <apt@acme.test>'.")] = None,
    expire: Annotated[str, typer.Option("--expire", help="gpg expiry, e.g. 2y; default never.")] = "never",
) -> None:
    """Create the archive key (no passphrase: the server signs unattended); refuses when one exists.

    Example: mirrorctl archive-key generate --algorithm rsa4096
    """
    key = _key(ctx)
    fpr = run_sync(lambda: key.generate(uid=uid or DEFAULT_UID, algorithm=algorithm, expire=expire), ctx.obj)
    typer.echo(f"apt archive key {fpr} in {key.folder}")
    typer.echo("next: mirrorctl workspace-config writes its public keyring for workspaces")


@archive_key_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Secret key (gpg --export-secret-keys --armor), no passphrase.")],
) -> None:
    """Use a supplied secret key as the archive key; refuses when one exists (use rotate --from).

    Example: mirrorctl archive-key import acme-archive.secret.asc
    """
    key = _key(ctx)
    fpr = run_sync(lambda: key.import_key(_read(file), source=str(file)), ctx.obj)
    typer.echo(f"apt archive key {fpr} imported into {key.folder}")


@archive_key_app.command("rotate")
def rotate(
    ctx: typer.Context,
    overlap_days: Annotated[
        float, typer.Option("--overlap-days", help="How long the old key keeps signing beside the new one.")
    ] = 30,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Switch to this supplied secret key instead of a new one.")
    ] = None,
    algorithm: Annotated[str, typer.Option("--algorithm", help="ed25519 or rsa4096.")] = "ed25519",
) -> None:
    """Make a new archive key current; during the overlap InRelease is signed by old and new key and the
    exported keyring holds both, so workspaces with either keyring keep working. Re-run workspace-config.

    Example: mirrorctl archive-key rotate --overlap-days 14
    """
    key = _key(ctx)

    def go() -> str:
        armored = _read(from_file) if from_file is not None else None
        return key.rotate(
            overlap=timedelta(days=overlap_days), armored=armored, source=str(from_file or ""), algorithm=algorithm
        )

    fpr = run_sync(go, ctx.obj)
    typer.echo(f"apt archive key {fpr} is now current; the old key signs too for {overlap_days:g} days")
    typer.echo("next: mirrorctl workspace-config (the keyring it writes holds both keys)")


@archive_key_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write the public keyring to.")],
    armor: Annotated[bool, typer.Option("--armor", help="ASCII-armored (name it *.asc for apt).")] = False,
) -> None:
    """Write the public keyring workspaces trust now (current key, plus retiring keys during an overlap).

    Example: mirrorctl archive-key export --out /srv/keys/mirrorctl-archive-keyring.gpg
    """
    key = _key(ctx)
    run_sync(lambda: atomic_write(out, key.public_keyring(armor=armor)), ctx.obj)
    typer.echo(f"wrote {out}")


@archive_key_app.command("show")
def show(ctx: typer.Context) -> None:
    """List the archive keys: fingerprint, algorithm, created, and current / retiring / retired.

    Example: mirrorctl archive-key show
    """
    key = _key(ctx)
    for info in run_sync(key.show, ctx.obj):
        expires = f", expires {info.expires}" if info.expires else ""
        typer.echo(f"{info.fingerprint}  {info.algorithm}  created {info.created}{expires}  {info.status}")
        typer.echo(f"    {info.uid}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(archive_key_app, name="archive-key")
