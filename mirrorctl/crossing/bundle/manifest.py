"""The bundle manifest: the one signed document that says exactly which bytes a bundle holds.

A bundle is an uncompressed tar whose members come in this order::

    manifest.json            canonical JSON (sorted keys, no spaces), signed
    manifest.json.sig        raw 64-byte Ed25519 signature over manifest.json
    keys/<statement>.json    key rotation/revocation statements and their .sig, if any (mirrorctl/crossing/trust.py)
    sbom.cdx.json            CycloneDX SBOM, one component per artifact
    locks/<profile>.lock     the lock of each profile carried
    blobs/sha256/<hex>       every artifact file and companion, named by its digest

``manifest.json`` lists every member after the signature with its size and sha256; nothing unlisted is
accepted and nothing listed may be missing. Member names are restricted to exactly the three shapes above,
so a name that is valid in the manifest can never be a path outside the staging folder.

A *delta* bundle (``kind`` = ``"delta"``) carries only the blobs the inside lacks. Its manifest adds:

- ``base``: the inside state it was made against (the state file's sha256, and the lineage's sequence and
  bundle id that state recorded);
- ``expected``: ``{"count": N, "sha256": hex}``, a summary of every blob of the view that is *not* carried: the
  importer derives that list from the complete locks (each locked blob not among ``files``), requires the count
  and the sha256 of its canonical form (``expected_digest``) to match, and then requires each blob in its store;
- ``rebuilt`` (optional): files of the view that travel as a *line delta* against the inside's copy instead of
  whole: ``[{"path", "delta", "base-sha256", "base-size"}]``. ``path`` (a lock or the SBOM) stays listed in
  ``files`` with its complete size and sha256, but is not a tar member; ``delta`` (``<path>.delta``, also in
  ``files``) is. The importer rebuilds ``path`` from its stored blob ``base-sha256`` (mirrorctl/crossing/bundle/
  linedelta.py) and accepts it only with exactly the listed size and sha256.

``files`` thus still lists every file of the view's bundle (what gc retains and verify checks), and a full bundle
never has these fields; an older reader refuses a delta on the unknown fields (and on its kind) instead of
importing half a view.

A *reissue* (optional ``reissues``, in a full bundle or a delta): ``{"sequence": N, "bundle-id": id}``. The outside
exported the same selection (the same locks, key statements and base) again, in parts for a smaller medium say, so
the bundle keeps the sequence ``N`` (its own ``sequence``) of the first issue, bundle ``id``; the importer takes it
as that bundle (importing either after the other is a no-op) when its locks are the same.

Format versions: 2 carries locks of lock-version 2 (each artifact has its ``path``); its fields are those of 1.
1 (written before paths) carries lock-version 1 locks and is still read: the lock reader derives each path.
A bundle's locks must be of the lock-version its format-version says (:data:`LOCK_VERSION_OF`), so the number
an older reader refuses ("format-version 2 is not supported") is the one that tells it why.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mirrorctl.errors import BundleRefused, shorten

FORMAT = "mirrorctl-bundle"
FORMAT_VERSION = 2  # what export writes
READABLE_FORMAT_VERSIONS = (1, 2)
LOCK_VERSION_OF = {1: 1, 2: 2}  # format-version -> the lock-version of the locks it carries
KIND_FULL = "full"
KIND_DELTA = "delta"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
SBOM_NAME = "sbom.cdx.json"
MAX_MANIFEST_SIZE = 64 * 1024 * 1024  # ~300k files; refuse anything bigger before reading it
MAX_LOCK_SIZE = 64 * 1024 * 1024
MAX_SBOM_SIZE = 256 * 1024 * 1024
MAX_FILE_SIZE = 2**53 - 1  # bytes; beyond what a JSON reader keeps exact
MAX_DELTA_SIZE = 16 * 1024 * 1024  # a line delta larger than this is refused unread (export carries it whole)
DELTA_SUFFIX = ".delta"
# The highest sequence a lineage may reach: every JSON reader keeps integers up to 2**53 - 1 exact, and a
# lineage at a number no bundle can exceed could never move forward again (docs/signing.md, section 3).
MAX_SEQUENCE = 2**53 - 1
# How far in the future of the inside's clock a bundle's ``created`` may be: clocks on the two sides disagree by
# minutes, not days. A bundle from further ahead says one of the clocks is wrong (docs/signing.md, section 3).
MAX_CLOCK_SKEW = timedelta(hours=24)

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the same grammar as profiles.py
_LOCK_PATH = re.compile(r"^locks/([a-z0-9][a-z0-9_-]{0,63})\.lock$")
_DELTA_PATH = re.compile(r"^(sbom\.cdx\.json|locks/[a-z0-9][a-z0-9_-]{0,63}\.lock)\.delta$")
_BLOB_PATH = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_KEYS_PATH = re.compile(r"^keys/(rotation|revocation)-[1-9][0-9]{0,5}\.json(\.sig)?$")  # = trust.MEMBER
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_TOP_KEYS = {
    "format",
    "format-version",
    "bundle-id",
    "kind",
    "lineage",
    "sequence",
    "created",
    "expires",
    "mirrorctl-version",
    "profiles",
    "files",
    "base",
    "expected",
    "rebuilt",
    "reissues",
}
_DELTA_KEYS = {"base", "expected"}
_REQUIRED = _TOP_KEYS - {"expires", "rebuilt", "reissues"} - _DELTA_KEYS
_REBUILT_KEYS = {"path", "delta", "base-sha256", "base-size"}
_BASE_KEYS = {"state-sha256", "lineage", "sequence", "bundle-id"}


def lock_member(profile: str) -> str:
    return f"locks/{profile}.lock"


def blob_member(sha256: str) -> str:
    return f"blobs/sha256/{sha256}"


def blob_digest(member: str) -> str | None:
    """The digest a ``blobs/sha256/<hex>`` member name carries, or None for other members."""
    m = _BLOB_PATH.match(member)
    return m.group(1) if m else None


def format_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(value: Any, field: str) -> datetime:
    bad = BundleRefused(f"manifest.json: {field} must be a UTC time like 2026-01-31T12:00:00Z, got {_said(value)}")
    if not isinstance(value, str) or len(value) != 20:
        raise bad
    try:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise bad from None


def _said(value: Any) -> str:
    """An untrusted manifest value as a refusal quotes it: its JSON type named when that is what is wrong
    (``true`` is not the integer 1), and never more than a few hundred characters."""
    kind = {bool: "a boolean", float: "a number with a fraction", type(None): "null", list: "a list", dict: "an object"}
    text = shorten(value if isinstance(value, str) else json.dumps(value) if type(value) in kind else value)
    return f"{text!r}" if isinstance(value, str) else f"{text} ({kind[type(value)]})" if type(value) in kind else text


def _integer(value: Any, where: str, *, high: int) -> int:
    """A JSON integer from 0 to ``high``: a boolean or a number with a fraction (``1.0``) is not one."""
    if type(value) is not int or not 0 <= value <= high:
        raise BundleRefused(f"{where} must be an integer from 0 to {high}, got {_said(value)}")
    return value


def check_clock(manifest: Manifest, now: datetime, where: str) -> None:
    """Refuse a bundle created further in the future of ``now`` (the inside's clock) than MAX_CLOCK_SKEW."""
    if manifest.created > now + MAX_CLOCK_SKEW:
        raise BundleRefused(
            f"{where}: bundle {manifest.bundle_id} was created at {format_time(manifest.created)}, more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 3600)} hours after the local clock ({format_time(now)})",
            hint="one of the two clocks is wrong: compare `date -u` outside and here, correct the wrong one, and "
            "import again (a bundle made with a clock far ahead must be exported again)",
        )


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    lock: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class DeltaBase:
    """What a delta was made against: the inside's state file (its sha256) and what it said of the lineage."""

    state_sha256: str
    lineage: str
    sequence: int
    bundle_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "state-sha256": self.state_sha256,
            "lineage": self.lineage,
            "sequence": self.sequence,
            "bundle-id": self.bundle_id,
        }


