"""An async checksum-database client: a module version's ``h1:`` lines, proven against a signed tree head.

It reads the database through the proxy, as the go command does when ``<proxy>/sumdb/<name>/supported``
answers: every request is a path under ``<proxy>/sumdb/<name>/`` handed to an injected :data:`Fetch`
(:func:`http_fetch` makes one over the runtime's HTTP client and retry policy). A lookup

1. GETs ``lookup/<escaped module>@<escaped version>``: the record id, the record (the go.sum lines) and a
   signed tree head;
2. opens the head with the verifier key (note.py) and, when it is newer than the head already held, proves
   the held head is a prefix of it (a consistency proof from tiles) before adopting it;
3. fetches exactly the tiles the go client fetches (tlog.tiles_for), authenticates each, and proves the
   record is in the held tree (an inclusion proof).

Any failure is a :class:`~mirrorctl.errors.ChecksumMismatch` naming the module (SECURITY): a forged record, a
bad signature, a wrong tile, a head that forks from an earlier one. :meth:`SumdbClient.check` also compares
the database's lines with checksums computed from the files.

What a lock carries (:meth:`SumdbClient.evidence`): one signed head, each looked-up record (id and text), and
the tiles, at that head's size, that prove every record and the consistency with each earlier head named.

**Serving inside: design (a), pass the public database through.** Recommended over (b), an inside database
signed with an inside key. With (a) the workspace keeps the public verifier key (the go command's default
GOSUMDB), so nobody on the way or inside (the mirror host included) can forge a record: every record's
inclusion is checked by the go command itself against the public database's signature, the same end-to-end
check as outside. The inside serves ``supported``; ``latest`` = the carried head; ``lookup/M@V`` = the carried
record paired with that one head (:func:`lookup_body`: the signature covers only the head, so any record of the
tree goes with it); and the carried tiles. A record not carried answers 404, and go fails, as it must for a
module not mirrored. (b) would need an inside signing key whose holder can make any h1 verify, a second
trust root each workspace must be given, and lets a compromised mirror host serve altered zips that pass.
Across imports: each new lock's head is newer; the lock carries the tiles of the consistency proof from the
heads of the earlier locks still served (``evidence(earlier=...)``), so a workspace that cached an older head
accepts the new one (tests/test_go_sumdb_real_go.py shows go failing without them). Such a workspace first asks
for tiles at its old head's widths (``.p/W``); on a 404 go takes the full tile; passthrough.py answers them
with the prefix of the carried wider tile. passthrough.py is what ``serve`` mounts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from mirrorctl.ecosystems.go import modpath
from mirrorctl.errors import ChecksumMismatch, IntegrityError, NetworkError
from mirrorctl.net import RetryPolicy, retrying

from . import note, tlog

Fetch = Callable[[str], Awaitable[bytes]]
"""``await fetch("lookup/example.test/!m@v1.0.0")`` -> the body of ``<proxy>/sumdb/<name>/<path>``; raises
:class:`~mirrorctl.errors.NetworkError` (``status`` 404/410: not there)."""


MAX_ANSWER = 1 << 20  # a tile is 8 KiB, a lookup or head a few hundred bytes: more is a hostile answer


def http_fetch(client: httpx.AsyncClient, proxy_url: str, name: str, policy: RetryPolicy) -> Fetch:
    """A :data:`Fetch` over the runtime's one HTTP client and its retry policy; an answer past
    :data:`MAX_ANSWER` bytes is refused before it is read whole."""
    base = f"{proxy_url.rstrip('/')}/sumdb/{name}/"

    async def fetch(path: str) -> bytes:
        async def once() -> bytes:
            async with client.stream("GET", base + path) as response:
                response.raise_for_status()
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise ChecksumMismatch(
                            f"{path}", database=name, reason=f"the answer is over {MAX_ANSWER} bytes"
                        )
                return bytes(body)

        return await retrying(once, f"checksum database {name} {path}", policy)

    return fetch


def lookup_path(module: str, version: str) -> str:
    """``lookup/<escaped module>@<escaped version>``; a path or version outside Go's grammar is refused
    (:class:`~mirrorctl.ecosystems.go.modpath.InvalidPath` / ``InvalidVersion``) before any request."""
    return f"lookup/{modpath.escape_path(module)}@{modpath.escape_version(version)}"


def lookup_body(record_id: int, record: str, signed_head: bytes) -> bytes:
    """A ``lookup`` answer: the record id, the record text (ending in a newline), a blank line, the head."""
    return f"{record_id}\n{record}\n".encode() + signed_head


@dataclass(frozen=True)
class Record:
    """One looked-up module version: its ``id`` in the log, the record ``text`` (go.sum lines), the hashes."""

    module: str
    version: str
    id: int
    text: str
    h1: str | None  # the zip's ``h1:``; None for a module version the database holds only a go.mod line for
    gomod_h1: str


@dataclass(frozen=True)
class Evidence:
    """What a lock carries to serve the public database's data inside: one signed ``head`` (note bytes) of
    ``tree``, the ``records``, and the ``tiles`` (path -> bytes) proving each of them and each earlier head."""

    head: bytes
    tree: tlog.Tree
    records: tuple[Record, ...]
    tiles: dict[str, bytes] = field(default_factory=dict)


def _parse_lookup(name: str, what: str, data: bytes) -> tuple[int, str, bytes]:
    first = data.find(b"\n")
    blank = data.find(b"\n\n")
    if first <= 0 or blank < first or not re.fullmatch(rb"0|[1-9][0-9]{0,18}", data[:first]):
        raise ChecksumMismatch(what, database=name, reason="the lookup answer is not '<id>', record, blank, head")
    try:
        text = data[first + 1 : blank + 1].decode("utf-8")
    except UnicodeDecodeError:
        raise ChecksumMismatch(what, database=name, reason="the record is not UTF-8") from None
    return int(data[:first]), text, data[blank + 2 :]


def _record_lines(name: str, what: str, module: str, version: str, text: str) -> tuple[str | None, str]:
    h1: str | None = None
    gomod: str | None = None
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != module:
            continue
        if fields[1] == version:
            h1 = fields[2]
        elif fields[1] == version + "/go.mod":
            gomod = fields[2]
    if gomod is None:
        raise ChecksumMismatch(what, database=name, reason="the database's record has no go.mod line for it")
    return h1, gomod


class SumdbClient:
    """Lookups in the checksum database ``verifier`` names, through ``fetch``; ``known`` is a head held from
    before (a cached or locked one), which every newer head must extend.

    Example::

        client = SumdbClient(verifier_key, http_fetch(rt.client, proxy, "sumdb.test", rt.retry))
        record = await client.check("example.test/m", "v1.0.0", h1=zip_h1, gomod_h1=mod_h1)
        evidence = await client.evidence()
    """

    def __init__(self, verifier: str | note.Verifier, fetch: Fetch, *, known: tlog.Tree | None = None) -> None:
        self.verifier = verifier if isinstance(verifier, note.Verifier) else note.Verifier.parse(verifier)
        self.name = self.verifier.name
        self._fetch = fetch
        self.tree = known or tlog.Tree(0, tlog.EMPTY_HASH)
        self.head: bytes | None = None
        self._earlier: list[tlog.Tree] = [known] if known and known.size else []
        self._tiles: dict[tlog.Tile, bytes] = {}
        self.records: dict[tuple[str, str], Record] = {}

    async def supported(self) -> bool:
        """True when the proxy serves this database (``supported`` answers 200), False on 404/410."""
        try:
            await self._fetch("supported")
        except NetworkError as exc:
            if exc.status in (404, 410):
                return False
            raise
        return True

    async def latest(self) -> tlog.Tree:
        """The database's latest signed head, checked and adopted (consistent with the one held)."""
        data = await self._fetch("latest")
        await self._adopt(data, f"the latest head of {self.name}")
        return self.tree

    async def lookup(self, module: str, version: str) -> Record:
        """The database's record for ``module`` ``version``, proven in the held tree."""
        what = f"{module} {version}"
        known = self.records.get((module, version))
        if known is not None:
            return known
        data = await self._fetch(lookup_path(module, version))
        record_id, text, head = _parse_lookup(self.name, what, data)
        h1, gomod = _record_lines(self.name, what, module, version, text)
        await self._adopt(head, what)
        await self._prove(what, [(record_id, text)])
        record = Record(module, version, record_id, text, h1, gomod)
        self.records[(module, version)] = record
        return record

    async def check(self, module: str, version: str, *, h1: str | None = None, gomod_h1: str | None = None) -> Record:
        """:meth:`lookup`, then the hashes computed from the files compared with the database's."""
        record = await self.lookup(module, version)
        what = f"{module} {version}"
        if h1 is not None and record.h1 != h1:
            raise ChecksumMismatch(what, database=self.name, reason="checksum mismatch (the zip)",
                                   expected=record.h1 or "no zip line", actual=h1)
        if gomod_h1 is not None and record.gomod_h1 != gomod_h1:
            raise ChecksumMismatch(what + "/go.mod", database=self.name, reason="checksum mismatch (the go.mod)",
                                   expected=record.gomod_h1, actual=gomod_h1)
        return record

    async def evidence(self, earlier: Iterable[tlog.Tree] = ()) -> Evidence:
        """The held head, the records looked up, and the tiles at the head's size that prove them all and the
        consistency from each head in ``earlier`` (and the one this client started from)."""
        if self.head is None:
            await self.latest()
        assert self.head is not None
        olds = [t for t in [*self._earlier, *earlier] if 0 < t.size < self.tree.size]
        records = sorted(self.records.values(), key=lambda r: r.id)
        tiles = await self._prove("the records", [(r.id, r.text) for r in records], olds)
        return Evidence(self.head, self.tree, tuple(records), {t.path(): self._tiles[t] for t in tiles})

    async def _adopt(self, data: bytes, what: str) -> None:
        try:
            opened = note.open_note(data, [self.verifier], what=f"the tree head signed for {what}")
            tree = tlog.parse_tree(opened.text, what=f"the tree head signed for {what}")
        except IntegrityError as exc:
            raise ChecksumMismatch(what, database=self.name, reason=str(exc)) from exc
        if tree.size < self.tree.size:
            await self._prove(what, [], [tree])  # an older head must be a prefix of the held one
            return
        if tree == self.tree:
            self.head = self.head or data
            return
        if self.tree.size:
            held = self.tree
            previous = self.tree, self.head
            self.tree, self.head = tree, data
            try:
                await self._prove(what, [], [held])
            except ChecksumMismatch:
                self.tree, self.head = previous
                raise
        self.tree, self.head = tree, data

    async def _prove(
        self, what: str, records: list[tuple[int, str]], olds: Iterable[tlog.Tree] = ()
    ) -> list[tlog.Tile]:
        olds = list(olds)
        tree = self.tree
        indexes: list[int] = []
        for record_id, _ in records:
            if not 0 <= record_id < tree.size:
                raise ChecksumMismatch(what, database=self.name,
                                       reason=f"record {record_id} is not in the signed tree of {tree.size} records")
            indexes += tlog.leaf_proof_index(0, tree.size, record_id)
        for old in olds:
            if 0 < old.size < tree.size:
                indexes += tlog.tree_proof_index(0, tree.size, old.size)
        planned = tlog.tiles_for(tree.size, indexes) if tree.size else []
        for tile in planned:
            if tile not in self._tiles:
                self._tiles[tile] = await self._fetch(tile.path())
        try:
            hashes = tlog.TileHashes(tree, {t: self._tiles[t] for t in planned})
            for record_id, text in records:
                hashes.record_included(record_id, text.encode(), what=f"the record of {what}")
            for old in olds:
                hashes.consistent_with(old, what=f"the earlier head of {old.size} records")
        except IntegrityError as exc:
            for tile in planned:  # a wrong tile must not stay cached for the next proof
                self._tiles.pop(tile, None)
            raise ChecksumMismatch(what, database=self.name, reason=str(exc)) from exc
        return planned
