"""Locked .debs -> where to download them on the configured upstream.

The lock names no host: each .deb is fetched from ``<archive url>/<attrs.pool>`` (the index's Filename, which is
relative to the archive root), the archive being the one ``attrs.archive`` names (``[upstreams.apt.archives.
<name>]``; none: ``[upstreams.apt]``), and checked by :mod:`mirrorctl.outside.fetch` against the Size and SHA256
the verified index listed, while it streams. Before that, the InRelease of each (archive, suite) something is
still to be downloaded from is verified with that archive's own keyring: the lock's digests vouch for the files,
this for the source. No index is read again: the lock already carries what the signature vouched for.
"""

from __future__ import annotations

from collections.abc import Sequence

from mirrorctl.ecosystems.base import FetchContext, FetchItem
from mirrorctl.errors import UserError
from mirrorctl.lockfile import Artifact

from .lock import fetch_item, label, verified_release
from .settings import AptArchive, archive_named, archives
from .spec import validate_artifact


async def fetch_plan(artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
    items: list[FetchItem] = []
    missing: dict[tuple[str, str], AptArchive] = {}  # (archive, suite) of each .deb still to download
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
        if not ctx.store.has_blob(a.sha256):
            missing.setdefault((name, str(a.attrs["suite"])), archive)
    # Before a .deb is fetched from an archive, that archive's suite must still be signed by the keyring
    # mirrorctl.toml names for it (the lock's digests vouch for the files; this vouches for the source).
    for (_, suite), archive in sorted(missing.items()):
        await verified_release(ctx.client, archive, suite, ctx.fetch.retries, named_at="the lock")
    return items