@dataclass(frozen=True, slots=True)
class ExpectedSummary:
    """A delta's blobs left out: how many, and the sha256 of their canonical list (``expected_digest``)."""

    count: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A lock or the SBOM that travels as the line delta ``delta`` against the inside's blob ``base_sha256``."""

    path: str
    delta: str
    base_sha256: str
    base_size: int


@dataclass(frozen=True, slots=True)
class Reissue:
    """What a reissue repeats: the sequence it keeps and the bundle id of its first issue."""

    sequence: int
    bundle_id: str


def expected_digest(blobs: Mapping[str, int]) -> ExpectedSummary:
    """The summary of ``{sha256: size}``: canonical JSON ``[[sha256, size], ...]`` sorted by digest."""
    doc = [[sha, blobs[sha]] for sha in sorted(blobs)]
    data = json.dumps(doc, separators=(",", ":")).encode()
    return ExpectedSummary(len(doc), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class Manifest:
    bundle_id: str
    lineage: str
    sequence: int
    created: datetime
    expires: datetime | None
    mirrorctl_version: str
    profiles: Mapping[str, ProfileEntry]
    files: tuple[FileEntry, ...]
    kind: str = KIND_FULL
    base: DeltaBase | None = None  # deltas only
    expected: ExpectedSummary | None = None  # deltas only: blobs of the view not carried, required in the store
    rebuilt: tuple[Rebuilt, ...] = ()  # deltas only: files rebuilt from a line delta, not tar members
    format_version: int = FORMAT_VERSION  # as read; an old bundle's manifest keeps its own
    reissues: Reissue | None = None  # the same selection exported again: the first issue it repeats

    @property
    def issue(self) -> str:
        """The bundle id of the first issue of this bundle's content and sequence: its own, or the one it reissues."""
        return self.reissues.bundle_id if self.reissues is not None else self.bundle_id

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no insignificant whitespace, ASCII only. These bytes are signed."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "format-version": self.format_version,
            "bundle-id": self.bundle_id,
            "kind": self.kind,
            "lineage": self.lineage,
            "sequence": self.sequence,
            "created": format_time(self.created),
            "mirrorctl-version": self.mirrorctl_version,
            "profiles": {
                name: {"lock": p.lock, "size": p.size, "sha256": p.sha256}
                for name, p in self.profiles.items()
            },
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        if self.expires is not None:
            doc["expires"] = format_time(self.expires)
        if self.reissues is not None:
            doc["reissues"] = {"sequence": self.reissues.sequence, "bundle-id": self.reissues.bundle_id}
        if self.kind == KIND_DELTA:  # a full bundle has none of the delta fields
            assert self.base is not None
            doc["base"] = self.base.to_dict()
            assert self.expected is not None
            doc["expected"] = {"count": self.expected.count, "sha256": self.expected.sha256}
            if self.rebuilt:
                doc["rebuilt"] = [
                    {"path": r.path, "delta": r.delta, "base-sha256": r.base_sha256, "base-size": r.base_size}
                    for r in self.rebuilt
                ]
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    def file(self, path: str) -> FileEntry | None:
        return self._index().get(path)

    def _index(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    @property
    def members(self) -> tuple[FileEntry, ...]:
        """The files that are tar members (``files`` without those rebuilt from a line delta)."""
        rebuilt = {r.path for r in self.rebuilt}
        return tuple(f for f in self.files if f.path not in rebuilt)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def new_bundle_id() -> str:
    return str(uuid.uuid4())


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate a manifest whose signature has already been checked.

    Strict on purpose: unknown keys, unexpected member names, duplicates and a blob whose name is not its
    digest are refused, so that later code can take every listed path as safe.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # nesting past the stack: not JSON here
        raise BundleRefused(f"manifest.json: not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise BundleRefused("manifest.json: must be a JSON object")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise BundleRefused(
            f"manifest.json: unknown field(s) {', '.join(unknown)}",
            hint="the bundle was written by a newer mirrorctl; import it with that version",
        )
    missing = sorted(_REQUIRED - set(doc))
    if missing:
        raise BundleRefused(f"manifest.json: missing field(s) {', '.join(missing)}")
    if doc["format"] != FORMAT:
        raise BundleRefused(f"manifest.json: format {_said(doc['format'])} is not {FORMAT!r}")
    format_version = doc["format-version"]
    if type(format_version) is not int or format_version not in READABLE_FORMAT_VERSIONS:
        raise BundleRefused(
            f"manifest.json: format-version {_said(format_version)} is not supported (this mirrorctl reads "
            f"{' and '.join(map(str, READABLE_FORMAT_VERSIONS))})",
            hint="import it with the mirrorctl version that wrote it, or a newer one",
        )
    kind = doc["kind"]
    if kind not in (KIND_FULL, KIND_DELTA):
        raise BundleRefused(
            f"manifest.json: kind {_said(kind)} is not supported (expected {KIND_FULL!r} or {KIND_DELTA!r})"
        )
    present_delta = sorted(_DELTA_KEYS & set(doc))
    if kind == KIND_FULL and "rebuilt" in doc:
        present_delta.append("rebuilt")
    if kind == KIND_FULL and present_delta:
        raise BundleRefused(f"manifest.json: a full bundle cannot have {', '.join(present_delta)}")
    if kind == KIND_DELTA and present_delta != sorted(_DELTA_KEYS):
        raise BundleRefused("manifest.json: a delta bundle must have both base and expected")
    bundle_id = doc["bundle-id"]
    try:
        if not isinstance(bundle_id, str) or str(uuid.UUID(bundle_id)) != bundle_id:
            raise ValueError
    except ValueError:
        raise BundleRefused(f"manifest.json: bundle-id {_said(bundle_id)} is not a UUID") from None
    lineage = doc["lineage"]
    if not isinstance(lineage, str) or not _KEY_ID.match(lineage):
        raise BundleRefused(f"manifest.json: lineage {_said(lineage)} is not a key id (16 hex digits)")
    sequence = _integer(doc["sequence"], "manifest.json: sequence", high=MAX_SEQUENCE)
    version = doc["mirrorctl-version"]
    if not isinstance(version, str) or len(version) > 64:
        raise BundleRefused("manifest.json: mirrorctl-version must be a short string")

    files = _parse_files(doc["files"], delta=kind == KIND_DELTA)
    by_path = {f.path: f for f in files}
    profiles = _parse_profiles(doc["profiles"], by_path)
    for f in files:
        m = _LOCK_PATH.match(f.path)
        if m and m.group(1) not in profiles:
            raise BundleRefused(f"manifest.json: {f.path} is listed but no profile refers to it")
    base: DeltaBase | None = None
    expected: ExpectedSummary | None = None
    rebuilt: tuple[Rebuilt, ...] = ()
    if kind == KIND_DELTA:
        base = _parse_base(doc["base"], lineage)
        expected = _parse_expected(doc["expected"])
        rebuilt = _parse_rebuilt(doc.get("rebuilt", []), by_path)
    reissues = _parse_reissues(doc["reissues"], sequence, bundle_id) if "reissues" in doc else None
    created = parse_time(doc["created"], "created")
    expires = parse_time(doc["expires"], "expires") if "expires" in doc else None
    if expires is not None and expires <= created:  # export never writes one: it would be expired when made
        raise BundleRefused(
            f"manifest.json: expires {format_time(expires)} is not after created {format_time(created)}"
        )
    return Manifest(
        bundle_id=bundle_id,
        lineage=lineage,
        sequence=sequence,
        created=created,
        expires=expires,
        mirrorctl_version=version,
        profiles=profiles,
        files=files,
        kind=kind,
        base=base,
        expected=expected,
        rebuilt=rebuilt,
        format_version=format_version,
        reissues=reissues,
    )


def _parse_reissues(raw: Any, sequence: int, bundle_id: str) -> Reissue:
    if not isinstance(raw, dict) or set(raw) != {"sequence", "bundle-id"}:
        raise BundleRefused("manifest.json: reissues must be an object with exactly sequence and bundle-id")
    seq = _integer(raw["sequence"], "manifest.json: reissues.sequence", high=MAX_SEQUENCE)
    if seq != sequence:
        raise BundleRefused(
            f"manifest.json: reissues.sequence {seq} is not the bundle's sequence {sequence} (a reissue keeps it)"
        )
    first = raw["bundle-id"]
    try:
        if not isinstance(first, str) or str(uuid.UUID(first)) != first:
            raise ValueError
    except ValueError:
        raise BundleRefused(f"manifest.json: reissues.bundle-id {_said(first)} is not a UUID") from None
    if first == bundle_id:
        raise BundleRefused("manifest.json: reissues.bundle-id is the bundle's own id")
    return Reissue(seq, first)


def _parse_expected(raw: Any) -> ExpectedSummary:
    if not isinstance(raw, dict) or set(raw) != {"count", "sha256"}:
        raise BundleRefused("manifest.json: expected must be an object with exactly count and sha256")
    count, sha = _integer(raw["count"], "manifest.json: expected.count", high=MAX_SEQUENCE), raw["sha256"]
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise BundleRefused("manifest.json: expected.sha256 must be 64 lowercase hex digits")
    return ExpectedSummary(count, sha)


def _parse_rebuilt(raw: Any, by_path: Mapping[str, FileEntry]) -> tuple[Rebuilt, ...]:
    if not isinstance(raw, list):
        raise BundleRefused("manifest.json: rebuilt must be a list")
    out: list[Rebuilt] = []
    for i, item in enumerate(raw):
        where = f"manifest.json: rebuilt[{i}]"
        if not isinstance(item, dict) or set(item) != _REBUILT_KEYS:
            raise BundleRefused(f"{where}: must be an object with exactly {', '.join(sorted(_REBUILT_KEYS))}")
        path, delta, base_sha, base_size = item["path"], item["delta"], item["base-sha256"], item["base-size"]
        target = by_path.get(path) if isinstance(path, str) else None
        if target is None or blob_digest(target.path) is not None or target.path.startswith("keys/"):
            raise BundleRefused(f"{where}: path {_said(path)} must be a lock or the SBOM listed in files")
        cap = MAX_SBOM_SIZE if path == SBOM_NAME else MAX_LOCK_SIZE
        if target.size > cap:
            raise BundleRefused(f"{where}: {path} is listed with {target.size} bytes, more than the {cap} allowed")
        if delta != path + DELTA_SUFFIX or delta not in by_path:
            raise BundleRefused(f"{where}: delta must be {path + DELTA_SUFFIX!r}, listed in files")
        if not isinstance(base_sha, str) or not _SHA256.match(base_sha):
            raise BundleRefused(f"{where} ({path}): base-sha256 must be 64 lowercase hex digits")
        if type(base_size) is not int or not 0 <= base_size <= cap:
            raise BundleRefused(f"{where} ({path}): base-size must be an integer from 0 to {cap}")
        if any(r.path == path for r in out):
            raise BundleRefused(f"{where}: {path} is rebuilt twice")
        out.append(Rebuilt(path, delta, base_sha, base_size))
    used = {r.delta for r in out}
    for f in by_path.values():
        if _DELTA_PATH.match(f.path) and f.path not in used:
            raise BundleRefused(f"manifest.json: {f.path} is listed but nothing is rebuilt from it")
    return tuple(out)




def _parse_base(raw: Any, lineage: str) -> DeltaBase:
    if not isinstance(raw, dict) or set(raw) != _BASE_KEYS:
        raise BundleRefused(f"manifest.json: base must be an object with exactly {', '.join(sorted(_BASE_KEYS))}")
    state, base_lineage, seq, bundle_id = raw["state-sha256"], raw["lineage"], raw["sequence"], raw["bundle-id"]
    if not isinstance(state, str) or not _SHA256.match(state):
        raise BundleRefused("manifest.json: base.state-sha256 must be 64 lowercase hex digits")
    if base_lineage != lineage:
        # A delta continues the lineage that signs it; a base of another lineage says nothing about this one.
        raise BundleRefused(f"manifest.json: base.lineage {_said(base_lineage)} is not the bundle's lineage {lineage}")
    seq = _integer(seq, "manifest.json: base.sequence", high=MAX_SEQUENCE)
    if not isinstance(bundle_id, str) or len(bundle_id) > 64:
        raise BundleRefused("manifest.json: base.bundle-id must be a bundle id")
    return DeltaBase(state, lineage, seq, bundle_id)


def _parse_files(raw: Any, *, delta: bool = False) -> tuple[FileEntry, ...]:
    field = "files"
    if not isinstance(raw, list):
        raise BundleRefused(f"manifest.json: {field} must be a list")
    files: list[FileEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"manifest.json: {field}[{i}]"
        if not isinstance(item, dict) or set(item) != {"path", "size", "sha256"}:
            raise BundleRefused(f"{where}: must be an object with exactly path, size and sha256")
        path, size, sha = item["path"], item["size"], item["sha256"]
        if not isinstance(path, str) or not (
            path == SBOM_NAME
            or _LOCK_PATH.match(path)
            or _BLOB_PATH.match(path)
            or _KEYS_PATH.match(path)
            or (delta and _DELTA_PATH.match(path))
        ):
            raise BundleRefused(
                f"{where}: member name {_said(path)} is not allowed",
                hint="members are sbom.cdx.json, locks/<profile>.lock and blobs/sha256/<hex>",
            )
        if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
            raise BundleRefused(
                f"{where} ({path}): size must be an integer from 0 to {MAX_FILE_SIZE}, got {_said(size)}"
            )
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise BundleRefused(f"{where} ({path}): sha256 must be 64 lowercase hex digits")
        digest = blob_digest(path)
        if digest is not None and digest != sha:
            raise BundleRefused(f"{where}: {path} is listed with a different sha256 ({sha})")
        if delta and _DELTA_PATH.match(path) and size > MAX_DELTA_SIZE:
            raise BundleRefused(f"{where}: {path} is {size} bytes, more than the {MAX_DELTA_SIZE} allowed")
        if path in seen:
            raise BundleRefused(f"{where}: {path} is listed twice")
        seen.add(path)
        files.append(FileEntry(path, size, sha))
    return tuple(files)


def _parse_profiles(raw: Any, by_path: Mapping[str, FileEntry]) -> dict[str, ProfileEntry]:
    if not isinstance(raw, dict) or not raw:
        raise BundleRefused("manifest.json: profiles must be a non-empty object")
    profiles: dict[str, ProfileEntry] = {}
    for name, entry in raw.items():
        where = f"manifest.json: profiles.{name}"
        if not PROFILE_NAME.match(name):
            raise BundleRefused(f"manifest.json: profile name {_said(name)} is not allowed")
        if not isinstance(entry, dict) or set(entry) != {"lock", "size", "sha256"}:
            raise BundleRefused(f"{where}: must be an object with exactly lock, size and sha256")
        lock = entry["lock"]
        if lock != lock_member(name):
            raise BundleRefused(f"{where}.lock: must be {lock_member(name)!r}, got {_said(lock)}")
        listed = by_path.get(lock)
        size, sha = entry["size"], entry["sha256"]
        if type(size) is not int or type(sha) is not str:
            raise BundleRefused(
                f"{where}: size must be an integer and sha256 a string, got {_said(size)}, {_said(sha)}"
            )
        if listed is None or listed.size != size or listed.sha256 != sha:
            raise BundleRefused(f"{where}: {lock} is not listed in files with the same size and sha256")
        profiles[name] = ProfileEntry(lock, listed.size, listed.sha256)
    return profiles


def sorted_files(entries: Sequence[FileEntry]) -> tuple[FileEntry, ...]:
    """Members in bundle order: the SBOM, then locks, then blobs (each group by name)."""

    def rank(f: FileEntry) -> tuple[int, str]:
        if f.path.startswith("keys/"):  # first: the importer reads them before it can check the signature
            return (-1, f.path)
        sbom = f.path in (SBOM_NAME, SBOM_NAME + DELTA_SUFFIX)
        return (0 if sbom else 1 if f.path.startswith("locks/") else 2, f.path)

    return tuple(sorted(entries, key=rank))
