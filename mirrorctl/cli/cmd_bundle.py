"""`mirrorctl bundle export|verify`: write a signed bundle outside; check one inside without importing it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mirrorctl.config import Settings
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import ProfileError, UserError
from mirrorctl.lockfile import parse_lock
from mirrorctl.outside.profiles import list_profiles, load_profile, profile_path

from .app import Ctx, run_sync

if TYPE_CHECKING:  # the bundle code (and cryptography) loads only when a bundle command runs
    from mirrorctl.crossing.bundle.export import ExportReport, LockInput
    from mirrorctl.crossing.bundle.state import InsideState
    from mirrorctl.crossing.bundle.verify import VerifiedManifest

bundle_app = typer.Typer(
    help=(
        "Signed bundles: the only thing that crosses the gap.\n\n"
        "Example: mirrorctl bundle export --out web.bundle web && mirrorctl bundle verify web.bundle"
    ),
    no_args_is_help=True,
)


def collect_locks(settings: Settings, ecosystems: Mapping[str, Ecosystem], names: list[str]) -> list[LockInput]:
    """The locks of ``names`` (all profiles when empty); refuses a lock older than its profile."""
    paths = [profile_path(settings.profiles_dir, n) for n in names] or list_profiles(settings.profiles_dir)
    if not paths:
        raise UserError(f"{settings.profiles_dir}: no profiles found", hint="name the profiles to export")
    locks: list[LockInput] = []
    for path in paths:
        profile = load_profile(path, ecosystems)
        try:
            data = profile.lock_path.read_bytes()
        except FileNotFoundError:
            raise ProfileError(
                f"{profile.lock_path}: lock not found", hint=f"run `mirrorctl lock {profile.name}` first"
            ) from None
        # Parse the very bytes that travel, so the bundle cannot carry a lock other than the one checked.
        lock = parse_lock(data.decode("utf-8"), profile.lock_path, legacy_paths=ecosystems)
        if lock.inputs != profile.inputs_digest:
            raise ProfileError(
                f"{profile.lock_path}: stale lock: {profile.path} changed since it was locked",
                hint=f"run `mirrorctl lock {profile.name}` and `mirrorctl snapshot {profile.name}` again",
            )
        locks.append((profile.name, lock, data))
    return locks


@bundle_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (replaced atomically).")],
    profiles: Annotated[list[str] | None, typer.Argument(help="Profiles to carry (default: all).")] = None,
    sequence: Annotated[
        int | None, typer.Option("--sequence", help="Sequence number (default: last exported + 1).")
    ] = None,
    expires_in: Annotated[
        float | None,
        typer.Option("--expires-in", help="Refuse to import after this many DAYS.", metavar="DAYS"),
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            help="The inside's state file (`mirrorctl state export`): write a delta of only the blobs it lacks.",
            metavar="STATE",
        ),
    ] = None,
    chunk_size: Annotated[
        str | None,
        typer.Option(
            "--chunk-size",
            help="Write FILE.part0001, ... of at most this size (K, M, G suffixes) and an index FILE.parts.json.",
            metavar="SIZE",
        ),
    ] = None,
) -> None:
    """Write a signed bundle of the profiles' locks and every blob they need (run snapshot first).

    With --since, a delta: complete locks, SBOM and manifest, but only the blobs the inside does not hold.

    Example: mirrorctl bundle export --out web.bundle --expires-in 30 web

    Example: mirrorctl bundle export --since inside.state --chunk-size 4G --out /media/usb/web.bundle web
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    progress = obj.progress()

    def run() -> ExportReport:
        from mirrorctl.crossing.bundle.export import export_bundle

        if settings.signing_key is None:
            where = settings.config_path or "mirrorctl.toml"
            raise UserError(
                f"{where}: no signing key configured ([signing] key = ...)",
                hint="run `mirrorctl key generate --out keys/mirrorctl.key`, set [signing] key to that path",
            )
        if expires_in is not None and expires_in <= 0:
            raise UserError(f"--expires-in must be a positive number of days, got {expires_in}")
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + timedelta(days=expires_in) if expires_in is not None else None
        size = parse_size(chunk_size) if chunk_size is not None else None
        base = None
        if since is not None:
            from mirrorctl.crossing.signing import load_public_key

            base = read_state(since, [load_public_key(k) for k in settings.trusted_keys])
            _describe_state(base)
        return export_bundle(
            collect_locks(settings, obj.runtime.ecosystems, list(profiles or [])),
            obj.runtime.store,
            settings.signing_key,
            out,
            sequence=sequence,
            expires=expires,
            now=now,
            since=base,
            chunk_size=size,
            progress=progress,
            ecosystems=obj.runtime.ecosystems,
        )

    from mirrorctl.crossing.bundle.chunks import parse_size
    from mirrorctl.crossing.bundle.state import read_state

    report = run_sync(run, obj)
    where = f"{report.index} + {len(report.parts)} part(s)" if report.index else str(report.path)
    typer.echo(
        f"wrote {where} ({report.size} bytes): {report.kind} bundle {report.bundle_id}, lineage {report.lineage}, "
        f"sequence {report.sequence}, profiles {', '.join(report.profiles)}, {report.artifacts} artifacts, "
        f"{report.blobs} blobs" + (f", expires {report.expires}" if report.expires else "")
    )
    if report.base_state is not None:
        typer.echo(
            f"  delta: carries {report.blobs} blob(s) ({report.carried_bytes} bytes); "
            f"{report.expected_blobs} expected from the inside (state {report.base_state})"
        )


