"""A bound on concurrent requests whose waiters are served by rank, then in arrival order.

The resolver's critical path runs through metadata: a project's dependencies are unknown until its METADATA
is read (a few KB, 1-3 Range requests), while project pages can be megabytes. With one FIFO semaphore a
metadata read waits behind every page download queued before it; here it goes first.

Example::

    slots = Slots(16)
    async with slots.hold(METADATA):
        ...
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

METADATA = 0  # small, and the resolver waits for it
PAGE = 1


class Slots:
    def __init__(self, n: int) -> None:
        self._free = max(1, n)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def hold(self, rank: int = PAGE) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (rank, next(self._order), fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # the slot was handed over as the task was cancelled: pass it on
                raise  # (a cancelled waiter stays in the heap; _release skips it)
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _rank, _n, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)  # the slot goes straight to the next waiter
                return
        self._free += 1
