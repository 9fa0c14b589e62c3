"""``mirrorctl archive-key``: the inside's OpenPGP key that signs the served apt repository, as the command
group apt adds to the CLI (ecosystems/commands.py says why commands are data)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from mirrorctl.ecosystems.commands import Command, CommandArgs, CommandContext, CommandGroup, Param, read_file
from mirrorctl.inside.store import atomic_write

from .archive_key import DEFAULT_UID, ArchiveKey

ALGORITHM = Param("algorithm", "ed25519 or rsa4096.", default="ed25519")


def _key(ctx: CommandContext) -> ArchiveKey:
    return ArchiveKey(ctx.keys_dir())


# Journaled like every change of the inside's state (mirrorctl/inside/audit.py): who made or replaced the key
# that workspaces trust, when, and which key it is; a refusal too. export and show change nothing.
GENERATE_EVENT = "archive-key-generate"
IMPORT_EVENT = "archive-key-import"
ROTATE_EVENT = "archive-key-rotate"


def _generate(ctx: CommandContext, args: CommandArgs) -> Sequence[str]:
    key = _key(ctx)
    fields = {
        "uid": args.text("uid") or DEFAULT_UID, "algorithm": args.text("algorithm") or "ed25519",
        "expire": args.text("expire") or "never",
    }
    fpr = ctx.journaled(
        GENERATE_EVENT, fields,
        lambda: key.generate(uid=fields["uid"], algorithm=fields["algorithm"], expire=fields["expire"]),
    )
    ctx.journal(GENERATE_EVENT, **fields, fingerprint=fpr, result="ok")
    return [
        f"apt archive key {fpr} in {key.folder}",
        "next: mirrorctl workspace-config writes its public keyring for workspaces",
    ]


def _import(ctx: CommandContext, args: CommandArgs) -> Sequence[str]:
    key = _key(ctx)
    file = args.path("file")
    assert file is not None  # required
    fields = {"source": str(file)}
    fpr = ctx.journaled(IMPORT_EVENT, fields, lambda: key.import_key(read_file(file), source=str(file)))
    ctx.journal(IMPORT_EVENT, **fields, fingerprint=fpr, result="ok")
    return [f"apt archive key {fpr} imported into {key.folder}"]


def _rotate(ctx: CommandContext, args: CommandArgs) -> Sequence[str]:
    key = _key(ctx)
    from_file = args.path("from_file")
    overlap_days = args.number("overlap_days")
    algorithm = args.text("algorithm") or "ed25519"
    fields: dict[str, object] = {"overlap-days": overlap_days, "source": str(from_file or "generated")}
    if from_file is None:
        fields["algorithm"] = algorithm

    def work() -> tuple[str | None, str]:
        previous = key.current_fingerprint() if key.exists() else None
        armored = read_file(from_file) if from_file is not None else None
        fpr = key.rotate(
            overlap=timedelta(days=overlap_days), armored=armored, source=str(from_file or ""), algorithm=algorithm
        )
        return previous, fpr

    previous, fpr = ctx.journaled(ROTATE_EVENT, fields, work)
    ctx.journal(ROTATE_EVENT, **fields, fingerprint=fpr, previous=previous, result="ok")
    return [
        f"apt archive key {fpr} is now current; the old key signs too for {overlap_days:g} days",
        "next: mirrorctl workspace-config (the keyring it writes holds both keys)",
    ]


def _export(ctx: CommandContext, args: CommandArgs) -> Sequence[str]:
    key = _key(ctx)
    out = args.path("out")
    assert out is not None  # required
    atomic_write(out, key.public_keyring(armor=args.flag("armor")))
    return [f"wrote {out}"]


def _show(ctx: CommandContext, args: CommandArgs) -> Sequence[str]:
    lines = []
    for info in _key(ctx).show():
        expires = f", expires {info.expires}" if info.expires else ""
        lines.append(f"{info.fingerprint}  {info.algorithm}  created {info.created}{expires}  {info.status}")
        lines.append(f"    {info.uid}")
    return lines


ARCHIVE_KEY = CommandGroup(
    "archive-key",
    "The apt archive key that signs the mirror's InRelease (kept in <store>/keys/apt, never bundled).\n\n"
    "Example: mirrorctl archive-key generate && mirrorctl archive-key export --out keyring.gpg",
    (
        Command(
            "generate",
            "Create the archive key (no passphrase: the server signs unattended); refuses when one exists.\n"
            "Recorded in the audit journal (`mirrorctl audit show`), done or refused.\n\n"
            "Example: mirrorctl archive-key generate --algorithm rsa4096",
            (
                ALGORITHM,
                Param("uid", "User id, e.g. 'ACME apt archive <apt@acme.test>'."),
                Param("expire", "gpg expiry, e.g. 2y; default never.", default="never"),
            ),
            _generate,
        ),
        Command(
            "import",
            "Use a supplied secret key as the archive key; refuses when one exists (use rotate --from).\n"
            "Recorded in the audit journal, done or refused.\n\n"
            "Example: mirrorctl archive-key import acme-archive.secret.asc",
            (
                Param(
                    "file", "Secret key (gpg --export-secret-keys --armor), no passphrase.", type=Path,
                    required=True, argument=True,
                ),
            ),
            _import,
        ),
        Command(
            "rotate",
            "Make a new archive key current; during the overlap InRelease is signed by old and new key and the\n"
            "exported keyring holds both, so workspaces with either keyring keep working. Re-run workspace-config.\n"
            "Recorded in the audit journal, done or refused."
            "\n\nExample: mirrorctl archive-key rotate --overlap-days 14",
            (
                Param(
                    "overlap_days", "How long the old key keeps signing beside the new one.", type=float,
                    default=30.0,
                ),
                Param(
                    "from_file", "Switch to this supplied secret key instead of a new one.", type=Path,
                    flag="--from",
                ),
                ALGORITHM,
            ),
            _rotate,
        ),
        Command(
            "export",
            "Write the public keyring workspaces trust now (current key, plus retiring keys during an overlap).\n\n"
            "Example: mirrorctl archive-key export --out /srv/keys/mirrorctl-archive-keyring.gpg",
            (
                Param("out", "File to write the public keyring to.", type=Path, required=True, short="-o"),
                Param("armor", "ASCII-armored (name it *.asc for apt).", type=bool, default=False),
            ),
            _export,
        ),
        Command(
            "show",
            "List the archive keys: fingerprint, algorithm, created, and current / retiring / retired.\n\n"
            "Example: mirrorctl archive-key show",
            (),
            _show,
        ),
    ),
)