def _describe_state(state: InsideState) -> None:
    signer = (
        f"signed by {state.signer}" + (" (a [trust] key here)" if state.signer_trusted else " (not a [trust] key here)")
        if state.signer
        else "unsigned"
    )
    typer.echo(
        f"base: state {state.digest} ({signer}), written {state.created:%Y-%m-%dT%H:%M:%SZ}, "
        f"{len(state.blobs)} blobs; it only decides what to leave out",
        err=True,
    )


@bundle_app.command("verify")
def verify(
    ctx: typer.Context,
    bundle: Annotated[
        Path, typer.Argument(help="The bundle file, or a chunked bundle's index or any part (nothing is imported).")
    ],
    from_dirs: Annotated[
        list[Path] | None,
        typer.Option("--from", help="A folder holding parts of a chunked bundle; repeatable, any order."),
    ] = None,
) -> None:
    """Check a bundle's signature against [trust] keys, every member's size and sha256, and its locks.

    Example: mirrorctl bundle verify /media/usb/web.bundle

    Example: mirrorctl bundle verify /media/a/web.bundle.parts.json --from /media/b
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    progress = obj.progress()

    def run() -> VerifiedManifest:
        from mirrorctl.crossing.bundle.chunks import resolve_bundle
        from mirrorctl.crossing.bundle.verify import verify_bundle
        from mirrorctl.crossing.signing import load_trusted_keys
        from mirrorctl.crossing.trust_gate import TrustGate

        keys = load_trusted_keys(settings.trusted_keys, config=settings.config_path)
        source = resolve_bundle(bundle, list(from_dirs or ()), progress=progress)
        now = datetime.now(UTC)
        # As import judges it: keys that rotations brought into the store, revocations; nothing is written.
        store = obj.runtime.store
        gate = TrustGate(store, keys, source, now=now)
        # The store is only read: a delta's locks and SBOM carried as line deltas are rebuilt from its copies.
        verified = verify_bundle(
            source, gate.keys, now, ecosystems=obj.runtime.ecosystems, progress=progress, store=store,
            like_import=True,
        )
        gate.check(verified.manifest, verified.signer, progress)
        return verified

    from mirrorctl.crossing.bundle.manifest import format_time

    v = run_sync(run, obj)
    m = v.manifest
    typer.echo(f"OK {bundle}")
    typer.echo(f"  bundle-id  {m.bundle_id}")
    typer.echo(f"  signed by  {v.signer.key_id} ({v.signer.path})")
    typer.echo(f"  sequence   {m.sequence}")
    typer.echo(f"  created    {format_time(m.created)}")
    typer.echo(f"  expires    {format_time(m.expires) if m.expires else 'never'}")
    typer.echo(f"  profiles   {', '.join(sorted(m.profiles))}")
    typer.echo(f"  artifacts  {len(v.artifacts)} in {len(m.files)} files, {m.total_size} bytes")
    if m.base is not None:
        typer.echo(
            f"  delta      against state {m.base.state_sha256} (sequence {m.base.sequence}); "
            f"{m.expected.count if m.expected else 0} blob(s) expected from the inside store, checked at import"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(bundle_app, name="bundle")
