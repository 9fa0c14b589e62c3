"""Import side of delta bundles: is the base a delta was made against present in this store?

Checked after the signature and the rollback rules, before anything is staged, so a refusal changes nothing:

1. the lineage: this store must have imported the lineage up to the base's sequence, and at exactly that
   sequence the same bundle (else the state file came from another store, or the delta went to the wrong one);
2. the blobs: every blob the manifest lists as ``expected`` must be in the store with the listed size.

Expected blobs are checked by size, not re-hashed. They were verified against a signed manifest when they came
in (the store holds nothing else), the same trust an ordinary import gives a blob it already has (it is skipped,
not re-read); re-hashing the whole base would make a small delta cost as much time as a full import.
Rot in the store is what ``mirrorctl verify`` (and ``import --repair``) are for.
"""

from __future__ import annotations

from mirrorctl.errors import BundleRefused
from mirrorctl.store import Store

from .manifest import Manifest


def check_delta_base(store: Store, manifest: Manifest, history: tuple[int, str | None]) -> None:
    """Refuse ``manifest`` (a delta) unless its base is here; ``history`` is ``lineage_history`` of its lineage."""
    base = manifest.base
    assert base is not None
    made = (
        f"delta {manifest.bundle_id} was made against state {base.state_sha256[:16]}… "
        f"(lineage {base.lineage} at sequence {base.sequence}, bundle {base.bundle_id})"
    )
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
    missing = [f for f in manifest.expected if not store.has_blob(f.sha256, f.size)]
    if missing:
        listed = ", ".join(f"{f.sha256[:16]}… ({f.size} bytes)" for f in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise BundleRefused(
            f"{made}: {len(missing)} of the {len(manifest.expected)} blob(s) it expects are not in this store: "
            f"{listed}{more}; nothing was changed",
            hint="import the full bundle instead, or export a fresh state here and a new delta outside",
        )
