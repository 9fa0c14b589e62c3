"""Import side of sequences and reissues: what was imported last per lineage, and whether a bundle is it again.

The outside keeps a lineage's sequence when it exports the same selection again (a *reissue*, manifest field
``reissues``: :mod:`.manifest`). Two bundles are then one *issue*: the first issue's bundle id
(``Manifest.issue``) is the same, and so must be their locks (``profiles``, each lock's sha256), which the
importer checks rather than trusts. Importing one issue after the other is a no-op when its view is served, and
never a rollback; a bundle of an older sequence is refused naming the bundle that superseded it, from the record
each import leaves in the store's ``state/import.json``::

    {"lineages": {"<lineage>": {"sequence": 4, "bundle-id": "<uuid>", "issue": "<uuid>",
                                "imported": "2026-03-01T12:00:00Z", "manifest-sha256": "<hex>",
                                "profiles-sha256": "<hex>"}}}

A store written before these fields has only ``sequence`` and ``bundle-id``; the rest is then read from the view
of that bundle (its ``created`` is the import time, its ``bundle-manifest.json`` the signed manifest).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mirrorctl.errors import BundleRefused
from mirrorctl.inside.store import Store, View

from .delta import IMPORT_STATE, lineage_history
from .manifest import Manifest, format_time, parse_manifest


@dataclass(frozen=True, slots=True)
class Imported:
    """The newest bundle a lineage imported: what a rollback refusal names, and what a reissue is compared with."""

    sequence: int
    bundle_id: str | None
    issue: str | None
    imported: str | None  # UTC time of the import
    manifest_sha256: str | None
    profiles_sha256: str | None

    def describe(self) -> str:
        digest = f", manifest sha256 {self.manifest_sha256[:16]}…" if self.manifest_sha256 else ""
        when = f", imported {self.imported}" if self.imported else ", imported at a time this store did not record"
        return f"bundle {self.bundle_id} (sequence {self.sequence}{digest}{when})"


def profiles_digest(profiles: Mapping[str, str]) -> str:
    """sha256 of a view's locks (profile -> lock sha256), as compact sorted JSON."""
    return hashlib.sha256(json.dumps(dict(sorted(profiles.items())), separators=(",", ":")).encode()).hexdigest()


def manifest_profiles(manifest: Manifest) -> dict[str, str]:
    return {name: p.sha256 for name, p in manifest.profiles.items()}


def issue_of_view(store: Store, view: View) -> str:
    """The first issue of the bundle ``view`` was imported from (its signed manifest, kept beside the view)."""
    try:
        return parse_manifest((store.root / "views" / view.view_id / "bundle-manifest.json").read_bytes()).issue
    except (OSError, BundleRefused):  # a view from before manifests were kept: its bundle is its own issue
        return view.bundle_id


def _view_of(store: Store, bundle_id: str | None) -> View | None:
    if bundle_id is None:
        return None
    current = store.current_view()
    if current is not None and current.bundle_id == bundle_id:
        return current
    for path in sorted((store.root / "views").glob("*/view.json")):
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if doc.get("bundle-id") == bundle_id:
            return View(doc["view-id"], bundle_id, int(doc["sequence"]), doc["lineage"], doc["created"],
                        doc["profiles"], ())  # fmt: skip
    return None


def imported_record(store: Store, lineage: str) -> Imported | None:
    """The newest import of ``lineage`` (None when there was none)."""
    seq, bundle_id = lineage_history(store, lineage)
    if seq < 0:
        return None
    rec: dict[str, Any] = store.read_state(IMPORT_STATE).get("lineages", {}).get(lineage, {})
    if rec.get("bundle-id") == bundle_id and "issue" in rec:
        return Imported(seq, bundle_id, rec["issue"], rec.get("imported"), rec.get("manifest-sha256"),
                        rec.get("profiles-sha256"))  # fmt: skip
    view = _view_of(store, bundle_id)
    if view is None:
        return Imported(seq, bundle_id, bundle_id, None, None, None)
    try:
        digest: str | None = hashlib.sha256(
            (store.root / "views" / view.view_id / "bundle-manifest.json").read_bytes()
        ).hexdigest()
    except OSError:
        digest = None
    return Imported(seq, bundle_id, issue_of_view(store, view), view.created, digest, profiles_digest(view.profiles))


def record_entry(manifest: Manifest, manifest_bytes: bytes, now: datetime) -> dict[str, Any]:
    """What ``state/import.json`` keeps of an import for its lineage."""
    return {
        "sequence": manifest.sequence,
        "bundle-id": manifest.bundle_id,
        "issue": manifest.issue,
        "imported": format_time(now),
        "manifest-sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "profiles-sha256": profiles_digest(manifest_profiles(manifest)),
    }


def refuse_other_content(manifest: Manifest, other: str, profiles_sha256: str | None) -> None:
    """A bundle of the same issue as ``other`` must carry the same locks; refuse it otherwise."""
    if profiles_sha256 is not None and profiles_digest(manifest_profiles(manifest)) != profiles_sha256:
        raise BundleRefused(
            f"{manifest.bundle_id}: is sequence {manifest.sequence} of lineage {manifest.lineage} issued as bundle "
            f"{manifest.issue}, as {other} is, but carries other locks: a reissue is the same selection",
            hint="the outside exported it wrongly; export the change again (it takes the next sequence)",
        )


def same_issue_served(store: Store, manifest: Manifest, current: View | None) -> bool:
    """True when ``current`` was imported from another bundle of the same issue as ``manifest`` (checked to carry
    the same locks; refused otherwise)."""
    if current is None or current.bundle_id == manifest.bundle_id:
        return False
    if (current.lineage, current.sequence) != (manifest.lineage, manifest.sequence):
        return False
    if issue_of_view(store, current) != manifest.issue:
        return False
    refuse_other_content(manifest, f"the served bundle {current.bundle_id}", profiles_digest(current.profiles))
    return True
