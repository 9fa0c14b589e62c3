"""The checksum database's transparent log (the rules of golang.org/x/mod sumdb/tlog): RFC 6962 hashing,
stored hash indexes, tiles, tree heads, and inclusion and consistency proofs computed from tiles.

* Record hash ``sha256(0x00 ‖ record)``, node hash ``sha256(0x01 ‖ left ‖ right)``; the tree hash of N records
  is RFC 6962's: the complete subtrees of N from the left, folded from the right.
* Stored hashes: every complete subtree hash, numbered in the order the log appends them
  (:func:`stored_hash_index`).
* A tile of height H at tile level L, number N, width W holds W hashes of tree level L·H, indexes
  N·2^H … N·2^H+W-1, as W·32 raw bytes: path ``tile/H/L/NNN`` (full, W = 2^H) or ``tile/H/L/NNN.p/W``, NNN in
  3-digit groups with ``x`` on all but the last (1234067 -> ``x001/x234/067``).
* :class:`TileHashes` reads hashes from fetched tiles and authenticates every tile as the go client does: the
  tiles on the right edge against the signed tree hash, every other tile against its parent tile. So a set of
  tiles that passes here is one the go command accepts.

A tree head is the text ``go.sum database tree\\n<N>\\n<base64 hash>\\n`` (signed: see note.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mirrorctl.errors import IntegrityError, shorten

HASH_SIZE = 32
TILE_HEIGHT = 8  # what the public database and the go command use
TREE_HEADER = "go.sum database tree\n"
EMPTY_HASH = bytes(HASH_SIZE)  # tlog.TreeHash(0): the zero hash


class TlogError(IntegrityError):
    """A tree head, tile or proof refused; ``what`` names it."""

    def __init__(self, what: str, reason: str, *, hint: str | None = None) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}", hint=hint)


def record_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def maxpow2(n: int) -> tuple[int, int]:
    """(k, log2 k): k the largest power of 2 smaller than ``n`` (n > 1)."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def stored_hash_index(level: int, n: int) -> int:
    """The position among stored hashes of the hash at tree ``level``, index ``n``."""
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The (level, n) of stored hash ``index``: the inverse of :func:`stored_hash_index`."""
    # The records before ``index`` number at least index/2; find n from below, then the level within.
    n = index // 2
    while stored_hash_index(0, n + 1) <= index:
        n += 1
    while stored_hash_index(0, n) > index:
        n -= 1
    base = stored_hash_index(0, n)
    level = index - base
    return level, n >> level


def stored_hash_count(n: int) -> int:
    """How many hashes a log of ``n`` records stores."""
    if n == 0:
        return 0
    count = stored_hash_index(0, n - 1) + 1
    i = n - 1
    while i & 1:  # the subtrees record n-1 completes
        i >>= 1
        count += 1
    return count


def sub_tree_index(lo: int, hi: int) -> list[int]:
    """Stored indexes of the complete subtrees that cover records [lo, hi), left to right."""
    need = []
    while lo < hi:
        k, level = maxpow2(hi - lo + 1)
        assert lo & (k - 1) == 0, (lo, hi)
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def leaf_proof_index(lo: int, hi: int, n: int) -> list[int]:
    """Stored indexes the inclusion proof of record ``n`` in records [lo, hi) is made of (tlog.leafProof)."""
    if lo + 1 == hi:
        return []
    k, _ = maxpow2(hi - lo)
    if n < lo + k:
        return leaf_proof_index(lo, lo + k, n) + sub_tree_index(lo + k, hi)
    return sub_tree_index(lo, lo + k) + leaf_proof_index(lo + k, hi, n)


def tree_proof_index(lo: int, hi: int, n: int) -> list[int]:
    """Stored indexes of the proof that the tree of ``n`` records is a prefix of [lo, hi) (tlog.treeProof)."""
    if n == hi:
        return [] if lo == 0 else sub_tree_index(lo, hi)
    k, _ = maxpow2(hi - lo)
    if n <= lo + k:
        return tree_proof_index(lo, lo + k, n) + sub_tree_index(lo + k, hi)
    return sub_tree_index(lo, lo + k) + tree_proof_index(lo + k, hi, n)


# -- tiles -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Tile:
    height: int
    level: int
    number: int
    width: int

    def path(self) -> str:
        parts: list[str] = []
        n = self.number
        parts.append(f"{n % 1000:03d}")
        n //= 1000
        while n > 0:
            parts.append(f"x{n % 1000:03d}")
            n //= 1000
        groups = "/".join(reversed(parts))
        partial = f".p/{self.width}" if self.width != 1 << self.height else ""
        return f"tile/{self.height}/{self.level}/{groups}{partial}"


_TILE_RE = re.compile(r"tile/([1-9][0-9]?)/(0|[1-9][0-9]*)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]*))?")


def parse_tile_path(path: str) -> Tile:
    """A ``tile/H/L/NNN[.p/W]`` path as a :class:`Tile`; data tiles (``tile/H/data/...``) are not hash tiles."""
    m = _TILE_RE.fullmatch(path)
    if not m:
        raise TlogError("the tile path", f"{shorten(path, 80)!r} is not tile/H/L/NNN[.p/W]")
    height, level = int(m.group(1)), int(m.group(2))
    if height > 30:
        raise TlogError("the tile path", f"{shorten(path, 80)!r}: tile height {height} is out of range")
    number = 0
    for part in m.group(3).split("/"):
        number = number * 1000 + int(part.lstrip("x"))
    width = int(m.group(4)) if m.group(4) else 1 << height
    if width >= 1 << height and m.group(4):
        raise TlogError("the tile path", f"{shorten(path, 80)!r}: a partial tile of width {width} is full")
    return Tile(height, level, number, width)


def tile_for_index(height: int, index: int) -> tuple[Tile, int, int]:
    """The tile holding stored hash ``index`` (just wide enough), and the hash's byte range [start, end) there:
    a hash above the tile's bottom row spans the bottom hashes it covers."""
    level, n = split_stored_hash_index(index)
    tl = level // height
    level -= tl * height
    number = (n << level) >> height
    n -= (number << height) >> level
    tile = Tile(height, tl, number, (n + 1) << level)
    return tile, (n << level) * HASH_SIZE, ((n + 1) << level) * HASH_SIZE


