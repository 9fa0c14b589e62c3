"""The request bound of the PyPI index client: metadata reads are served before queued page downloads."""

from __future__ import annotations

import asyncio

from mirrorctl.ecosystems.pypi.slots import METADATA, PAGE, Slots


async def test_waiters_served_by_rank_then_arrival_and_the_bound_holds() -> None:
    slots = Slots(2)
    order: list[str] = []
    running = peak = 0

    async def job(name: str, rank: int, hold: float = 0.01) -> None:
        nonlocal running, peak
        async with slots.hold(rank):
            running += 1
            peak = max(peak, running)
            order.append(name)
            await asyncio.sleep(hold)
            running -= 1

    first = [asyncio.create_task(job(f"busy{i}", PAGE, 0.05)) for i in range(2)]
    await asyncio.sleep(0)
    queued = [asyncio.create_task(job(f"page{i}", PAGE)) for i in range(3)]
    queued.append(asyncio.create_task(job("meta", METADATA)))
    await asyncio.gather(*first, *queued)
    assert order == ["busy0", "busy1", "meta", "page0", "page1", "page2"]
    assert peak == 2


async def test_a_cancelled_waiter_does_not_lose_a_slot() -> None:
    slots = Slots(1)
    done: list[str] = []

    async def job(name: str) -> None:
        async with slots.hold(PAGE):
            await asyncio.sleep(0.01)
            done.append(name)

    holder = asyncio.create_task(job("a"))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(job(n)) for n in ("b", "c")]
    await asyncio.sleep(0)
    waiters[0].cancel()
    results = await asyncio.gather(holder, *waiters, return_exceptions=True)
    assert done == ["a", "c"] and isinstance(results[1], asyncio.CancelledError)
    async with slots.hold(METADATA):  # the slot came back
        pass
    assert slots._free == 1
