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
tokens end up here. Masking is one linear pass, and each string is then cut to ``FIELD_LIMIT`` characters; both
happen before the lock is taken, so an entry about a hostile input (a member name of megabytes) costs the same
time under the lock as any other, and a good import on the same store does not wait behind it.

An import's ``ok`` entry (the view it made, its ``view-sha256``) is written before the import releases the store's
lock. A kill between the switch and that entry leaves a served view with no recorded digest: ``mirrorctl verify``
names it, and importing the same bundle again writes the entry (``"recovered":true``) if the view is still what
the bundle makes (mirrorctl/crossing/bundle/importer.py, ``_complete_record``).

The head, and what a chain cannot see by itself
-----------------------------------------------

A chain shows an edit, a removal in the middle, a reorder or a cut line. It cannot show its own tail being cut at
a line boundary (the last entries, or the whole file, removed): what is left is still a valid chain. Nor can it
show a rewrite that recomputes every later ``hash`` and ``prev`` (sha256 needs no key). Both are caught only
against a *head* kept somewhere else. The head is the sha256 of the last line's exact bytes (the ``prev`` the
next entry will carry), written ``ENTRIES:SHA256`` (``5:ab12…``) so it also says where it sits. A head noted
earlier must still be *in* the chain, at that entry: entries appended after it are fine; a journal shorter than
that, or a different line at that entry, is refused, naming the entry numbers. Three places keep a head:

1. ``audit/head.json`` (the *anchor*): rewritten (temp, fsync, rename) after every append, under the journal's
   lock. ``verify`` always checks it, so emptying or deleting ``journal.jsonl``, or cutting its last entries,
   is refused naming the missing entries. A crash between the line and the anchor leaves the anchor one entry
   behind, which is fine (appends after a head are). It lives beside the journal, not in ``state/``, because
   recording a refusal must leave the store's state byte for byte as it was. An anchor that is absent while the
   journal has entries is reported (a journal from before anchors; the next append writes it), not refused.
2. ``mirrorctl audit verify --expect-head ENTRIES:SHA256``: the head a person noted (in a change ticket, after
   each import window). This is the check that survives someone with write access to the whole store.
