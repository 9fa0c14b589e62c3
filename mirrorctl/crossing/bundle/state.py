"""The inside's *state file*: what an inside store holds, so the outside can leave those blobs out of a delta.

``mirrorctl state export --out FILE`` (inside) writes a gzip-compressed JSON envelope::

    {"payload": {...}, "payload-sha256": "<hex>", "signature": null | {"key-id", "public-key", "ed25519"}}

``payload`` (canonical JSON: sorted keys, no spaces, ASCII) holds ``format`` ``mirrorctl-state``,
``format-version`` 1, ``created``, ``lineages`` (per signing lineage the last imported sequence and bundle id)
``blobs``: ``[[sha256, size], ...]`` sorted, every blob a view on disk references that is present with that
size (artifacts, and the files of each view's bundle: locks, SBOM, key statements), and ``bases``: the text of
each lock and of the SBOM the current view was imported with, by member name (``locks/web.lock``). The outside
sends a lock or the SBOM as a line delta against these (mirrorctl/crossing/bundle/linedelta.py); the inside
rebuilds from its own blob and checks the result against the signed manifest, so a wrong ``bases`` only makes the import
refuse. A state without ``bases`` (older) is read as having none.
``audit`` (when the journal has entries): ``{"entries": N, "head": sha256}``, the audit journal's head when the
state was written; it leaves the inside (signed, with a key) so ``mirrorctl audit verify --against-state FILE``
can later show a journal cut or rewritten behind it (mirrorctl/inside/audit.py). The payload's sha256 is *the
state's digest*: the outside shows it and every delta records it in ``base``.

Trust model. The outside uses a state file only to decide which blobs to leave out. A wrong or lying state can
only make the delta fail at import (a blob it leaves out is not in the store: refused, naming the blobs, nothing
changed); it can never make the inside accept a byte that its signed manifest does not vouch for, because the
inside checks the delta exactly like a full bundle, plus each left-out blob against its own store. So the
signature does not gate the delta. Every state file ``mirrorctl state export`` writes is signed all the same:
with ``[signing] key`` when the inside has one, else with the store's own *state key* (``<store>/keys/state/
state.key``, Ed25519, made on first use, never carried in a bundle: :func:`store_state_key`). The outside shows
the key id (and whether it is one of its ``[trust] keys``); inside, ``audit verify --against-state`` accepts only
a state file signed by this store's key, so an audit head kept outside in a state file cannot be forged by
editing the file.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mirrorctl.crossing.signing import TrustedKey, generate_key, key_id, load_private_key, sign
from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import newest_served_view, served_views, view_blobs
from mirrorctl.inside.store import Store, View, atomic_write

from .importer import IMPORT_STATE, lineage_history
from .manifest import SBOM_NAME, format_time, lock_member, parse_time

FORMAT = "mirrorctl-state"
FORMAT_VERSION = 1
MAX_STATE_SIZE = 256 * 1024 * 1024  # uncompressed; ~2.5 million blobs


@dataclass(frozen=True, slots=True)
class LineageRecord:
    sequence: int
    bundle_id: str | None


@dataclass(frozen=True, slots=True)
class InsideState:
    """A parsed state file. ``digest`` is the sha256 of the canonical payload; ``signer`` the key id, if signed."""

    created: datetime
    lineages: Mapping[str, LineageRecord]
    blobs: Mapping[str, int]  # sha256 -> size
    digest: str
    signer: str | None = None
    signer_trusted: bool = False
    path: Path | None = None
    bases: Mapping[str, bytes] = field(default_factory=dict)  # member name -> the inside's copy
    audit_entries: int | None = None  # the audit journal's entry count and head when written (None: not carried)
    audit_head: str | None = None


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _view_blobs(store: Store) -> dict[str, int]:
    # Every view on disk counts: gc removes the views it no longer retains, so what is left is retained.
    # Only blobs present with their size are listed: one missing or cut short must travel again.
    blobs: dict[str, int] = {}
    views = store.root / "views"
    if not views.is_dir():
        return blobs
    for folder in sorted(views.iterdir()):
        path = folder / "view.json"
        if folder.name.startswith(".") or not path.is_file():
            continue
        data = path.read_bytes()
        view = View.from_json(data, str(path), legacy_paths=store.legacy_paths(data))
        for sha, size in view_blobs(store, view).items():
            if sha in blobs:
                continue
            if size is None:  # a profile's lock: its size is the stored file's
                blob = store.blob_path(sha)
                size = blob.stat().st_size if blob.is_file() else None
            if size is not None and store.has_blob(sha, size):
                blobs[sha] = size
    return blobs


def _bases(store: Store) -> dict[str, str]:
    """The newest imported view's locks and SBOM as text (whichever channel it went to: what the next delta
    builds on), re-hashed (a damaged copy is left out: it then travels whole)."""
    view = newest_served_view(store)
    if view is None:
        return {}
    wanted = {lock_member(name): sha for name, sha in view.profiles.items()}
    manifest = store.root / "views" / view.view_id / "bundle-manifest.json"
    if manifest.is_file():
        for entry in json.loads(manifest.read_bytes()).get("files", []):
            if entry.get("path") == SBOM_NAME:
                wanted[SBOM_NAME] = str(entry["sha256"])
    out: dict[str, str] = {}
    for member, sha in sorted(wanted.items()):
        blob = store.blob_path(sha)
        try:
            data = blob.read_bytes()
            if hashlib.sha256(data).hexdigest() == sha:
                out[member] = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return out


def _lineages(store: Store) -> dict[str, LineageRecord]:
    names = set(store.read_state(IMPORT_STATE).get("lineages", {}))
    names.update(view.lineage for view in served_views(store))
    out: dict[str, LineageRecord] = {}
    for lineage in sorted(names):
        seq, bundle_id = lineage_history(store, lineage)
        if seq >= 0:
            out[lineage] = LineageRecord(seq, bundle_id)
    return out


def build_state(store: Store, now: datetime) -> dict[str, Any]:
    """The payload describing ``store`` (read under its lock by the caller, so no import is half-way)."""
    lineages = _lineages(store)
    return {
        "format": FORMAT,
        "format-version": FORMAT_VERSION,
        "created": format_time(now),
        "lineages": {
            name: {"sequence": rec.sequence, "bundle-id": rec.bundle_id} for name, rec in lineages.items()
        },
        "blobs": [[sha, size] for sha, size in sorted(_view_blobs(store).items())],
        "bases": _bases(store),
        **_audit_head(store),
    }


def _audit_head(store: Store) -> dict[str, Any]:
    try:
        head = audit.current_head(store)
    except IntegrityError:  # a damaged journal tail: `audit verify` names it; the state is still useful
        return {}
    return {} if head is None else {"audit": {"entries": head.entries, "head": head.sha256}}


STATE_KEY = Path("keys") / "state" / "state.key"


def store_state_key(store: Store, *, create: bool) -> Path | None:
    """The store's own state-signing key (``<store>/keys/state/state.key``); made when ``create`` and absent.

    Example: ``export_state(store, out, signing_key=settings.signing_key or store_state_key(store, create=True))``
    """
    path = store.root / STATE_KEY
    if path.exists():
        return path
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with store.exclusive():  # two exports at once make one key
        if not path.exists():
            generate_key(path)
    return path


def export_state(store: Store, out: Path, *, signing_key: Path | None, now: datetime | None = None) -> InsideState:
    """Write the state file of ``store`` to ``out`` (atomically); sign it if ``signing_key`` is given.

    Example: ``export_state(Store(root), Path("inside.state"), signing_key=None)``
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    out = out.absolute()
    if out.is_dir():
        raise UserError(f"{out}: is a directory", hint="give a file name, e.g. --out inside.state")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: directory does not exist")
    private = load_private_key(signing_key) if signing_key is not None else None
    with store.exclusive():
        payload = build_state(store, now)
    data = _canonical(payload)
    digest = hashlib.sha256(data).hexdigest()
    signature: dict[str, str] | None = None
    signer = None
    if private is not None:
        raw_pub = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        signer = key_id(private.public_key())
        signature = {
            "key-id": signer,
            "public-key": base64.b64encode(raw_pub).decode(),
            "ed25519": base64.b64encode(sign(private, data)).decode(),
        }
    envelope = {"payload": payload, "payload-sha256": digest, "signature": signature}
    # mtime=0: the same state gives the same bytes.
    atomic_write(out, gzip.compress(_canonical(envelope), mtime=0))
    return _parse_payload(payload, digest, signer, False, out)


