"""Line deltas: a lock or the SBOM of a delta bundle, carried as the changes against the inside's copy.

A version bump changes a few lines of a profile's lock and SBOM; carrying them whole costs ~1.4 kB per artifact of
the profile. A line delta is canonical JSON::

    {"base-sha256": "<hex>", "ops": [[0, 120], "new line\\nanother\\n", [124, 3000]]}

Each op is either ``[start, end]`` (copy lines ``start`` to ``end - 1`` of the base, 0-based, end exclusive) or a
string (insert that UTF-8 text). Lines end with ``\\n`` (the last one may not). The ops come from a patience
diff: lines that occur once in each file anchor the match (the longest increasing run of them), extended over
equal neighbours. ``difflib.SequenceMatcher`` gives the same ops on these files but takes seconds on an SBOM of a
few hundred components (its lines repeat a lot); this is linear apart from one sort.

Trust: the inside applies a delta only after the manifest's signature verified and only to rebuild a file the
manifest lists with its size and sha256; the result is accepted only if both match. Applying is bounded: the
delta member's size (manifest.MAX_DELTA_SIZE), every op inside the base, no empty op, and the output stops at the
listed size.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mirrorctl.errors import BundleRefused

from .manifest import MAX_DELTA_SIZE


def _lines(data: bytes) -> list[bytes]:
    return io.BytesIO(data).readlines()  # splits after b"\n" only; joined back they are exactly ``data``


def make_delta(base: bytes, new: bytes) -> bytes | None:
    """The line delta turning ``base`` into ``new``, or None when it would not be smaller (or new is not UTF-8).

    Checked by applying it before it is returned: export never writes a delta that does not rebuild ``new``."""
    try:
        new.decode("utf-8")
    except UnicodeDecodeError:
        return None
    a, b = _lines(base), _lines(new)
    ops: list[Any] = []
    j = 0
    for i1, j1, n in _blocks(a, b):
        if j1 > j:  # lines of the new file not in the base
            ops.append(b"".join(b[j:j1]).decode("utf-8"))
        ops.append([i1, i1 + n])
        j = j1 + n
    if j < len(b):
        ops.append(b"".join(b[j:]).decode("utf-8"))
    delta = json.dumps(
        {"base-sha256": hashlib.sha256(base).hexdigest(), "ops": ops},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    ).encode()  # fmt: skip
    if len(delta) >= len(new) or len(delta) > MAX_DELTA_SIZE:
        return None
    rebuilt = apply_delta("export", delta, base, hashlib.sha256(base).hexdigest(), len(new))
    if rebuilt != new:  # pragma: no cover - difflib is exact; this guards the format, not the library
        raise AssertionError("line delta does not rebuild its file")
    return delta


def _blocks(a: list[bytes], b: list[bytes]) -> Iterator[tuple[int, int, int]]:
    """Equal runs ``(i, j, n)``: ``a[i:i+n] == b[j:j+n]``, increasing in both ``i`` and ``j``."""
    count_a, count_b = Counter(a), Counter(b)
    where_b = {line: j for j, line in enumerate(b) if count_b[line] == 1}
    pairs = [(i, where_b[line]) for i, line in enumerate(a) if count_a[line] == 1 and line in where_b]
    # The longest run of anchors increasing in j (pairs are increasing in i): patience sorting.
    tails: list[int] = []  # tails[k]: j of the smallest last anchor of an increasing run of length k + 1
    tail_at: list[int] = []  # index in pairs of that anchor
    back: list[int] = []  # predecessor of each pair in its run
    for k, (_, j) in enumerate(pairs):
        pos = bisect.bisect_left(tails, j)
        back.append(tail_at[pos - 1] if pos else -1)
        if pos == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[pos], tail_at[pos] = j, k
    anchors: list[tuple[int, int]] = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        anchors.append(pairs[k])
        k = back[k]
    anchors.reverse()
    lo_i = lo_j = 0
    for i, j in anchors:
        if i < lo_i or j < lo_j:  # already inside the previous run
            continue
        start = 0
        while i - start > lo_i and j - start > lo_j and a[i - start - 1] == b[j - start - 1]:
            start += 1
        end = 1
        while i + end < len(a) and j + end < len(b) and a[i + end] == b[j + end]:
            end += 1
        yield i - start, j - start, start + end
        lo_i, lo_j = i + end, j + end


def apply_delta(where: str, delta: bytes, base: bytes, base_sha256: str, size: int) -> bytes:
    """Rebuild a file from ``delta`` and ``base`` (whose sha256 the caller checked is ``base_sha256``).

    ``where`` names the member in every refusal. The output never grows past ``size`` bytes; the caller compares
    the result's size and sha256 with the manifest."""
    if len(delta) > MAX_DELTA_SIZE:
        raise BundleRefused(f"{where}: line delta is {len(delta)} bytes, more than the {MAX_DELTA_SIZE} allowed")
    try:
        doc = json.loads(delta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BundleRefused(f"{where}: line delta is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"base-sha256", "ops"} or not isinstance(doc["ops"], list):
        raise BundleRefused(f"{where}: line delta must be an object with exactly base-sha256 and ops (a list)")
    if doc["base-sha256"] != base_sha256:
        raise BundleRefused(
            f"{where}: line delta is against {str(doc['base-sha256'])[:80]!r}, the manifest says {base_sha256}"
        )
    lines = _lines(base)
    out = bytearray()
    for i, op in enumerate(doc["ops"]):
        if isinstance(op, str):
            chunk = op.encode("utf-8")
        elif (
            isinstance(op, list)
            and len(op) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in op)
            and 0 <= op[0] < op[1] <= len(lines)
        ):
            chunk = b"".join(lines[op[0] : op[1]])
        else:
            raise BundleRefused(
                f"{where}: line delta op {i} ({str(op)[:80]}) is neither a text nor a range of the base's "
                f"{len(lines)} lines"
            )
        if not chunk:
            raise BundleRefused(f"{where}: line delta op {i} is empty")
        if len(out) + len(chunk) > size:
            raise BundleRefused(f"{where}: the rebuilt file would be larger than the {size} bytes the manifest lists")
        out += chunk
    return bytes(out)
