"""The inside's trust decisions for one import: which keys may sign, what rotations and revocations a bundle
brings, and what the store remembers afterwards.

Used by the importer in three steps, all under the store's exclusive lock::

    gate = TrustGate(store, configured_keys, bundle, now=now)   # reads the key statements at the front of
                                                               # the bundle, walks rotation chains
    BundleReader(bundle, gate.keys).read_manifest(...)         # the signature, now possibly by a new key
    gate.check(manifest, signer, progress)                     # lineage binding, revocations, expiry override
    ...                                                        # import commits
    gate.commit(manifest, signer, progress)                    # store state + trust/keys, audited

Rules:

* a lineage is bound to one current key: its first key (a configured key whose id is the lineage) until a
  rotation statement signed by the current key names a successor; a bundle of lineage L signed by any other key
  is refused, and a key that was rotated away is refused naming the rotation;
* a rotation statement must be signed by the lineage's current, unrevoked key; one signed by any other key
  (unknown, superseded, revoked) is refused, as is a gap or a conflicting statement with an index already used;
* a revocation statement must be signed by a key this store trusts (configured, or ever a lineage key) that is
  not revoked; a bundle that carries a revocation of its own signing key is refused;
* a revoked key's bundles are refused naming the key, the reason and how to recover.

The configured ``[trust] keys`` are read-only: what rotations bring in is written to ``trust/keys/<id>.pub``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirrorctl.crossing.signing import TrustedKey, load_public_key, load_trusted_keys
from mirrorctl.crossing.trust import (
    KEYS_DIR,
    MAX_STATEMENT_SIZE,
    MAX_STATEMENTS,
    MEMBER,
    STATE,
    Revocation,
    Rotation,
    format_time,
    parse_statements,
    read_state,
)
from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store, atomic_write
from mirrorctl.progress import Progress

if TYPE_CHECKING:
    from mirrorctl.crossing.bundle.manifest import Manifest

_RECOVER = (
    "lineage {lineage} has no other key: generate a new key outside (`mirrorctl key generate`), carry its .pub "
    "inside through a channel you trust, add it to [trust] keys in mirrorctl.toml and export with it "
    "(its bundles start a new lineage)"
)


def read_carried(bundle: Path) -> dict[str, bytes]:
    """The ``keys/*`` members right after the manifest's signature, size-capped.

    Read before the manifest is verified because a rotation brings the key that verifies it; nothing read here
    is trusted until :meth:`TrustGate.check` finds each member listed with its sha256 in the signed manifest.
    Damaged framing is refused here, as the bundle reader would (:mod:`mirrorctl.crossing.bundle.container`);
    anything else odd is left for the bundle reader to refuse with its own message."""
    # Imported here: the bundle package imports this module (the importer), so a top-level import is circular.
    from mirrorctl.crossing.bundle.container import ContainerReader

    out: dict[str, bytes] = {}
    try:
        # bundle.open, not open(bundle): a chunked bundle (bundle/chunks.py) opens as its concatenated parts
        with bundle.open("rb") as raw:
            tar = ContainerReader(raw, str(bundle))
            position = 0
            while (member := tar.next()) is not None:
                position += 1
                if position <= 2:
                    continue  # manifest.json and its signature: the bundle reader checks them
                if not MEMBER.match(member.name) or len(out) >= MAX_STATEMENTS:
                    break
                if not member.is_file or member.size > MAX_STATEMENT_SIZE:
                    raise BundleRefused(
                        f"{bundle}: {member.name} is not a regular file of at most {MAX_STATEMENT_SIZE} bytes"
                    )
                if member.name in out:
                    raise BundleRefused(f"{bundle}: member {member.name} appears twice")
                out[member.name] = tar.read_all(member, MAX_STATEMENT_SIZE)
    except OSError:
        return {}
    return out


class TrustGate:
    def __init__(
        self,
        store: Store,
        configured: Sequence[TrustedKey],
        bundle: Path,
        *,
        now: datetime,
        accept_expired_until: datetime | None = None,
    ) -> None:
        if not configured:
            load_trusted_keys(())  # raises the UserError that explains how to configure trust
        self.store, self.bundle, self.now = store, bundle, now
        self.accept_expired_until = accept_expired_until
        self.state = read_state(store)
        self.configured = {k.key_id: k for k in configured}
        self.lineages: dict[str, dict[str, Any]] = {k: dict(v) for k, v in self.state.get("lineages", {}).items()}
        self.revoked: dict[str, dict[str, Any]] = dict(self.state.get("revoked", {}))
        self.carried = read_carried(bundle)
        self.rotations, self.revocations = parse_statements(bundle, self.carried)
        self.warnings: list[str] = []
        self._new_revocations: list[Revocation] = []
        # key id -> key, with the lineage each key signs for; every key the store ever trusted stays here so
        # that a superseded or revoked key's bundle is recognised and refused by name, not as "unknown".
        self._keys: dict[str, TrustedKey] = {}
        for lineage, rec in self.lineages.items():
            for kid in rec.get("keys", []):
                key = self._stored_key(kid, lineage)
                if key is not None:
                    self._keys[kid] = key
        for kid, key in self.configured.items():
            self._keys.setdefault(kid, key)
        self._planned: dict[str, list[Rotation]] = {}
        self._planned = self._walk_rotations()

    def __enter__(self) -> TrustGate:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def keys(self) -> list[TrustedKey]:
        return list(self._keys.values())

    # --- lineages -----------------------------------------------------------------------------------------
    def _stored_key(self, kid: str, lineage: str) -> TrustedKey | None:
        """A lineage's key: from [trust] keys, or from trust/keys when a rotation brought it. None for a first
        key that was removed from [trust] keys: the operator stopped trusting it."""
        configured = self.configured.get(kid)
        if configured is not None:
            return TrustedKey(kid, configured.public_key, configured.path, lineage)
        path = self.store.root / KEYS_DIR / f"{kid}.pub"
        if kid == lineage and not path.exists():
            return None
        try:
            key = load_public_key(path)
        except UserError as exc:
            raise BundleRefused(
                f"{path}: key {kid} of lineage {lineage} cannot be read ({exc.message})",
                hint="restore the store's trust/keys folder from a backup",
            ) from None
        if key.key_id != kid:
            raise BundleRefused(f"{path}: holds key {key.key_id}, not {kid}; the store's trust folder was changed")
        return TrustedKey(kid, key.public_key, path, lineage)

    def current_key(self, lineage: str) -> str | None:
        """The key that signs for ``lineage`` now (after this bundle's rotations), or None if it is unknown."""
        planned = self._planned.get(lineage)
        if planned:
            return planned[-1].new_key
        rec = self.lineages.get(lineage)
        if rec is not None:
            return str(rec["key"])
        return lineage if lineage in self.configured else None

    def _lineage_of(self, kid: str) -> str | None:
        for lineage, rec in self.lineages.items():
            if kid in rec.get("keys", []):
                return lineage
        return None

    def _walk_rotations(self) -> dict[str, list[Rotation]]:
        planned: dict[str, list[Rotation]] = {}
        for rot in sorted(self.rotations, key=lambda r: (r.lineage, r.index)):
            where = f"{self.bundle}: {rot.member}"
            rec = self.lineages.get(rot.lineage, {})
            applied: list[dict[str, Any]] = list(rec.get("rotations", []))
            new = planned.setdefault(rot.lineage, [])
            if rot.index <= len(applied):
                if applied[rot.index - 1]["sha256"] != rot.sha256:
                    raise BundleRefused(
                        f"{where}: conflicts with rotation {rot.index} of lineage {rot.lineage} already accepted "
                        f"here ({applied[rot.index - 1]['from']} -> {applied[rot.index - 1]['to']})",
                        hint="two different rotations were signed for one lineage: the old key may be compromised",
                    )
                continue
            expected = len(applied) + len(new) + 1
            if rot.index != expected:
                raise BundleRefused(
                    f"{where}: rotation {rot.index} of lineage {rot.lineage}, but rotation {expected} is missing",
                    hint="export again with the outside store that holds the whole chain",
                )
            current = new[-1].new_key if new else self.current_key(rot.lineage)
            if current is None:
                raise BundleRefused(
                    f"{where}: rotates lineage {rot.lineage}, which no trusted key here starts",
                    hint="the lineage's first key must be in [trust] keys",
                )
            if rot.old_key != current:
                raise BundleRefused(
                    f"{where}: signed by key {rot.old_key}, which is not the current key {current} "
                    f"of lineage {rot.lineage}; a rotation must be signed by the lineage's current key",
                    hint="this statement was not made by the key this store trusts; do not import the bundle",
                )
            self._refuse_revoked(rot.old_key, f"{where}: signed by revoked key {rot.old_key}", rot.lineage)
            signer = new[-1].new_trusted_key(self.bundle) if new else self._keys.get(current)
            if signer is None or not signer.verifies(rot.data, rot.signature):
                raise BundleRefused(
                    f"{where}: signature does not verify with key {rot.old_key}",
                    hint="the statement was changed or was not signed by the lineage's current key",
                )
            if rot.new_key in self.revoked:
                raise BundleRefused(f"{where}: rotates to key {rot.new_key}, which is revoked here")
            if rot.new_key in self._keys and self._lineage_of(rot.new_key) is not None:
                raise BundleRefused(f"{where}: key {rot.new_key} already belongs to a lineage here")
            new.append(rot)
        for new in planned.values():
            for rot in new:
                self._keys[rot.new_key] = rot.new_trusted_key(self.bundle)
        return {k: v for k, v in planned.items() if v}

    # --- checks -------------------------------------------------------------------------------------------
    def _refuse_revoked(self, kid: str, message: str, lineage: str | None) -> None:
        rec = self.revoked.get(kid)
        if rec is None:
            return
        origin = "locally" if rec.get("source") == "local" else f"by a statement of key {rec.get('signer')}"
        successor = self.current_key(lineage) if lineage else None
        hint = (
            f"import a bundle signed by lineage {lineage}'s current key {successor}"
            if successor and successor != kid and successor not in self.revoked
            else _RECOVER.format(lineage=lineage or kid)
        )
        raise BundleRefused(
            f"{message} (revoked {origin} on {rec.get('time', '?')}: {rec.get('reason', 'no reason given')})",
            hint=hint,
        )

    def check(self, manifest: Manifest, signer: TrustedKey, progress: Progress) -> None:
        """Refuse unless ``signer`` is the current, unrevoked key of the manifest's lineage and every statement
        carried is listed in the signed manifest and valid. Nothing is written except the audit of an expiry
        override."""
        listed = {f.path: f for f in manifest.files if f.path.startswith("keys/")}
        for name, data in self.carried.items():
            entry = listed.get(name)
            if entry is None or entry.sha256 != hashlib.sha256(data).hexdigest():
                raise BundleRefused(f"{self.bundle}: key statement {name} is not listed in the signed manifest")
        missing = sorted(set(listed) - set(self.carried))
        if missing:
            raise BundleRefused(
                f"{self.bundle}: {missing[0]} is listed in the manifest but not right after its signature",
                hint="key statements come first in a bundle; this one was repacked",
            )
        lineage = manifest.lineage
        for rot in self.rotations:
            if rot.lineage != lineage:
                raise BundleRefused(f"{self.bundle}: {rot.member} rotates lineage {rot.lineage}, not {lineage}")
        kid = signer.key_id
        self._refuse_revoked(kid, f"{self.bundle}: signed by revoked key {kid}", lineage)
        current = self.current_key(lineage)
        if current != kid:
            rotation = self._rotation_away_from(lineage, kid)
            if rotation is not None:
                raise BundleRefused(
                    f"{self.bundle}: signed by key {kid}, which lineage {lineage} rotated away from: {rotation}; "
                    f"its current key is {current}",
                    hint=f"export with the current key {current}; a bundle signed by an old key is never imported",
                )
            raise BundleRefused(
                f"{self.bundle}: lineage {lineage} is bound to key {current}, but the bundle is signed by key {kid}",
                hint="a lineage changes keys only by a rotation statement signed by its current key",
            )
        for rev in self.revocations:
            self._check_revocation(rev, kid)
        self._expiry_override(manifest, progress)

    def _rotation_away_from(self, lineage: str, kid: str) -> str | None:
        for rec in self.lineages.get(lineage, {}).get("rotations", []):
            if rec["from"] == kid:
                return (
                    f"rotation {rec['index']} ({kid} -> {rec['to']}) accepted {rec.get('time', '?')} "
                    f"with bundle {rec.get('bundle-id', '?')}"
                )
        for rot in self._planned.get(lineage, []):
            if rot.old_key == kid:
                return f"rotation {rot.index} ({kid} -> {rot.new_key}) in this bundle's {rot.member}"
        return None

    def _check_revocation(self, rev: Revocation, bundle_signer: str) -> None:
        where = f"{self.bundle}: {rev.member}"
        if rev.key in self.revoked:
            return  # already revoked here (locally or by an earlier bundle): nothing new
        signer = self._keys.get(rev.signer)
        if signer is None:
            raise BundleRefused(
                f"{where}: signed by key {rev.signer}, which this store does not trust",
                hint="a revocation is accepted only from a key in [trust] keys or a lineage key of this store",
            )
        self._refuse_revoked(rev.signer, f"{where}: signed by revoked key {rev.signer}", signer.lineage)
        if not signer.verifies(rev.data, rev.signature):
            raise BundleRefused(f"{where}: signature does not verify with key {rev.signer}")
        if rev.key == bundle_signer:
            raise BundleRefused(
                f"{where}: revokes key {rev.key}, which signed this very bundle",
                hint="export again with another key; nothing signed by a revoked key is imported",
            )
        self._new_revocations.append(rev)

    def _expiry_override(self, manifest: Manifest, progress: Progress) -> None:
        # The bundle reader only lets an expired bundle through with --accept-expired-until; say so loudly.
        if manifest.expires is None or manifest.expires >= self.now or self.accept_expired_until is None:
            return
        past = int((self.now - manifest.expires).total_seconds())
        message = (
            f"EXPIRED BUNDLE ACCEPTED by --accept-expired-until {format_time(self.accept_expired_until)}: "
            f"bundle {manifest.bundle_id} expired at {format_time(manifest.expires)}, {_span(past)} before the "
            f"local clock ({format_time(self.now)})"
        )
        self.warnings.append(message)
        progress.note("WARNING: " + message)
        audit.record(
            self.store, "expiry-override", progress,
            bundle=self.bundle.name, **{"bundle-id": manifest.bundle_id, "accepted-until":
                                        format_time(self.accept_expired_until)},
            expires=format_time(manifest.expires), clock=format_time(self.now), **{"seconds-past-expiry": past},
            result="ok",
        )

    # --- commit -------------------------------------------------------------------------------------------
    def commit(self, manifest: Manifest, signer: TrustedKey, progress: Progress) -> None:
        """After the import committed: remember the lineage's key, accepted rotations and revocations."""
        lineage = manifest.lineage
        now = format_time(self.now)
        lineages = {k: dict(v) for k, v in self.lineages.items()}
        changed = lineage not in lineages
        rec = lineages.setdefault(lineage, {"key": lineage, "keys": [lineage], "rotations": []})
        events: list[dict[str, Any]] = []
        notes: list[str] = []
        for rot in self._planned.get(lineage, []):
            atomic_write(self.store.root / KEYS_DIR / f"{rot.new_key}.pub", rot.new_public_pem.encode())
            rec["key"] = rot.new_key
            rec["keys"] = [*rec["keys"], rot.new_key]
            rec["rotations"] = [
                *rec["rotations"],
                {"index": rot.index, "from": rot.old_key, "to": rot.new_key, "sha256": rot.sha256,
                 "bundle-id": manifest.bundle_id, "time": now},
            ]
            changed = True
            events.append({"lineage": lineage, "index": rot.index, "old-key": rot.old_key, "new-key": rot.new_key,
                           "statement-sha256": rot.sha256})
            notes.append(f"key rotation accepted: lineage {lineage} now signed by key {rot.new_key} "
                                 f"(was {rot.old_key}); bundles signed by {rot.old_key} are refused from now on")
        revoked = dict(self.revoked)
        for rev in self._new_revocations:
            revoked[rev.key] = {"reason": rev.reason, "time": now, "source": "statement", "signer": rev.signer,
                                "bundle-id": manifest.bundle_id, "sha256": rev.sha256}
            changed = True
            notes.append(f"key {rev.key} revoked by a statement of key {rev.signer}: {rev.reason}")
        if changed:
            state = read_state(self.store)
            self.store.write_state(STATE, {**state, "lineages": lineages, "revoked": revoked})
        for fields in events:
            audit.record(self.store, "key-rotation", progress, bundle=self.bundle.name,
                         **{"bundle-id": manifest.bundle_id}, **fields, result="ok")
        for rev in self._new_revocations:
            audit.record(self.store, "key-revoke", progress, key=rev.key, reason=rev.reason, source="statement",
                         signer=rev.signer, bundle=self.bundle.name, **{"bundle-id": manifest.bundle_id}, result="ok")
        for note in notes:
            progress.note(note)
        self.warnings.extend(notes)


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
