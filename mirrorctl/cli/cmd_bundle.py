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
    new_sequence: Annotated[
        bool,
        typer.Option(
            "--new-sequence",
            help="Take the next sequence even when the selection is the one exported last (no reissue); the "
            "inside then refuses the earlier file as a rollback. "
            "Example: mirrorctl bundle export --new-sequence --out web.bundle web",
        ),
    ] = False,
) -> None:
    """Write a signed bundle of the profiles' locks and every blob they need (run snapshot first).

    With --since, a delta: complete locks, SBOM and manifest, but only the blobs the inside does not hold.

    Exporting the same selection as the last export (the same locks, base state and key statements; in parts for
    a smaller medium, say) reissues it: the bundle keeps that sequence and says so, and the inside takes either
    file as the same bundle.

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
            new_sequence=new_sequence,
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
    if report.reissues is not None:
        typer.echo(
            f"  reissues sequence {report.reissues.sequence}: the selection of bundle {report.reissues.bundle_id} "
            f"(exported {report.first_exported or 'earlier'}) again; the inside takes either file, once "
            "(--new-sequence to take the next sequence instead)"
        )
    if report.base_state is not None:
        typer.echo(
            f"  delta: carries {report.blobs} blob(s) ({report.carried_bytes} bytes); "
            f"{report.expected_blobs} expected from the inside (state {report.base_state})"
        )


def _describe_state(state: InsideState, role: str = "it only decides what to leave out") -> None:
    signer = (
        f"signed by {state.signer}" + (" (a [trust] key here)" if state.signer_trusted else " (not a [trust] key here)")
        if state.signer
        else "unsigned"
    )
    typer.echo(
        f"base: state {state.digest} ({signer}), written {state.created:%Y-%m-%dT%H:%M:%SZ}, "
        f"{len(state.blobs)} blobs; {role}",
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
    since: Annotated[
        Path | None,
        typer.Option(
            "--since",
            help="Outside, before the media leaves: the inside's state file the delta was exported against "
            "(`bundle export --since STATE`); checks the line deltas and expected blobs against it, not a store. "
            "Example: mirrorctl bundle verify --since /media/in/inside.state /media/out/team.bundle",
            metavar="STATE",
        ),
    ] = None,
) -> None:
    """Check a bundle's signature against [trust] keys, every member's size and sha256, and its locks.

    Inside, a delta is checked as import checks it against this store. Outside, give --since the state file the
    delta was exported against: its line deltas are applied to the state's copies and every blob it expects
    must be listed in the state (without [trust] keys outside, the [signing] key's public half checks the
    signature).

    Example: mirrorctl bundle verify /media/usb/web.bundle

    Example: mirrorctl bundle verify /media/a/web.bundle.parts.json --from /media/b

    Example: mirrorctl bundle verify --since /media/in/inside.state /media/out/team.bundle.parts.json
    """
    obj: Ctx = ctx.obj
    settings = obj.settings()
    progress = obj.progress()

    def run() -> VerifiedManifest:
        from mirrorctl.crossing.bundle.chunks import resolve_bundle
        from mirrorctl.crossing.bundle.verify import verify_bundle
        from mirrorctl.crossing.signing import load_trusted_keys
        from mirrorctl.crossing.trust_gate import TrustGate

        now = datetime.now(UTC)
        if since is not None:
            return _verify_outside(obj, since, now)
        keys = load_trusted_keys(settings.trusted_keys, config=settings.config_path)
        source = resolve_bundle(bundle, list(from_dirs or ()), progress=progress)
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

    def _verify_outside(obj: Ctx, state_path: Path, now: datetime) -> VerifiedManifest:
        from mirrorctl.crossing.bundle.against_state import signing_key_as_trusted, verify_against_state
        from mirrorctl.crossing.bundle.chunks import resolve_bundle
        from mirrorctl.crossing.bundle.export import export_records
        from mirrorctl.crossing.bundle.state import read_state
        from mirrorctl.crossing.signing import load_public_key, load_trusted_keys

        if settings.trusted_keys:
            keys = load_trusted_keys(settings.trusted_keys, config=settings.config_path)
        elif settings.signing_key is not None:
            keys = [signing_key_as_trusted(obj.runtime.store, settings.signing_key)]
        else:
            keys = load_trusted_keys((), config=settings.config_path)  # refuses, saying how to configure trust
        state = read_state(state_path, [load_public_key(k) for k in settings.trusted_keys])
        _describe_state(state, "the bundle is checked against it, as import will check it against the store")
        source = resolve_bundle(bundle, list(from_dirs or ()), progress=progress)
        issues = {r.bundle_id: r.issue for r in export_records(obj.runtime.store)}  # this side's reissues
        return verify_against_state(
            source, keys, now, state, ecosystems=obj.runtime.ecosystems, progress=progress, issues=issues
        )

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
        where = "listed in the state file; import checks the store" if since else "in this store"
        typer.echo(
            f"  delta      against state {m.base.state_sha256} (sequence {m.base.sequence}); "
            f"{m.expected.count if m.expected else 0} blob(s) expected from the inside, {where}"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(bundle_app, name="bundle")
