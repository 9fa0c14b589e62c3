"""Serving the public checksum database's data inside (design (a) of client.py): the answers under
``<mirror>/go/sumdb/<name>/`` made from one :class:`~mirrorctl.ecosystems.go.sumdb.client.Evidence` alone.

* ``supported``: empty, 200 (the go command then asks this mirror only, never the database's own host);
* ``latest``: the carried signed head;
* ``lookup/M@V``: a carried record paired with that head (:func:`~.client.lookup_body`);
* ``tile/8/L/NNN[.p/W]``: a carried tile, or the prefix of a carried wider one (a narrower partial tile is by
  definition the prefix: a workspace holding an older head asks for those first);
* anything else: None (the server answers 404, and go fails for a module that was not mirrored).

Nothing here can make a record verify that the database did not sign: the go command checks the head's
signature with the public key and every record's inclusion itself.

One head serves every record: evidences of different heads cannot be merged inside (a record proven against
one head needs that head's tiles to be proven against another), so the outside makes one evidence for all the
records a bundle carries, with the consistency tiles from the heads of the earlier bundles
(``SumdbClient.evidence(earlier=...)``).

Example: ``body = Passthrough(evidence).answer("lookup/example.test/!m@v1.0.0")``
"""

from __future__ import annotations

from .client import Evidence, lookup_body, lookup_path
from .tlog import HASH_SIZE, TlogError, parse_tile_path


class Passthrough:
    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self._lookups = {lookup_path(r.module, r.version): r for r in evidence.records}
        self._widest: dict[tuple[int, int, int], tuple[int, bytes]] = {}
        for path, data in evidence.tiles.items():
            t = parse_tile_path(path)
            key = (t.height, t.level, t.number)
            if key not in self._widest or self._widest[key][0] < t.width:
                self._widest[key] = (t.width, data)

    def answer(self, rel: str) -> bytes | None:
        """The body for ``rel`` (a path under ``sumdb/<name>/``), or None for a 404."""
        if rel == "supported":
            return b""
        if rel == "latest":
            return self.evidence.head
        record = self._lookups.get(rel)
        if record is not None:
            return lookup_body(record.id, record.text, self.evidence.head)
        if not rel.startswith("tile/"):
            return None
        try:
            tile = parse_tile_path(rel)
        except TlogError:
            return None
        width, data = self._widest.get((tile.height, tile.level, tile.number), (0, b""))
        return data[: tile.width * HASH_SIZE] if tile.width <= width else None
