"""``bundle verify --since STATE``: check a bundle outside, before the media leaves, against the inside's state.

Outside there is no inside store: a delta's locks and SBOM travel as line deltas against the inside's copies,
and the blobs it leaves out are the inside's. The state file the delta was exported against
(``mirrorctl state export``, :mod:`.state`) carries both what the inside holds (its blobs, with sizes) and the
copies the line deltas apply to (its ``bases``), so everything import would check can be checked here except
what only the inside knows (its trust decisions: rotations and revocations, :mod:`mirrorctl.crossing.trust_gate`,
and whether its store still holds what the state says):

1. the signature, with the keys given (``[trust] keys`` outside, else the public half of ``[signing] key``);
2. that the state is the one the delta names (``base.state-sha256``); a wrong state file is named with the
   digest the delta wants and what to do, before the members are read;
3. every member's size and sha256, as :meth:`.verify.BundleReader.read_members` checks them;
4. each line delta applied to the state's copy gives exactly the size and sha256 the signed manifest lists;
5. the locks, their artifacts and blobs (:func:`.verify.check_contents`), and every blob the delta expects from
   the inside listed in the state with the lock's size;
6. the rollback rules import applies to the lineage the state records (a full bundle too).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mirrorctl.crossing.signing import TrustedKey, key_id, load_private_key
from mirrorctl.crossing.trust import outgoing_statements
from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside.store import Store
from mirrorctl.progress import SILENT, Progress

from .manifest import KIND_DELTA, Manifest, format_time
from .verify import (
    ArtifactValidator,
    BaseReader,
    BundleReader,
    VerifiedManifest,
    check_contents,
    expected_blobs,
    rebuild_files,
)

if TYPE_CHECKING:
    from .state import InsideState


def state_bases(state: InsideState) -> BaseReader:
    """The copies a state file carries, found by digest; only those the state also lists as blobs of the inside
    (import rebuilds from its store's blob, so a copy the store does not hold would not rebuild there)."""
    by_sha = {hashlib.sha256(data).hexdigest(): data for data in state.bases.values()}

    def read(sha256: str, size: int) -> bytes | None:
        data = by_sha.get(sha256)
        return data if data is not None and state.blobs.get(sha256) == size else None

    return read


def _state_label(state: InsideState) -> str:
    return f"{state.path or 'the state file'} (state {state.digest[:16]}…, written {format_time(state.created)})"


def check_state_matches(
    path: Path, manifest: Manifest, state: InsideState, issues: Mapping[str, str] | None = None
) -> None:
    """Refuse, before any member is read, a state file that is not the one ``manifest`` (a delta) was made
    against, and any bundle import would refuse against the lineage the state records. ``issues`` (bundle id ->
    its first issue, from the outside's export records) tells a reissue of the bundle the state names."""
    rec = state.lineages.get(manifest.lineage)
    base = manifest.base
    if manifest.kind == KIND_DELTA:
        assert base is not None
        if base.state_sha256 != state.digest:
            raise UserError(
                f"{_state_label(state)}: is not the state delta {manifest.bundle_id} was exported against: that "
                f"was state {base.state_sha256} (lineage {base.lineage} at sequence {base.sequence})",
                hint="pass the state file `bundle export --since` read (it printed that sha256), or export the "
                f"delta again against this one: mirrorctl bundle export --since {state.path or 'STATE'} --out FILE",
            )
        if rec is None or (rec.sequence, rec.bundle_id) != (base.sequence, base.bundle_id):
            # The digest matches, so the state is the one named; a base that disagrees with it was made wrongly.
            raise BundleRefused(
                f"{path}: manifest.json: base says lineage {base.lineage} at sequence {base.sequence} (bundle "
                f"{base.bundle_id}), the state it names records "
                + (f"sequence {rec.sequence} (bundle {rec.bundle_id})" if rec else "nothing of that lineage"),
                hint="the bundle was made wrongly or tampered with; export the delta again",
            )
        absent = [r for r in manifest.rebuilt if state_bases(state)(r.base_sha256, r.base_size) is None]
        if absent:
            listed = ", ".join(f"{r.path} (blob {r.base_sha256[:16]}…, {r.base_size} bytes)" for r in absent)
            raise BundleRefused(
                f"{path}: carries line deltas against copies {_state_label(state)} does not hold: {listed}",
                hint="the bundle was made wrongly or tampered with; export the delta again --since this state",
            )
        return
    if rec is None:
        return  # the first bundle of this lineage the inside will see
    if manifest.sequence == rec.sequence and rec.bundle_id is not None:
        if (issues or {}).get(rec.bundle_id, rec.bundle_id) == manifest.issue:
            return  # the same issue as the bundle the inside holds: import takes it as that bundle (a no-op)
    if manifest.sequence < rec.sequence or (manifest.sequence == rec.sequence and rec.bundle_id != manifest.bundle_id):
        older = manifest.sequence < rec.sequence
        raise BundleRefused(
            f"{path}: import would refuse it as a rollback: sequence {manifest.sequence} of lineage "
            f"{manifest.lineage} is {'older than' if older else 'the same as'} the inside's, which "
            f"{_state_label(state)} records at sequence {rec.sequence} (bundle {rec.bundle_id})",
            hint="export again (the next sequence is taken by default), or leave --sequence out",
        )


def verify_against_state(
    path: Path,
    trusted_keys: Sequence[TrustedKey],
    now: datetime,
    state: InsideState,
    *,
    ecosystems: Mapping[str, ArtifactValidator] | None = None,
    progress: Progress = SILENT,
    issues: Mapping[str, str] | None = None,
) -> VerifiedManifest:
    """Check ``path`` as import will check it on the inside ``state`` describes; no store is read. ``issues``:
    see :func:`check_state_matches`.

    Example: ``verify_against_state(Path("team.bundle"), keys, now, read_state(Path("inside.state")))``
    """
    with BundleReader(path, trusted_keys) as reader:
        manifest, signer = reader.read_manifest(now)
        check_state_matches(path, manifest, state, issues)
        lock_bytes = reader.read_members(progress=progress)
    lock_bytes.update(rebuild_files(path, manifest, lock_bytes, state_bases(state)))
    locks = check_contents(path, manifest, lock_bytes, ecosystems)
    if manifest.kind == KIND_DELTA:
        expected = expected_blobs(manifest, locks)
        missing = [(sha, size) for sha, size in sorted(expected.items()) if state.blobs.get(sha) != size]
        if missing:
            listed = ", ".join(f"{sha[:16]}… ({size} bytes)" for sha, size in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise BundleRefused(
                f"{path}: {len(missing)} of the {len(expected)} blob(s) the delta expects from the inside are not "
                f"listed in {_state_label(state)}: {listed}{more}",
                hint="the bundle was made wrongly or tampered with; export the delta again --since this state",
            )
    return VerifiedManifest(path, manifest, signer, locks)


def signing_key_as_trusted(store: Store, signing_key: Path) -> TrustedKey:
    """The outside's own ``[signing] key`` as the key a bundle it exported must verify with, bound to the lineage
    it signs for (after a rotation, the lineage its first key started), for an outside with no ``[trust] keys``.

    Example: ``signing_key_as_trusted(rt.store, settings.signing_key)``
    """
    public = load_private_key(signing_key).public_key()
    kid = key_id(public)
    lineage, _ = outgoing_statements(store, kid)
    return TrustedKey(kid, public, signing_key, None if lineage == kid else lineage)
