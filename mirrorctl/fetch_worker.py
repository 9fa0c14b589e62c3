"""Early downloads in a child process, for ``mirrorctl lock --snapshot``.

Why a process: resolution is Python work in resolver threads that talk to the event loop for every page and
metadata file; streaming ~200 MB through httpx and hashing it is Python work too. In one process both share
one interpreter lock, and each slows the other down more than the overlap gains. A child process (started
with ``spawn``: no threads are forked) runs :class:`~mirrorctl.fetch.SpeculativeFetcher` on another CPU, with
its own HTTP client built from the same settings. It writes into the same store through the same verified
path (flocked ``.part``, hash, fsync, rename), so the parent's snapshot simply waits for a file the child is
still downloading and then finds the blob.

Example::

    early = ProcessFetcher(settings)
    early.submit(item)
    early.cancel_unless(locked_sha256s)
    stats = await early.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any

from mirrorctl.config import Settings
from mirrorctl.ecosystems.base import FetchItem
from mirrorctl.progress import SILENT


class ProcessFetcher:
    """Same interface as :class:`~mirrorctl.fetch.SpeculativeFetcher`, the downloads done by a child."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._proc: Any = None  # started with the first download: an up-to-date lock starts no process
        self._conn: Connection | None = None
        self._sent: set[str] = set()
        self._open = True
        self.downloaded = self.downloaded_bytes = self.failed = self.cancelled = 0

    def submit(self, item: FetchItem) -> None:
        if item.sha256 in self._sent or not self._open:
            return
        if self._proc is None:
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_child_main, args=(self._settings, child), name="mirrorctl-fetch", daemon=True
            )
            self._proc.start()
            child.close()
        self._sent.add(item.sha256)
        self._send(("get", item))

    def cancel_unless(self, wanted: set[str]) -> None:
        if self._proc is not None:
            self._send(("keep", wanted))

    async def wait(self) -> None:
        await self._finish(("end", None))

    async def abort(self) -> None:
        await self._finish(("abort", None))

    def _send(self, message: tuple[str, Any]) -> None:
        assert self._conn is not None
        try:
            self._conn.send(message)  # small messages: the pipe takes them without blocking the loop
        except (BrokenPipeError, OSError):  # the child died: the snapshot fetches what it did not
            self._open = False

    async def _finish(self, message: tuple[str, Any]) -> None:
        if self._proc is None or self._conn is None:
            return
        conn = self._conn
        if self._open:
            self._send(message)
        try:
            if self._open:
                stats = await asyncio.to_thread(conn.recv)
                self.downloaded, self.downloaded_bytes, self.failed, self.cancelled = stats
        except (EOFError, OSError):
            pass
        finally:
            self._open = False
            conn.close()
            await asyncio.to_thread(self._proc.join, 30)
            if self._proc.is_alive():
                self._proc.kill()


def _child_main(settings: Settings, conn: Connection) -> None:
    try:
        asyncio.run(_serve(settings, conn))
    except KeyboardInterrupt:  # the parent's Ctrl-C reaches the whole process group: stop quietly
        pass
    finally:
        conn.close()


async def _serve(settings: Settings, conn: Connection) -> None:
    from mirrorctl.fetch import SpeculativeFetcher
    from mirrorctl.net import build_client
    from mirrorctl.store import Store

    async with build_client(settings, os.environ) as client:
        early = SpeculativeFetcher(
            Store(settings.store_path), client,
            concurrency=settings.fetch.concurrency, retries=settings.fetch.retries, progress=SILENT,
        )
        kind = "end"
        try:
            while True:
                try:
                    kind, value = await asyncio.to_thread(conn.recv)
                except EOFError:  # the parent is gone: do not leave downloads running for nobody
                    kind = "abort"
                if kind == "get":
                    early.submit(value)
                elif kind == "keep":
                    early.cancel_unless(value)
                else:
                    break
        finally:
            if kind == "end":
                await early.wait()
            else:
                await early.abort()
        with contextlib.suppress(OSError):
            conn.send((early.downloaded, early.downloaded_bytes, early.failed, early.cancelled))
