"""Locked PyPI artifacts -> where to download them on the configured upstream.

The lock names no host: each file is looked up by name on its project's page of the upstream configured
now, and must still be listed there (with the same sha256 when the page lists one). Where ``mirrorctl lock``
saw a file on this same upstream, the URL it recorded is used without reading the page again; the download
is checked against the lock's sha256 all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from packaging.utils import canonicalize_name

from mirrorctl.ecosystems.base import FetchContext, FetchItem
from mirrorctl.errors import IntegrityError, NetworkError
from mirrorctl.lockfile import Artifact

from .index import IndexClient
from .metacache import UrlCache


def _items(a: Artifact, url: str, label: str) -> list[FetchItem]:
    items = [FetchItem(url, a.filename, a.size, a.sha256, label)]
    for c in a.companions:
        items.append(FetchItem(url + c.suffix, a.filename + c.suffix, c.size, c.sha256, f"{label}{c.suffix}"))
    return items


async def fetch_plan(artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
    index = IndexClient(ctx.client, ctx.upstream.url, progress=ctx.progress, retries=ctx.fetch.retries)
    seen = UrlCache(ctx.store.root / "cache" / "pypi-urls", index.base_url).get()
    items: list[FetchItem] = []
    unknown: list[Artifact] = []
    for a in artifacts:
        if a.sha256 in seen:
            items.extend(_items(a, seen[a.sha256], f"pypi {a.name} {a.version} ({a.filename})"))
        else:
            unknown.append(a)
    try:
        names = sorted({canonicalize_name(a.name) for a in unknown})
        listed = await asyncio.gather(*(index.project(n) for n in names))
        pages = {n: {f.filename: f for f in files} for n, files in zip(names, listed, strict=True)}
        for a in unknown:
            label = f"pypi {a.name} {a.version} ({a.filename})"
            rec = pages[canonicalize_name(a.name)].get(a.filename)
            if rec is None:
                raise NetworkError(
                    f"{label}: the upstream {index.project_url(a.name)} no longer lists this locked file",
                    hint="run `mirrorctl lock` again to pick files the upstream still has",
                )
            if rec.sha256 and rec.sha256 != a.sha256:
                raise IntegrityError(
                    f"{label}: the upstream lists sha256 {rec.sha256}, the lock says {a.sha256}",
                    hint="the file changed upstream; check the upstream, then run `mirrorctl lock` again",
                )
            items.extend(_items(a, rec.url, label))
        return items
    finally:
        await index.close()
