"""Locked npm tarballs -> where to download them on the configured upstream.

The lock names no host: each tarball is looked up in its package's packument on the registry configured now
(``dist.tarball``), and that version must still be listed there with the integrity the lock records. The
download is then checked by :mod:`mirrorctl.outside.fetch` against the lock's size and sha256 *and* its sha512
integrity, while it streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urljoin

from mirrorctl.ecosystems.base import FetchContext, FetchItem
from mirrorctl.errors import IntegrityError, NetworkError
from mirrorctl.lockfile import Artifact

from .registry import Packument, RegistryClient, sri_hashes, sri_to_hex


def _label(a: Artifact) -> str:
    return f"npm {a.name} {a.version} ({a.filename})"


async def fetch_plan(artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
    registry = RegistryClient(ctx.client, ctx.upstream.url, progress=ctx.progress, retries=ctx.fetch.retries)
    try:
        names = sorted({a.name for a in artifacts})
        docs = dict(zip(names, await asyncio.gather(*(registry.packument(n) for n in names)), strict=True))
        return [_item(a, docs[a.name], registry) for a in artifacts]
    finally:
        await registry.close()


def _item(a: Artifact, doc: Packument | None, registry: RegistryClient) -> FetchItem:
    label = _label(a)
    where = registry.packument_url(a.name)
    obj = doc.versions.get(a.version) if doc is not None else None
    if obj is None or not obj["dist"].get("tarball"):
        missing = "the package" if doc is None else "this locked version"
        raise NetworkError(
            f"{label}: the upstream {where} no longer lists {missing}",
            hint="run `mirrorctl lock` again to pick versions the upstream still has",
        )
    locked = str(a.attrs.get("integrity", ""))
    sha512 = sri_to_hex(locked)
    if sha512 is None:
        raise IntegrityError(
            f"{label}: the lock records no sha512 integrity ({locked!r})",
            hint="run `mirrorctl lock` again with this mirrorctl",
        )
    listed = sri_hashes(obj["dist"].get("integrity"))
    if "sha512" in listed and listed["sha512"].hex() != sha512:
        raise IntegrityError(
            f"{label}: the upstream lists integrity {obj['dist'].get('integrity')}, the lock says {locked}",
            hint="the tarball changed upstream; check the upstream, then run `mirrorctl lock` again",
        )
    shasum = obj["dist"].get("shasum")
    if "sha512" not in listed and shasum and a.attrs.get("shasum") and shasum != a.attrs.get("shasum"):
        raise IntegrityError(
            f"{label}: the upstream lists shasum {shasum}, the lock says {a.attrs.get('shasum')}",
            hint="the tarball changed upstream; check the upstream, then run `mirrorctl lock` again",
        )
    url = urljoin(where, obj["dist"]["tarball"])
    return FetchItem(url, a.filename, a.size, a.sha256, label, extra_hashes={"sha512": sha512})