def tile_parent(tile: Tile, k: int, size: int) -> Tile | None:
    """The tile ``k`` tile levels above ``tile`` as a tree of ``size`` records has it (its width trimmed to
    what exists), or None when it holds nothing yet."""
    level = tile.level + k
    number = tile.number >> (k * tile.height)
    width = 1 << tile.height
    most = size >> (level * tile.height)
    if (number << tile.height) + width >= most:
        if number << tile.height >= most:
            return None
        width = most - (number << tile.height)
    return Tile(tile.height, level, number, width)


def _subtree_of(data: bytes) -> bytes:
    hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def hash_from_tile(tile: Tile, data: bytes, index: int) -> bytes:
    """Stored hash ``index`` computed from the tile's bytes (interior hashes from the bottom row)."""
    t, start, end = tile_for_index(tile.height, index)
    if (t.level, t.number) != (tile.level, tile.number) or t.width > tile.width or end > len(data):
        raise TlogError(f"tile {tile.path()}", f"does not hold stored hash {index}")
    return _subtree_of(data[start:end])


def tiles_for(size: int, indexes: Iterable[int], height: int = TILE_HEIGHT) -> list[Tile]:
    """The tiles the go client fetches to read ``indexes`` from a tree of ``size`` records: those that give
    the tree hash, then each index's tile with its parents up to one already planned (parents first)."""
    order: dict[Tile, int] = {}
    tiles: list[Tile] = []

    def plan(t: Tile) -> None:
        if t not in order:
            order[t] = len(tiles)
            tiles.append(t)

    for x in sub_tree_index(0, size):
        parent = tile_parent(tile_for_index(height, x)[0], 0, size)
        assert parent is not None
        plan(parent)
    for x in indexes:
        if x >= stored_hash_index(0, size):
            raise TlogError("the proof", f"stored hash {x} is not in a tree of {size} records")
        tile = tile_for_index(height, x)[0]
        k = 0
        while True:
            p = tile_parent(tile, k, size)
            if p is not None and p in order:
                break
            k += 1
        for down in range(k - 1, -1, -1):
            p = tile_parent(tile, down, size)
            assert p is not None
            plan(p)
    return tiles


