"""Locked .debs -> where to download them on the configured upstream.

The lock names no host: each .deb is fetched from ``<upstream url>/<attrs.pool>`` (the index's Filename, which
is relative to the archive root) and checked by :mod:`mirrorctl.outside.fetch` against the Size and SHA256 the verified
index listed, while it streams. No index is read again: the lock already carries what the signature vouched for.
"""

from __future__ import annotations

from collections.abc import Sequence

from mirrorctl.ecosystems.base import FetchContext, FetchItem
from mirrorctl.lockfile import Artifact

from .lock import fetch_item
from .spec import validate_artifact


async def fetch_plan(artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
    for a in artifacts:
        validate_artifact(a)  # a pool path from a hand-edited lock must not reach outside the archive
    return [fetch_item(a, ctx.upstream.url) for a in artifacts]