3. ``mirrorctl state export`` carries the head and entry count in its payload, which is signed with the
   inside's ``[signing] key`` when one is set, and leaves the inside; ``audit verify --against-state FILE``
   checks the journal against it (the file's digest, and signature when present, are checked first).

Why not a keyed chain (an HMAC or signature on every entry): every process that appends (import, promote,
publish, gc, trust changes) would need the key, so the key would live where the journal does and whoever can
rewrite the journal could re-key it too; and the services that record do not all have the settings at hand.
A signed head that *leaves* the inside (3) gives the same detection of a rewrite with the key where it already
is, and a noted head (2) needs no key at all.

Example::

    append(store, "import", **{"bundle-id": report.bundle_id, "sequence": 4, "result": "ok"})
    report = verify(store)                     # IntegrityError naming the first bad line
    verify(store, expect=parse_head("5:ab12…"))  # IntegrityError when that head is no longer in the chain
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirrorctl.errors import IntegrityError, MirrorctlError, UserError
from mirrorctl.inside.store import Store, atomic_write, fsync_dir
from mirrorctl.progress import Progress

JOURNAL = Path("audit") / "journal.jsonl"
ANCHOR = Path("audit") / "head.json"
ZERO = "0" * 64
_RESERVED = ("seq", "time", "who", "event", "prev", "hash")
# scheme://user:pass@host -> scheme://***@host ; the user part may hold a token on its own. What is masked is
# what ``([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`` would match, found without that regex: run as a search it
# retries the scheme at every letter of a long run of letters, quadratic time on a hostile member name.
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_CHARS = _LETTERS | frozenset("0123456789+.-")
_USERPART = re.compile(r"[^/@\s]+@")
# The most of one string field an entry keeps: refusals quote untrusted names, and an entry is formatted
# before the journal's lock is taken, so the work under the lock is bounded whatever the input.
FIELD_LIMIT = 4096
_TAIL_CHUNK = 64 * 1024


_HEAD = re.compile(r"^(?:(\d+):)?([0-9a-f]{64})$")


@dataclass(frozen=True, slots=True)
class Head:
    """Where a chain stood: ``entries`` lines, the last one's sha256 ``sha256``. ``entries`` None: only the hash
    is known (a bare hash given by hand), so it is searched for anywhere in the chain."""

    entries: int | None
    sha256: str
    source: str = "the head you gave"

    def __str__(self) -> str:
        return self.sha256 if self.entries is None else f"{self.entries}:{self.sha256}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    path: Path
    entries: int
    last_hash: str | None  # None for an empty (or absent) journal
    head_entry: dict[str, Any] | None = None  # the last entry, parsed
    anchor: Head | None = None  # audit/head.json as found (None: absent)
    checked: tuple[Head, ...] = ()  # the heads found in the chain (anchor, expected, state file)

    @property
    def head(self) -> Head | None:
        return None if self.last_hash is None else Head(self.entries, self.last_hash, "the journal")


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
        return _mask_userinfo(value)
    if isinstance(value, dict):
        return {str(k): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _mask_userinfo(text: str) -> str:
    """Every ``scheme://userinfo@`` with its userinfo replaced by ``***``, in one pass: each ``://`` is looked
    at once, the scheme before it walked back over (runs of scheme characters never overlap, as ``:`` ends
    them) and the userinfo after it matched up to the first ``/``, ``@`` or space."""
    out: list[str] = []
    done = 0  # text[:done] is copied to out; a match never starts before it (as re.sub's would not)
    search = 0
    while (colon := text.find("://", search)) != -1:
        start = colon
        while start > done and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < colon and text[start] not in _LETTERS:
            start += 1  # a scheme begins with a letter: the leftmost one in the run
        user = _USERPART.match(text, colon + 3)
        if start == colon or user is None:
            search = colon + 1
            continue
        out.append(text[done : colon + 3])
        out.append("***@")
        done = search = user.end()
    out.append(text[done:])
    return "".join(out)


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FIELD_LIMIT:
        return value[: FIELD_LIMIT - 40] + f"… (cut: {len(value)} characters)"
    if isinstance(value, dict):
        return {str(k)[:FIELD_LIMIT]: _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value]
    return value


def append(store: Store, event: str, **fields: Any) -> dict[str, Any]:
    """Append one entry and return it. IntegrityError if the journal's last line is damaged (a cut line is
    never appended to: the chain could not name what it follows)."""
    clash = sorted(set(fields) & set(_RESERVED))
    if clash:
        raise ValueError(f"audit fields may not be named {', '.join(clash)}")
    # Everything that depends on the input is done before the lock: a hostile import must not make a good one
    # on the same store wait behind it. Masking first, then cutting: a cut never exposes half a credential.
    given = {k: _bounded(redact(v)) for k, v in fields.items()}
    by = _bounded(redact(who()))
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
            **given,
            "seq": seq,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "who": by,
            "event": event,
            "prev": prev,
        }
        doc["hash"] = entry_hash(doc)
        line = canonical(doc) + b"\n"
        written = os.write(fd, line)
        if written != len(line):  # a short write would leave a cut line; say so rather than hide it
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(fd)
        if created:
            fsync_dir(path.parent)
        # Still under the lock, so anchors are written in chain order. A crash before this leaves the anchor
        # one entry behind: allowed, like any append after a noted head. An anchor the journal has fallen
        # behind (or disagrees with at its end) is left as it is: the next append must not hide a cut journal.
        if _anchor_agrees(store, seq, prev):
            _write_anchor(store, seq + 1, hashlib.sha256(line).hexdigest(), doc)
    finally:
        os.close(fd)
    return doc


def anchor_path(store: Store) -> Path:
    return store.root / ANCHOR


def _anchor_agrees(store: Store, entries: int, head: str) -> bool:
    """Whether the anchor may move on from a journal of ``entries`` lines ending in ``head``: it is absent,
    behind, or names exactly that head. (Whether a lagging anchor's entry still matches is ``verify``'s job.)"""
    try:
        anchor = read_anchor(store)
    except IntegrityError:
        return False  # damaged: leave it for `audit verify` to name
    if anchor is None or anchor.entries is None or anchor.entries < entries:
        return True
    return anchor.entries == entries and anchor.sha256 == head


def _write_anchor(store: Store, entries: int, sha256: str, doc: dict[str, Any]) -> None:
    anchor = {"entries": entries, "head": sha256, "time": doc["time"], "event": doc["event"]}
    atomic_write(anchor_path(store), canonical(anchor) + b"\n")


def read_anchor(store: Store) -> Head | None:
    """``audit/head.json`` as a Head; None when absent. IntegrityError when it is not an anchor."""
    path = anchor_path(store)
    try:
        doc = json.loads(path.read_bytes())
        entries, sha = int(doc["entries"]), str(doc["head"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{path}: not an audit anchor ({exc})",
            hint="it was damaged or edited; keep it as evidence, check the journal against a head you noted "
            "(`mirrorctl audit verify --expect-head`), then remove it (the next entry writes it again)",
        ) from None
    if entries < 1 or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise IntegrityError(f"{path}: not an audit anchor (entries {entries}, head {sha!r})")
    return Head(entries, sha, f"the anchor {path}")


def parse_head(text: str, source: str = "the head you gave") -> Head:
    """``ENTRIES:SHA256`` (as ``audit verify`` prints it) or a bare sha256. UserError for anything else."""
    m = _HEAD.match(text.strip().lower())
    if m is None or (m.group(1) is not None and int(m.group(1)) < 1):
        raise UserError(
            f"{text!r} is not an audit head",
            hint="give it as `mirrorctl audit verify` prints it: ENTRIES:SHA256 (e.g. 5:ab12…, 64 hex digits), "
            "or the sha256 alone",
        )
    return Head(int(m.group(1)) if m.group(1) else None, m.group(2), source)


def current_head(store: Store) -> Head | None:
    """The journal's head read from its end (no full check; ``verify`` does that). None when empty or absent;
    IntegrityError when its last line is damaged."""
    path = journal_path(store)
    try:
        seq, prev = _tail(path)
    except FileNotFoundError:
        return None
    return None if seq == 0 else Head(seq, prev, "the journal")


def snapshot_fields(store: Store, view_id: str | None) -> dict[str, Any]:
    """The bundle a snapshot was imported from, for promote and rollback entries: ``bundle-id``, ``sequence``,
    ``lineage``; empty when the snapshot cannot be read (the entry is still written)."""
    if view_id is None:
        return {}
    try:
        view = store.load_view(view_id)
    except (MirrorctlError, OSError, ValueError, KeyError, TypeError):
        return {}
    return {"bundle-id": view.bundle_id, "sequence": view.sequence, "lineage": view.lineage}


def view_digest(store: Store, view_id: str | None) -> dict[str, Any]:
    """``{"view-sha256": ...}``: the sha256 of a snapshot's view.json as it was made, for the import entry, so
    that ``mirrorctl verify`` can show a snapshot edited afterwards; empty when it cannot be read."""
    if view_id is None:
        return {}
    try:
        data = (store.root / "views" / view_id / "view.json").read_bytes()
    except OSError:
        return {}
    return {"view-sha256": hashlib.sha256(data).hexdigest()}


def recorded_view_digests(store: Store) -> dict[str, str]:
    """view id -> the view.json sha256 its import entry recorded (the last entry naming it wins; lines that are
    not entries are skipped here: ``audit verify`` names them)."""
    found: dict[str, str] = {}
    for _, line in read_entries(store):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("view-id"), str) and isinstance(doc.get("view-sha256"), str):
            found[doc["view-id"]] = doc["view-sha256"]
    return found


def served_view_ids(store: Store) -> set[str]:
    """The view ids an ``import`` entry records as served (result ``ok``)."""
    found: set[str] = set()
    for _, line in read_entries(store):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == "import" and doc.get("result") == "ok":
            if isinstance(doc.get("view-id"), str):
                found.add(doc["view-id"])
    return found


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
    """(entry number, exact bytes with newline if present) of every line.

    The one definition of how entries are counted, for ``verify`` and ``audit show`` alike: entry N is the
    journal's Nth line (its ``seq`` is N - 1), and "N entries" is the number of lines, which is the ENTRIES of a
    head (``N:SHA256``)."""
    path = journal_path(store)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        yield from enumerate(f, start=1)


def verify(store: Store, expect: tuple[Head, ...] = ()) -> AuditReport:
    """Re-read every line: it is complete JSON, its ``hash`` matches, its ``seq`` follows the previous one and
    its ``prev`` is the previous line's sha256. Then the anchor (``audit/head.json``) and every head in
    ``expect`` must be found in the chain at their entry. IntegrityError naming the first line that is not, or
    the head that is missing and the entries it implies were removed or rewritten.

    Example: ``verify(store, expect=(parse_head("5:ab12…"),))``
    """
    path = journal_path(store)
    anchor = read_anchor(store)
    heads = ((anchor,) if anchor is not None else ()) + tuple(expect)
    by_entry: dict[int, list[Head]] = {}
    by_hash: dict[str, list[Head]] = {}
    for h in heads:
        (by_entry.setdefault(h.entries, []) if h.entries is not None else by_hash.setdefault(h.sha256, [])).append(h)
    found: dict[int, tuple[int, str]] = {}  # id(head) -> (entry number, sha256 there)
    prev, expected_seq, count = ZERO, 0, 0
    last_doc: dict[str, Any] | None = None
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
        count = number  # entries are counted as lines, as read_entries numbers them (see Listing)
        last_doc = doc
        for h in by_entry.get(count, ()):
            found[id(h)] = (count, prev)
        for h in by_hash.get(prev, ()):
            found.setdefault(id(h), (count, prev))
    for h in heads:
        _check_head(path, h, found.get(id(h)), count, prev if count else None)
    return AuditReport(path, count, prev if count else None, last_doc, anchor, tuple(expect))


def _check_head(path: Path, head: Head, at: tuple[int, str] | None, count: int, last: str | None) -> None:
    now = f"{count} entries, head {count}:{last}" if last else "no entries (empty or absent)"
    hint = (
        "mirrorctl never removes or rewrites entries: keep the journal and this head as evidence and restore the "
        "journal from a backup; to start a new journal once investigated, move the whole audit/ folder aside"
    )
    if head.entries is not None and head.entries > count:
        one = head.entries == count + 1
        gone = (
            f"entry {head.entries} (seq {count}) was removed"
            if one
            else f"entries {count + 1} to {head.entries} (seq {count} to {head.entries - 1}) were removed"
        )
        raise IntegrityError(
            f"{path}: {head.source} records {head.entries} entries (head {head}), but the journal has {now}: "
            f"{gone}",
            hint=hint,
        )
    if at is not None and at[1] == head.sha256:
        return
    if head.entries is not None:
        raise IntegrityError(
            f"{path}: {head.source} records entry {head.entries} (seq {head.entries - 1}) as {head.sha256}, "
            f"but the journal's entry {head.entries} is {at[1] if at else '?'} ({now}): the journal was "
            f"rewritten at or before entry {head.entries}",
            hint=hint,
        )
    raise IntegrityError(
        f"{path}: {head.source}, {head.sha256}, is not any of the journal's entries ({now}): entries after it "
        "were removed, or the chain was rewritten",
        hint=hint,
    )


@dataclass(frozen=True, slots=True)
class Listing:
    """What ``audit show`` prints: the count and head as ``verify`` would report them for an intact chain (not
    checked here), and the entries shown, each with its entry number."""

    path: Path
    entries: int  # lines in the journal (read_entries' count)
    head: Head | None  # ENTRIES:sha256 of the last line as it stands; None when the journal is empty
    shown: tuple[tuple[int, dict[str, Any]], ...]  # (entry number from 1, the entry or {"unreadable": text})


def listing(store: Store, n: int | None = None) -> Listing:
    """The last ``n`` entries (all when None) numbered as ``verify`` counts them; a line that is not JSON is
    ``{"unreadable": ...}`` so a damaged journal can still be looked at.

    Example: ``listing(store, 20).head`` is what ``audit verify`` prints as the head when the chain is intact.
    """
    shown: deque[tuple[int, dict[str, Any]]] = deque(maxlen=n)
    count, last = 0, b""
    for number, line in read_entries(store):
        count, last = number, line
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            doc = {"line": number, "unreadable": line.decode(errors="replace").rstrip("\n")}
        shown.append((number, doc))
    head = Head(count, hashlib.sha256(last).hexdigest(), "the journal") if count else None
    return Listing(journal_path(store), count, head, tuple(shown))


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


__all__ = [
    "AuditReport", "Head", "Listing", "anchor_path", "append", "current_head", "journal_path", "last_entries",
    "listing", "parse_head", "read_anchor", "record", "redact", "snapshot_fields", "verify",
]