@dataclass(frozen=True)
class Tree:
    """A tree head: ``size`` records, root ``hash``."""

    size: int
    hash: bytes

    def text(self) -> str:
        return f"{TREE_HEADER}{self.size}\n{base64.b64encode(self.hash).decode()}\n"


def parse_tree(text: str, *, what: str = "the tree head") -> Tree:
    if not text.startswith(TREE_HEADER):
        raise TlogError(what, "does not start with 'go.sum database tree'")
    lines = text[len(TREE_HEADER) :].split("\n")
    if len(lines) != 3 or lines[2] != "" or not re.fullmatch(r"0|[1-9][0-9]{0,18}", lines[0]):
        raise TlogError(what, "is not '<size>' and '<base64 hash>' lines")
    try:
        h = base64.b64decode(lines[1].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TlogError(what, "the hash is not base64") from None
    if len(h) != HASH_SIZE:
        raise TlogError(what, f"the hash is {len(h)} bytes, not {HASH_SIZE}")
    return Tree(int(lines[0]), h)


class TileHashes:
    """Hashes read from ``tiles`` (tile -> bytes) of a tree ``tree``, each tile authenticated first.

    Example: ``TileHashes(tree, fetched).record_included(7, data)``
    """

    def __init__(self, tree: Tree, tiles: Mapping[Tile, bytes], height: int = TILE_HEIGHT) -> None:
        self.tree = tree
        self.height = height
        self.tiles = dict(tiles)
        for t, data in self.tiles.items():
            if len(data) != t.width * HASH_SIZE:
                raise TlogError(f"tile {t.path()}", f"is {len(data)} bytes, not {t.width * HASH_SIZE}")
        self._authenticated: set[Tile] = set()
        if tree.size:
            self._authenticate_edge()

    def _data(self, tile: Tile) -> bytes:
        data = self.tiles.get(tile)
        if data is None:
            raise TlogError(f"tile {tile.path()}", "was not fetched")
        return data

    def _authenticate_edge(self) -> None:
        stx = sub_tree_index(0, self.tree.size)
        hashes = []
        edge = []
        for x in stx:
            t = tile_parent(tile_for_index(self.height, x)[0], 0, self.tree.size)
            assert t is not None
            edge.append(t)
            hashes.append(hash_from_tile(t, self._data(t), x))
        th = hashes[-1]
        for h in reversed(hashes[:-1]):
            th = node_hash(h, th)
        if th != self.tree.hash:
            raise TlogError(
                "the tiles", f"do not give the signed tree hash of {self.tree.size} records (an inconsistent tile)",
                hint="SECURITY: the proxy or checksum database served a tile that is not of the signed tree",
            )
        self._authenticated.update(edge)

    def _authenticate(self, tile: Tile) -> None:
        if tile in self._authenticated:
            return
        parent = tile_parent(tile, 1, self.tree.size)
        if parent is None or tile.width != 1 << self.height:
            raise TlogError(f"tile {tile.path()}", f"is not in a tree of {self.tree.size} records")
        self._authenticate(parent)
        want = hash_from_tile(parent, self._data(parent), stored_hash_index(parent.level * self.height, tile.number))
        if _subtree_of(self._data(tile)) != want:
            raise TlogError(
                f"tile {tile.path()}", "does not match its parent tile (an inconsistent tile)",
                hint="SECURITY: the proxy or checksum database served a tile that is not of the signed tree",
            )
        self._authenticated.add(tile)

    def read(self, index: int) -> bytes:
        tile = tile_for_index(self.height, index)[0]
        t = tile_parent(tile, 0, self.tree.size)
        if t is None:
            raise TlogError("the proof", f"stored hash {index} is not in a tree of {self.tree.size} records")
        self._authenticate(t)
        return hash_from_tile(t, self._data(t), index)

    def range_hash(self, lo: int, hi: int) -> bytes:
        """The RFC 6962 hash of records [lo, hi) from the complete subtrees covering it."""
        hashes = [self.read(x) for x in sub_tree_index(lo, hi)]
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = node_hash(left, h)
        return h

    def record_included(self, index: int, data: bytes, *, what: str = "the record") -> None:
        """Check that ``data`` is record ``index`` of the tree: its RFC 6962 audit path from the tiles, checked
        against the signed root. Raises :class:`TlogError`."""
        size = self.tree.size
        if not 0 <= index < size:
            raise TlogError(what, f"record {index} is not in a tree of {size} records")
        path = _audit_path(self, index, 0, size)
        if root_from_inclusion(index, size, record_hash(data), path) != self.tree.hash:
            raise TlogError(
                what, f"is not record {index} of the signed tree of {size} records",
                hint="SECURITY: the checksum database's answer was altered; do not use these checksums",
            )

    def consistent_with(self, old: Tree, *, what: str = "the earlier tree head") -> None:
        """Check that ``old`` is a prefix of this tree (an RFC 6962 consistency proof from the tiles)."""
        new = self.tree
        if old.size > new.size:
            raise TlogError(what, f"has {old.size} records, more than the newer head's {new.size}")
        if old.size == new.size:
            if old.hash != new.hash:
                raise TlogError(what, f"differs from the newer head of the same size {new.size}", hint=_FORK)
            return
        if old.size == 0:
            return
        proof = _consistency_proof(self, old.size, 0, new.size, True)
        if not verify_consistency(old.size, new.size, old.hash, new.hash, proof):
            raise TlogError(what, f"of {old.size} records is not a prefix of the newer head of {new.size}", hint=_FORK)


_FORK = "SECURITY: the checksum database shows different histories (a fork); keep the earlier head and report it"


def _audit_path(r: TileHashes, m: int, lo: int, hi: int) -> list[bytes]:
    if hi - lo == 1:
        return []
    k, _ = maxpow2(hi - lo)
    if m < lo + k:
        return [*_audit_path(r, m, lo, lo + k), r.range_hash(lo + k, hi)]
    return [*_audit_path(r, m, lo + k, hi), r.range_hash(lo, lo + k)]


def _consistency_proof(r: TileHashes, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
    # RFC 9162 SUBPROOF over records [lo, hi); m counts from lo
    if lo + m == hi:
        return [] if whole else [r.range_hash(lo, hi)]
    k, _ = maxpow2(hi - lo)
    if m <= k:
        return [*_consistency_proof(r, m, lo, lo + k, whole), r.range_hash(lo + k, hi)]
    return [*_consistency_proof(r, m - k, lo + k, hi, False), r.range_hash(lo, lo + k)]


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2: the root an audit path leads to, None when the path has the wrong shape."""
    fn, sn, h = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            h = node_hash(p, h)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            h = node_hash(h, p)
        fn >>= 1
        sn >>= 1
    return h if sn == 0 else None


def verify_consistency(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2 for 0 < m < n."""
    if not proof:
        return False
    if m & (m - 1) == 0:
        proof = [old, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old and sr == new and sn == 0


def build_tiles(leaves: list[bytes], height: int = TILE_HEIGHT) -> dict[tuple[int, int], bytes]:
    """Every full or partial tile's bytes of a tree over record hashes ``leaves``: (tile level, number) ->
    the widest bytes; a narrower tile is a prefix. For fixtures and an inside database."""
    out: dict[tuple[int, int], bytes] = {}
    row = list(leaves)
    level = 0
    while row:
        for number in range(0, (len(row) + (1 << height) - 1) >> height):
            out[(level, number)] = b"".join(row[number << height : (number + 1) << height])
        for _ in range(height):
            row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
    return out


def tree_hash(leaves: list[bytes]) -> bytes:
    """The RFC 6962 root of ``leaves`` (record hashes), directly."""
    if not leaves:
        return EMPTY_HASH
    if len(leaves) == 1:
        return leaves[0]
    k, _ = maxpow2(len(leaves))
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))
