"""A stored blob as an HTTP response, without a trip to the thread pool when its bytes are in memory.

Starlette's FileResponse stats, opens, reads each 64 KiB chunk, reads again to find the end and closes, each
in its own trip to the thread pool: five or more thread switches for a 67 KB wheel, which was most of the time
a file request took under load (issue 12). Here a GET of a blob up to ``SMALL`` bytes is opened, checked and
read whole and sent as one body: on the event loop when the kernel has its pages cached (a read with
RWF_NOWAIT, which fails rather than wait for the disk), else in one trip to the thread pool. HEAD, Range
requests and larger blobs keep FileResponse, which streams them in bounded chunks and answers ranges. The bytes
are the store's blob at its digest, the same file FileResponse would have opened: what the view names.

Example::

    response = await blob_response(request, view.blob_path(sha), media_type="application/octet-stream",
                                   headers={"ETag": f'"{sha}"'})
    if response is None:  # the blob is missing: the store is damaged
        ...
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, Response

# Larger blobs stream through FileResponse, so a burst of big downloads never holds them whole in memory.
SMALL = 1024 * 1024


_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)  # Linux; elsewhere every read goes to the thread pool


class _NotCached(Exception):
    """Reading would wait for the disk."""


def _read_small(path: Path, *, nowait: bool = False) -> tuple[os.stat_result, bytes | None] | None:
    """(stat, whole content) for a regular file up to SMALL bytes, (stat, None) for a larger one, None when
    missing. One open, so the size and the bytes are of the same file. ``nowait``: raise _NotCached rather
    than wait for the disk (the open and stat may still touch it, but a served blob's inode is nearly always
    cached; its data is what may not be)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > SMALL:
            return st, None
        if nowait:
            if _NOWAIT is None:
                raise _NotCached
            buf = bytearray(st.st_size)
            try:
                got = os.preadv(fd, [buf], 0, _NOWAIT) if st.st_size else 0
            except OSError as exc:  # EAGAIN: not all in memory; EOPNOTSUPP: a file system without it
                raise _NotCached from exc
            if got != st.st_size:
                raise _NotCached
            return st, bytes(buf)
        chunks: list[bytes] = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return st, b"".join(chunks)
    finally:
        os.close(fd)


async def blob_response(
    request: Request, path: Path, *, media_type: str, headers: Mapping[str, str]
) -> Response | None:
    """The blob at ``path`` with ``headers``; None when the file is missing (the caller names the damage)."""
    if request.method != "GET" or "range" in request.headers:
        try:
            st = await anyio.to_thread.run_sync(os.stat, path)
        except FileNotFoundError:
            return None
        return FileResponse(path, stat_result=st, media_type=media_type, headers=dict(headers))
    try:
        found = _read_small(path, nowait=True)
    except _NotCached:
        found = await anyio.to_thread.run_sync(_read_small, path)
    if found is None:
        return None
    st, body = found
    if body is None or len(body) != st.st_size:
        # Large, or shorter than its size (a store damaged under us): let FileResponse stream what is there.
        return FileResponse(path, stat_result=st, media_type=media_type, headers=dict(headers))
    response = Response(body, media_type=media_type, headers=dict(headers))
    # The headers FileResponse sends, so a client sees the same response whichever path served it.
    response.headers.setdefault("accept-ranges", "bytes")
    response.headers.setdefault("last-modified", formatdate(st.st_mtime, usegmt=True))
    return response
