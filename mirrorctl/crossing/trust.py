"""Trust over time: key rotation and revocation statements, and what each side remembers about them.

A *lineage* is named by the key id of its first key; its sequence numbers count across every key it has had.

* **Rotation** (outside, ``mirrorctl key rotate --new NEWKEY``): a statement naming the lineage, its index in the
  lineage's chain (1, 2, ...), the old key id, the new key id and the new public key, signed by the old (current)
  key. Every later bundle of the lineage carries the whole chain as ``keys/rotation-<n>.json`` plus
  ``keys/rotation-<n>.json.sig``, so an inside that missed a bundle can still walk A -> B -> C.
* **Revocation**: inside, ``mirrorctl key revoke KEYID --reason TEXT`` puts a key on the store's local list;
  with ``--sign`` (outside) it also writes a statement signed by ``[signing] key`` that every later bundle
  carries as ``keys/revocation-<n>.json`` plus ``.sig``.

Statements are canonical JSON (sorted keys, no spaces); the signature is the raw 64-byte Ed25519 signature over
those exact bytes, so ``openssl pkeyutl -verify -rawin`` checks them like the manifest. Every statement is also
listed (size and sha256) in the bundle's signed manifest.

Store layout (both sides use the same files; the configured ``[trust] keys`` are never written)::

    state/trust.json                   lineages (current key, key history, rotations applied), revoked keys,
                                       and, outside, the statements every export carries
    trust/keys/<key-id>.pub            public keys that rotations brought in (inside)
    trust/outgoing/...                 statements written by key rotate / key revoke --sign (outside)

The inside side is :class:`mirrorctl.crossing.trust_gate.TrustGate`; this module holds the statements and the outside.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirrorctl.crossing.signing import (
    SIGNATURE_SIZE,
    TrustedKey,
    key_id,
    load_any_public_key,
    load_private_key,
    public_key_from_pem,
    public_pem,
    sign,
)
from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store, atomic_write
from mirrorctl.progress import SILENT, Progress

STATE = "trust"
ROTATION_FORMAT = "mirrorctl-key-rotation"
REVOCATION_FORMAT = "mirrorctl-key-revocation"
FORMAT_VERSION = 1
MAX_STATEMENT_SIZE = 64 * 1024
MAX_STATEMENTS = 512
MAX_REASON = 500
KEYS_DIR = Path("trust") / "keys"
OUTGOING_DIR = Path("trust") / "outgoing"
# The member names a bundle may carry; the same grammar is allowed by bundle/manifest.py.
MEMBER = re.compile(r"^keys/(rotation|revocation)-([1-9][0-9]{0,5})\.json(\.sig)?$")
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: str, where: str) -> datetime:
    """A UTC time like 2026-01-31T12:00:00Z; UserError naming ``where`` otherwise."""
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except (ValueError, TypeError):
        raise UserError(f"{where}: {value!r} is not a UTC time like 2026-01-31T12:00:00Z") from None


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def check_key_id(value: str, where: str) -> str:
    if not KEY_ID.match(value):
        raise UserError(f"{where}: {value!r} is not a key id (16 lowercase hex digits)")
    return value


# --- statements -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rotation:
    """``old_key`` hands lineage ``lineage`` over to ``new_key`` (the ``index``-th rotation of the lineage)."""

    member: str
    lineage: str
    index: int
    old_key: str
    new_key: str
    new_public_pem: str
    created: str
    data: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def new_trusted_key(self, where: Path) -> TrustedKey:
        return TrustedKey(
            self.new_key, public_key_from_pem(self.new_public_pem.encode(), self.member), where, self.lineage
        )


@dataclass(frozen=True, slots=True)
class Revocation:
    """``signer`` declares ``key`` revoked for ``reason``."""

    member: str
    index: int
    key: str
    signer: str
    reason: str
    created: str
    data: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def rotation_doc(lineage: str, index: int, old: str, new: TrustedKey, created: datetime) -> bytes:
    return canonical(
        {
            "format": ROTATION_FORMAT,
            "format-version": FORMAT_VERSION,
            "lineage": lineage,
            "index": index,
            "old-key": old,
            "new-key": new.key_id,
            "new-public-key": public_pem(new.public_key),
            "created": format_time(created),
        }
    )


def revocation_doc(index: int, key: str, signer: str, reason: str, created: datetime) -> bytes:
    return canonical(
        {
            "format": REVOCATION_FORMAT,
            "format-version": FORMAT_VERSION,
            "index": index,
            "key": key,
            "signer": signer,
            "reason": reason,
            "created": format_time(created),
        }
    )


def check_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        raise UserError(
            f"--reason must be 1 to {MAX_REASON} printable characters on one line",
            hint='say why, e.g. --reason "laptop with the key was lost on 2026-03-01"',
        )
    return reason


def parse_statements(bundle: Path, carried: dict[str, bytes]) -> tuple[list[Rotation], list[Revocation]]:
    """Pair each ``keys/*.json`` with its ``.sig`` and parse it strictly; BundleRefused naming the member."""
    rotations: list[Rotation] = []
    revocations: list[Revocation] = []
    for name in sorted(carried):
        m = MEMBER.match(name)
        if m is None:
            raise BundleRefused(f"{bundle}: {name} is not a key statement member")
        if m.group(3):
            if name[: -len(".sig")] not in carried:
                raise BundleRefused(f"{bundle}: {name} has no statement {name[:-4]} beside it")
            continue
        sig = carried.get(name + ".sig")
        if sig is None:
            raise BundleRefused(f"{bundle}: key statement {name} is not signed ({name}.sig is missing)")
        if len(sig) != SIGNATURE_SIZE:
            raise BundleRefused(f"{bundle}: {name}.sig is not a 64-byte Ed25519 signature")
        where = f"{bundle}: {name}"
        try:
            doc = json.loads(carried[name].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BundleRefused(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or canonical(doc) != carried[name]:
            raise BundleRefused(f"{where}: not a canonical JSON object")
        index = int(m.group(2))
        if doc.get("format-version") != FORMAT_VERSION or doc.get("index") != index:
            raise BundleRefused(f"{where}: format-version must be {FORMAT_VERSION} and index {index}")
        try:
            if m.group(1) == "rotation":
                rotations.append(_rotation(name, doc, carried[name], sig, where))
            else:
                revocations.append(_revocation(name, doc, carried[name], sig, where))
        except (KeyError, TypeError, UserError) as exc:
            raise BundleRefused(f"{where}: malformed statement ({exc})") from None
    return rotations, revocations


def _rotation(name: str, doc: dict[str, Any], data: bytes, sig: bytes, where: str) -> Rotation:
    fields = {"format", "format-version", "lineage", "index", "old-key", "new-key", "new-public-key", "created"}
    if doc.get("format") != ROTATION_FORMAT or set(doc) != fields:
        raise BundleRefused(f"{where}: not a {ROTATION_FORMAT} statement with exactly {', '.join(sorted(fields))}")
    rot = Rotation(
        name,
        check_key_id(doc["lineage"], "lineage"),
        doc["index"],
        check_key_id(doc["old-key"], "old-key"),
        check_key_id(doc["new-key"], "new-key"),
        str(doc["new-public-key"]),
        str(doc["created"]),
        data,
        sig,
    )
    if key_id(public_key_from_pem(rot.new_public_pem.encode(), where)) != rot.new_key:
        raise BundleRefused(f"{where}: new-public-key does not have the key id {rot.new_key} it is listed with")
    if rot.old_key == rot.new_key:
        raise BundleRefused(f"{where}: rotates key {rot.old_key} to itself")
    return rot


def _revocation(name: str, doc: dict[str, Any], data: bytes, sig: bytes, where: str) -> Revocation:
    fields = {"format", "format-version", "index", "key", "signer", "reason", "created"}
    if doc.get("format") != REVOCATION_FORMAT or set(doc) != fields:
        raise BundleRefused(f"{where}: not a {REVOCATION_FORMAT} statement with exactly {', '.join(sorted(fields))}")
    rev = Revocation(
        name,
        doc["index"],
        check_key_id(doc["key"], "key"),
        check_key_id(doc["signer"], "signer"),
        str(doc["reason"])[:MAX_REASON],
        str(doc["created"]),
        data,
        sig,
    )
    if rev.key == rev.signer:
        raise BundleRefused(f"{where}: key {rev.key} revokes itself; a revocation is signed by another trusted key")
    return rev


# --- state ------------------------------------------------------------------------------------------------
def read_state(store: Store) -> dict[str, Any]:
    return store.read_state(STATE)


def revoked_keys(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(state.get("revoked", {}))


def revoke_local(store: Store, key: str, reason: str, *, progress: Progress = SILENT) -> dict[str, Any] | None:
    """Put ``key`` on this store's revocation list (audited). None when it was revoked already.

    Example: ``revoke_local(Store(root), "29ee5b8d90250a8b", "key file leaked")``"""
    check_key_id(key, "KEYID")
    reason = check_reason(reason)
    with store.exclusive():
        state = read_state(store)
        revoked = revoked_keys(state)
        if key in revoked:
            return None
        entry = {"reason": reason, "time": format_time(datetime.now(UTC)), "who": audit.who(), "source": "local"}
        revoked[key] = entry
        store.write_state(STATE, {**state, "revoked": revoked})
    audit.record(store, "key-revoke", progress, key=key, reason=reason, source="local", result="ok")
    return entry


# --- outside: rotate, sign revocations, what an export carries --------------------------------------------
@dataclass(frozen=True, slots=True)
class RotationReport:
    lineage: str
    index: int
    old_key: str
    new_key: str
    statement: Path
    signature: Path


def _outgoing(state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state.get("outgoing", {}))
    out.setdefault("rotations", {})
    out.setdefault("revocations", [])
    return out


def _chain_of(outgoing: dict[str, Any], key: str) -> tuple[str, list[dict[str, Any]], bool]:
    """(lineage of ``key``, that lineage's chain, whether ``key`` is its current key) from the outside state."""
    for lineage, chain in outgoing["rotations"].items():
        ids = [lineage] + [r["new"] for r in chain]
        if key in ids:
            return lineage, list(chain), ids[-1] == key
    return key, [], True


def rotate(
    store: Store, current_key: Path, new_key: Path, *, now: datetime, progress: Progress = SILENT
) -> RotationReport:
    """Sign a rotation statement from ``current_key`` (the ``[signing] key``) to ``new_key`` (private or
    ``.pub``); later exports signed with the new key carry it. Example:
    ``rotate(Store(root), Path("keys/a.key"), Path("keys/b.key"), now=datetime.now(UTC))``"""
    private = load_private_key(current_key)
    old = key_id(private.public_key())
    new = load_any_public_key(new_key)
    if new.key_id == old:
        raise UserError(f"{new_key}: is the current signing key {old} itself", hint="generate a new key first")
    with store.exclusive():
        state = read_state(store)
        outgoing = _outgoing(state)
        lineage, chain, current = _chain_of(outgoing, old)
        if not current:
            raise UserError(
                f"{current_key}: key {old} was already rotated away in lineage {lineage}",
                hint="set [signing] key to the lineage's newest private key and rotate from there",
            )
        used = {lineage, *(r["new"] for chain_ in outgoing["rotations"].values() for r in chain_)}
        if new.key_id in used or new.key_id in outgoing["rotations"]:
            raise UserError(f"{new_key}: key {new.key_id} was already used in a lineage; generate a fresh key")
        if new.key_id in revoked_keys(state):
            raise UserError(f"{new_key}: key {new.key_id} is revoked in this store")
        index = len(chain) + 1
        data = rotation_doc(lineage, index, old, new, now)
        sig = sign(private, data)
        base = store.root / OUTGOING_DIR / f"rotation-{lineage}-{index}.json"
        atomic_write(base, data)
        atomic_write(base.with_name(base.name + ".sig"), sig)
        entry = {"index": index, "old": old, "new": new.key_id, "sha256": hashlib.sha256(data).hexdigest()}
        outgoing["rotations"] = {**outgoing["rotations"], lineage: [*chain, entry]}
        store.write_state(STATE, {**state, "outgoing": outgoing})
    audit.record(
        store, "key-rotate", progress, lineage=lineage, index=index, **{"old-key": old, "new-key": new.key_id},
        statement=str(base), result="ok",
    )
    return RotationReport(lineage, index, old, new.key_id, base, base.with_name(base.name + ".sig"))


def sign_revocation(
    store: Store, signing_key: Path, key: str, reason: str, *, now: datetime, progress: Progress = SILENT
) -> Path:
    """Write a revocation statement of ``key`` signed by ``signing_key``; every later export carries it."""
    check_key_id(key, "KEYID")
    reason = check_reason(reason)
    private = load_private_key(signing_key)
    signer = key_id(private.public_key())
    if signer == key:
        raise UserError(
            f"{signing_key}: is key {key} itself; a revocation must be signed by another trusted key",
            hint="rotate to a new key first (mirrorctl key rotate), or revoke locally without --sign",
        )
    with store.exclusive():
        state = read_state(store)
        outgoing = _outgoing(state)
        if any(r["key"] == key for r in outgoing["revocations"]):
            raise UserError(f"key {key}: a revocation statement for it was already written")
        index = len(outgoing["revocations"]) + 1
        data = revocation_doc(index, key, signer, reason, now)
        path = store.root / OUTGOING_DIR / f"revocation-{index}.json"
        atomic_write(path, data)
        atomic_write(path.with_name(path.name + ".sig"), sign(private, data))
        entry = {"index": index, "key": key, "signer": signer, "sha256": hashlib.sha256(data).hexdigest()}
        outgoing["revocations"] = [*outgoing["revocations"], entry]
        store.write_state(STATE, {**state, "outgoing": outgoing})
    audit.record(store, "key-revoke-statement", progress, key=key, signer=signer, reason=reason, result="ok")
    return path


def outgoing_statements(store: Store, signer: str) -> tuple[str, dict[str, bytes]]:
    """(the lineage a bundle signed by ``signer`` belongs to, the statement members it carries).

    UserError when ``signer`` was rotated away or revoked here: exporting with it would only be refused inside.
    """
    state = read_state(store)
    outgoing = _outgoing(state)
    lineage, chain, current = _chain_of(outgoing, signer)
    if not current:
        newest = chain[-1]["new"]
        raise UserError(
            f"signing key {signer} was rotated to {newest} (lineage {lineage}); bundles it signs are refused inside",
            hint="set [signing] key in mirrorctl.toml to the private key of " + newest,
        )
    revoked = revoked_keys(state).get(signer)
    if revoked is None:
        revoked = next((r for r in outgoing["revocations"] if r["key"] == signer), None)
    if revoked is not None:
        raise UserError(
            f"signing key {signer} is revoked in this store ({revoked.get('reason', 'by a revocation statement')})",
            hint="generate a new key, have it added to [trust] keys inside, and set [signing] key to it",
        )
    members: dict[str, bytes] = {}
    out_dir = store.root / OUTGOING_DIR
    for entry in chain:
        src = out_dir / f"rotation-{lineage}-{entry['index']}.json"
        _carry(members, src, f"keys/rotation-{entry['index']}.json", entry["sha256"])
    for entry in outgoing["revocations"]:
        _carry(members, out_dir / f"revocation-{entry['index']}.json", f"keys/revocation-{entry['index']}.json",
               entry["sha256"])
    return lineage, members


def _carry(members: dict[str, bytes], src: Path, member: str, sha256: str) -> None:
    try:
        data, sig = src.read_bytes(), src.with_name(src.name + ".sig").read_bytes()
    except FileNotFoundError as exc:
        raise UserError(
            f"{exc.filename}: key statement missing from the store", hint="restore it from a backup"
        ) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UserError(f"{src}: key statement changed since it was written", hint="restore it from a backup")
    members[member] = data
    members[member + ".sig"] = sig