def read_state(path: Path, trusted_keys: tuple[TrustedKey, ...] | list[TrustedKey] = ()) -> InsideState:
    """Parse a state file strictly. A bad digest or signature is refused (the file is damaged); an unknown signer
    is only reported (see the trust model above).

    Example: ``read_state(Path("inside.state"), load_trusted_keys(settings.trusted_keys))``
    """
    try:
        compressed = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"{path}: state file not found", hint="run `mirrorctl state export --out FILE` inside"
        ) from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a state file") from None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as gz:
            raw = gz.read(MAX_STATE_SIZE + 1)
        if len(raw) > MAX_STATE_SIZE:
            raise UserError(f"{path}: state file is larger than {MAX_STATE_SIZE} bytes uncompressed")
        envelope = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UserError(
            f"{path}: not a mirrorctl state file ({exc})", hint="write it with `mirrorctl state export` inside"
        ) from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "payload-sha256", "signature"}:
        raise UserError(f"{path}: not a mirrorctl state file (expected payload, payload-sha256, signature)")
    payload = envelope["payload"]
    digest = hashlib.sha256(_canonical(payload)).hexdigest()
    if envelope["payload-sha256"] != digest:
        raise UserError(
            f"{path}: payload does not match its payload-sha256 (damaged or edited state file)",
            hint="export the state inside again and carry the new file",
        )
    signer, trusted = None, False
    sig = envelope["signature"]
    if sig is not None:
        signer, trusted = _check_signature(path, sig, _canonical(payload), trusted_keys)
    return _parse_payload(payload, digest, signer, trusted, path)


