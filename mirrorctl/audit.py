"""The audit journal: an append-only, hash-chained record of every import and publish (``audit/journal.jsonl``).

One JSON object per line, keys sorted, no spaces::

    {"event":"import","hash":"…","prev":"…","result":"ok","seq":0,"time":"2026-11-27T15:40:00Z",
     "who":"alice@mirror-1", "bundle-id":"…", …}

* ``seq`` counts 0, 1, 2, … with no gap;
* ``prev`` is the sha256 of the previous line's exact bytes, newline included (64 zeros for the first line);
* ``hash`` is the sha256 of the line's canonical JSON without ``hash`` itself.

So editing a field breaks that line's ``hash``; removing, reordering or inserting a line breaks the next
line's ``prev`` (or ``seq``); a line cut short is not JSON. ``verify`` names the first bad line.

Appends are ``O_APPEND`` writes of one whole line under an ``flock`` of the journal file (its own lock, not the
store's, so an import holding the store lock can still record), followed by ``fsync``. Old lines are never
rewritten. The journal lives outside the served view: recording a refused import does not change what is served.

Only the fields given are written, and every string has the userinfo of any URL in it masked: no credentials or
tokens end up here.

Example::

    append(store, "import", **{"bundle-id": report.bundle_id, "sequence": 4, "result": "ok"})
    report = verify(store)   # IntegrityError naming the first bad line
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirrorctl.errors import IntegrityError, MirrorctlError
from mirrorctl.progress import Progress
from mirrorctl.store import Store, fsync_dir

JOURNAL = Path("audit") / "journal.jsonl"
ZERO = "0" * 64
_RESERVED = ("seq", "time", "who", "event", "prev", "hash")
# scheme://user:pass@host -> scheme://***@host ; the user part may hold a token on its own
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_TAIL_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class AuditReport:
    path: Path
    entries: int
    last_hash: str | None  # None for an empty (or absent) journal


def journal_path(store: Store) -> Path:
    return store.root / JOURNAL


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def entry_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in doc.items() if k != "hash"})).hexdigest()


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def redact(value: Any) -> Any:
    """``value`` with the userinfo of every URL in every string masked (recursively through lists/dicts)."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {str(k): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def append(store: Store, event: str, **fields: Any) -> dict[str, Any]:
    """Append one entry and return it. IntegrityError if the journal's last line is damaged (a cut line is
    never appended to: the chain could not name what it follows)."""
    clash = sorted(set(fields) & set(_RESERVED))
    if clash:
        raise ValueError(f"audit fields may not be named {', '.join(clash)}")
    path = journal_path(store)
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    if created:
        fsync_dir(path.parent.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # concurrent appenders take turns; released when fd closes
        seq, prev = _tail(path)
        doc: dict[str, Any] = {
            **{k: redact(v) for k, v in fields.items()},
            "seq": seq,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "who": redact(who()),
            "event": event,
            "prev": prev,
        }
        doc["hash"] = entry_hash(doc)
        line = canonical(doc) + b"\n"
        written = os.write(fd, line)
        if written != len(line):  # a short write would leave a cut line; say so rather than hide it
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    return doc


def record(store: Store, event: str, progress: Progress, **fields: Any) -> None:
    """``append`` for the services: an audit failure is reported as a note, never turned into a failure of
    the import or publish it records (that already happened). ``audit verify`` then names the damage."""
    try:
        append(store, event, **fields)
    except (MirrorctlError, OSError) as exc:
        progress.note(f"WARNING: could not append to the audit journal {journal_path(store)}: {exc}")


def _tail(path: Path) -> tuple[int, str]:
    """(next seq, sha256 of the last line) from the end of the journal, without reading all of it."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0, ZERO
        data = b""
        pos = size
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            if data.count(b"\n") >= 2 or (pos == 0):
                break
    lines = data.split(b"\n")
    if lines[-1] != b"":
        raise IntegrityError(
            f"{path}: the last line is cut short (no newline at the end); nothing was appended",
            hint="run `mirrorctl audit verify`; keep the damaged journal as evidence and start a new one beside it",
        )
    last = lines[-2] + b"\n"
    try:
        doc = json.loads(last)
        seq = int(doc["seq"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{path}: the last line is not an audit entry ({exc}); nothing was appended",
            hint="run `mirrorctl audit verify`",
        ) from None
    return seq + 1, hashlib.sha256(last).hexdigest()


def read_entries(store: Store) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, exact bytes with newline if present) of every line."""
    path = journal_path(store)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        yield from enumerate(f, start=1)


def verify(store: Store) -> AuditReport:
    """Re-read every line: it is complete JSON, its ``hash`` matches, its ``seq`` follows the previous one and
    its ``prev`` is the previous line's sha256. IntegrityError naming the first line that is not."""
    path = journal_path(store)
    prev, expected_seq, count = ZERO, 0, 0
    for number, line in read_entries(store):

        def bad(why: str, n: int = number) -> IntegrityError:
            return IntegrityError(
                f"{path}: line {n}: {why}; the audit chain is broken from here",
                hint="an entry was edited, removed, reordered or cut; keep the file as evidence and investigate",
            )

        if not line.endswith(b"\n"):
            raise bad("cut short (no newline at the end)")
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise bad(f"not JSON ({exc})") from None
        if not isinstance(doc, dict) or any(k not in doc for k in _RESERVED):
            raise bad(f"not an audit entry (needs {', '.join(_RESERVED)})")
        if doc["hash"] != entry_hash(doc):
            raise bad("its hash does not match its content (edited)")
        if doc["seq"] != expected_seq:
            raise bad(f"seq {doc['seq']} where {expected_seq} was expected (an entry removed or reordered)")
        if doc["prev"] != prev:
            raise bad("prev does not match the previous line (an entry removed, inserted or reordered)")
        prev = hashlib.sha256(line).hexdigest()
        expected_seq += 1
        count += 1
    return AuditReport(path, count, prev if count else None)


def last_entries(store: Store, n: int | None = None) -> list[dict[str, Any]]:
    """The journal's entries (the last ``n``), parsed; lines that are not JSON are shown as ``{"line": n,
    "unreadable": ...}`` so ``audit show`` still works on a damaged journal."""
    out: list[dict[str, Any]] = []
    for number, line in read_entries(store):
        try:
            doc = json.loads(line)
            out.append(doc if isinstance(doc, dict) else {"line": number, "unreadable": line.decode(errors="replace")})
        except ValueError:
            out.append({"line": number, "unreadable": line.decode(errors="replace")})
    return out[-n:] if n else out


__all__ = ["AuditReport", "append", "journal_path", "last_entries", "record", "redact", "verify"]
