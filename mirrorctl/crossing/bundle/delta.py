"""Import side of delta bundles: is the base a delta was made against present in this store?

Checked after the signature and the rollback rules, before anything is staged, so a refusal changes nothing:

1. the lineage: this store must have imported the lineage up to the base's sequence, and at exactly that
   sequence the same bundle (else the state file came from another store, or the delta went to the wrong one);
2. the copies its line deltas are against: each ``rebuilt`` entry's base blob must be in the store.

After the members are read and the locks rebuilt and checked (``verify.check_contents``, which also derives the
expected blobs from the locks and matches them with the manifest's summary), :func:`check_expected_blobs`
requires every expected blob in the store with the lock's size; it is still before anything is committed.

Expected blobs are checked by size, not re-hashed. They were verified against a signed manifest when they came
in (the store holds nothing else), the same trust an ordinary import gives a blob it already has (it is skipped,
not re-read); re-hashing the whole base would make a small delta cost as much time as a full import.
Rot in the store is what ``mirrorctl verify`` (and ``import --repair``) are for.
"""

from __future__ import annotations

from mirrorctl.errors import BundleRefused
from mirrorctl.inside.channels import served_views
from mirrorctl.inside.store import Store

from .manifest import Manifest

IMPORT_STATE = "import"  # the store state file where imports record each lineage's sequence


def lineage_history(store: Store, lineage: str) -> tuple[int, str | None]:
    """(highest sequence imported for ``lineage``, its bundle id); -1 when none.

    Every channel's view counts too (``current``'s, and the channel an import with --channel switched): it may
    be newer than the state file after a crash."""
    rec = store.read_state(IMPORT_STATE).get("lineages", {}).get(lineage, {})
    best: tuple[int, str | None] = (int(rec.get("sequence", -1)), rec.get("bundle-id"))
    for view in served_views(store):
        if view.lineage == lineage and view.sequence > best[0]:
            best = (view.sequence, view.bundle_id)
    return best


def _made(manifest: Manifest) -> str:
    base = manifest.base
    assert base is not None
    return (
        f"delta {manifest.bundle_id} was made against state {base.state_sha256[:16]}… "
        f"(lineage {base.lineage} at sequence {base.sequence}, bundle {base.bundle_id})"
    )


def check_delta_base(store: Store, manifest: Manifest, history: tuple[int, str | None]) -> None:
    """Refuse ``manifest`` (a delta) unless its base is here; ``history`` is ``lineage_history`` of its lineage."""
    base = manifest.base
    assert base is not None
    made = _made(manifest)
    seq, bundle_id = history
    if seq < 0:
        raise BundleRefused(
            f"{made}, but this store has imported nothing of lineage {base.lineage}",
            hint="import the full bundle of that lineage first, or export a state here and a new delta outside",
        )
    if seq < base.sequence or (seq == base.sequence and bundle_id != base.bundle_id):
        raise BundleRefused(
            f"{made}, but this store has lineage {base.lineage} at sequence {seq} (bundle {bundle_id}): "
            "the state file does not describe this store",
            hint="export the state of this store (`mirrorctl state export`) and make the delta against it",
        )
    absent = [r for r in manifest.rebuilt if not store.has_blob(r.base_sha256, r.base_size)]
    if absent:
        listed = ", ".join(f"{r.path} (blob {r.base_sha256[:16]}…, {r.base_size} bytes)" for r in absent)
        raise BundleRefused(
            f"{made}: it carries line deltas against copies this store does not hold: {listed}; "
            "nothing was changed",
            hint="import the full bundle instead, or export a fresh state here and a new delta outside",
        )


def check_expected_blobs(store: Store, manifest: Manifest, expected: dict[str, int]) -> None:
    """Refuse unless every blob the delta leaves out (derived from its locks) is in the store with its size."""
    missing = [(sha, size) for sha, size in sorted(expected.items()) if not store.has_blob(sha, size)]
    if missing:
        listed = ", ".join(f"{sha[:16]}… ({size} bytes)" for sha, size in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise BundleRefused(
            f"{_made(manifest)}: {len(missing)} of the {len(expected)} blob(s) it expects are not in this store: "
            f"{listed}{more}; nothing was changed",
            hint="import the full bundle instead, or export a fresh state here and a new delta outside",
        )