def _check_signature(
    path: Path, sig: Any, data: bytes, trusted_keys: tuple[TrustedKey, ...] | list[TrustedKey]
) -> tuple[str, bool]:
    try:
        if not isinstance(sig, dict) or set(sig) != {"key-id", "public-key", "ed25519"}:
            raise ValueError("signature must have exactly key-id, public-key and ed25519")
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public-key"], validate=True))
        if key_id(public) != sig["key-id"]:
            raise ValueError("key-id is not the public key's id")
        public.verify(base64.b64decode(sig["ed25519"], validate=True), data)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UserError(
            f"{path}: the state file's signature does not verify ({exc or 'bad signature'})",
            hint="the file was damaged or edited after it was written; export the state inside again",
        ) from None
    return sig["key-id"], any(k.key_id == sig["key-id"] for k in trusted_keys)


def _parse_payload(payload: Any, digest: str, signer: str | None, trusted: bool, path: Path) -> InsideState:
    where = f"{path}: payload"
    keys = {"format", "format-version", "created", "lineages", "blobs"}
    if not isinstance(payload, dict) or not keys <= set(payload) <= keys | {"bases", "audit"}:
        raise UserError(
            f"{where}: expected exactly format, format-version, created, lineages, blobs (and bases, audit)"
        )
    if payload["format"] != FORMAT or payload["format-version"] != FORMAT_VERSION:
        raise UserError(
            f"{where}: format {payload['format']!r} version {payload['format-version']!r} is not "
            f"{FORMAT!r} version {FORMAT_VERSION}",
            hint="export the state with a mirrorctl version that matches this one",
        )
    created = parse_time(payload["created"], "created")
    lineages: dict[str, LineageRecord] = {}
    raw_lineages = payload["lineages"]
    if not isinstance(raw_lineages, dict):
        raise UserError(f"{where}.lineages must be an object")
    for name, rec in raw_lineages.items():
        if (
            not isinstance(rec, dict)
            or set(rec) != {"sequence", "bundle-id"}
            or not isinstance(rec["sequence"], int)
            or isinstance(rec["sequence"], bool)
            or not (rec["bundle-id"] is None or isinstance(rec["bundle-id"], str))
        ):
            raise UserError(f"{where}.lineages.{name}: expected sequence (integer) and bundle-id")
        lineages[name] = LineageRecord(rec["sequence"], rec["bundle-id"])
    blobs: dict[str, int] = {}
    raw_blobs = payload["blobs"]
    if not isinstance(raw_blobs, list):
        raise UserError(f"{where}.blobs must be a list")
    for i, item in enumerate(raw_blobs):
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and len(item[0]) == 64
            and all(c in "0123456789abcdef" for c in item[0])
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and item[1] >= 0
        )
        if not ok:
            raise UserError(f"{where}.blobs[{i}]: expected [sha256, size]")
        blobs[item[0]] = item[1]
    raw_bases = payload.get("bases", {})
    if not isinstance(raw_bases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw_bases.items()
    ):
        raise UserError(f"{where}.bases must map member names to text")
    bases = {k: v.encode("utf-8") for k, v in raw_bases.items()}
    raw_audit = payload.get("audit", {"entries": None, "head": None})
    if (
        not isinstance(raw_audit, dict)
        or set(raw_audit) != {"entries", "head"}
        or not (raw_audit["entries"] is None or (type(raw_audit["entries"]) is int and raw_audit["entries"] >= 1))
        or not (raw_audit["head"] is None or isinstance(raw_audit["head"], str))
    ):
        raise UserError(f"{where}.audit: expected entries (integer from 1) and head (sha256)")
    return InsideState(
        created, lineages, blobs, digest, signer, trusted, path, bases, raw_audit["entries"], raw_audit["head"]
    )


