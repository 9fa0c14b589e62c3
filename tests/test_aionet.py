"""mirrorctl.aionet: httpx over asyncio's own streams (the transport build_client uses without a proxy)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from mirrorctl.aionet import AsyncioBackend, AsyncioTransport

BODY = bytes(range(256)) * 4096  # 1 MiB

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()

    srv = await asyncio.start_server(run, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        srv.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


async def serve_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:  # keep-alive: answer every request on this connection, until the client closes it
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
        await writer.drain()


def client(**kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncioTransport(limits=httpx.Limits(max_connections=4), http2=False), **kw)


async def test_bodies_arrive_whole_and_connections_are_reused() -> None:
    async with server(serve_body) as port, client() as c:
        for _ in range(3):
            resp = await c.get(f"http://127.0.0.1:{port}/x")
            assert resp.status_code == 200 and resp.content == BODY
        got = await asyncio.gather(*(c.get(f"http://127.0.0.1:{port}/{i}") for i in range(8)))
        assert all(r.content == BODY for r in got)


async def test_a_body_already_buffered_comes_up_in_pieces_bigger_than_httpcore_asks_for() -> None:
    """httpcore reads 64 KiB at a time; the stream returns all that is buffered (up to 1 MiB), so a 1 MiB body that
    arrived while nobody read comes up in far fewer chunks, whole and in order, and the connection stays usable."""
    async with server(serve_body) as port, client() as c:
        for _ in range(2):  # the second request reuses the connection the first one read ahead on
            async with c.stream("GET", f"http://127.0.0.1:{port}/x") as resp:
                await asyncio.sleep(0.2)  # let the whole body arrive into the stream's buffer
                chunks = [chunk async for chunk in resp.aiter_raw()]
            assert b"".join(chunks) == BODY
            assert max(len(chunk) for chunk in chunks) > 64 * 1024 and len(chunks) < len(BODY) // (64 * 1024)


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{port}/")


async def test_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with server(silent) as port, client(timeout=0.2) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(f"http://127.0.0.1:{port}/")


async def test_a_body_cut_short_is_a_transport_error() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with server(short) as port, client() as c:
        with pytest.raises(httpx.TransportError):  # retried by mirrorctl as transient (net.is_transient)
            await c.get(f"http://127.0.0.1:{port}/")


async def test_one_lookup_per_host_for_connections_opened_together(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    lookups: list[str] = []

    async def counting(host: str, *args: Any, **kw: Any) -> Any:
        lookups.append(host)
        await asyncio.sleep(0.05)
        return await real(host, *args, **kw)

    monkeypatch.setattr(loop, "getaddrinfo", counting)
    backend = AsyncioBackend()
    async with server(serve_body) as port:
        streams = await asyncio.gather(*(backend.connect_tcp("localhost", port, timeout=5) for _ in range(8)))
        for s in streams:
            await s.aclose()
    assert lookups == ["localhost"]
