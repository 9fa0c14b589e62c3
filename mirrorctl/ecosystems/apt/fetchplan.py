"""Locked .debs -> where to download them on the configured upstream.

The lock names no host: each .deb is fetched from ``<archive url>/<attrs.pool>``, the archive being the one
``attrs.archive`` names (``[upstreams.apt.archives.<name>]``; none: ``[upstreams.apt]``) (the index's Filename, which
is relative to the archive root) and checked by :mod:`mirrorctl.outside.fetch` against the Size and SHA256 the verified
index listed, while it streams. No index is read again: the lock already carries what the signature vouched for.
"""

from __future__ import annotations

from collections.abc import Sequence

from mirrorctl.ecosystems.base import FetchContext, FetchItem
from mirrorctl.errors import UserError
from mirrorctl.lockfile import Artifact

from .lock import fetch_item, label
from .settings import archive_named, archives
from .spec import validate_artifact


async def fetch_plan(artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
    items: list[FetchItem] = []
    for a in artifacts:
        validate_artifact(a)  # a pool path from a hand-edited lock must not reach outside the archive
        name = str(a.attrs.get("archive", ""))
        archive = archive_named(ctx.upstream, name)
        if archive is None:
            known = ", ".join(x.table for x in archives(ctx.upstream))
            raise UserError(
                f"{label(a)}: the lock says it comes from archive {name!r}, and mirrorctl.toml has no "
                f"[upstreams.apt.archives.{name}]",
                hint=f"add that archive (url, keyring, suites) or lock again; configured: {known}",
            )
        items.append(fetch_item(a, archive.url))
    return items