def audit_head_of_state(path: Path, store: Store, signing_key: Path | None) -> tuple[audit.Head, str]:
    """The audit head a state file carries, and who signed it, for ``audit verify --against-state``.

    Refused when the file is damaged, carries no head, or is not signed by this store's key (``signing_key``,
    else the store's state key): a head in a file anyone could have written proves nothing. A state file written
    before the state key existed may be unsigned; it is then compared with nothing, and said so.
    """
    state = read_state(path)  # digest and signature checked; whose key it is, below
    if state.audit_entries is None or state.audit_head is None:
        raise UserError(
            f"{path}: carries no audit head (written by an older mirrorctl, or when the journal was empty)",
            hint="export the state again (`mirrorctl state export`) and keep the new file",
        )
    own_key, which = signing_key, "[signing] key"
    if own_key is None:
        own_key, which = store_state_key(store, create=False), "state key"
    own = key_id(load_private_key(own_key).public_key()) if own_key else None
    if own is not None and state.signer != own:
        raise IntegrityError(
            f"{path}: {'unsigned' if state.signer is None else f'signed by key {state.signer}'}, but this store "
            f"signs its state files with its {which} {own}: not this store's state, journal not checked",
            hint="use a state file this store exported (`mirrorctl state export`), or --expect-head",
        )
    if own is not None:
        who = f"signed by this store's {which} {own}"
    elif state.signer is not None:
        who = f"signed by key {state.signer} (no [signing] key here to compare it with)"
    else:
        who = "unsigned (no [signing] key here): only as good as the place the file was kept"
    head = audit.parse_head(f"{state.audit_entries}:{state.audit_head}", f"the state file {path}")
    return head, f"{path} written {state.created:%Y-%m-%dT%H:%M:%SZ}, {who}"
