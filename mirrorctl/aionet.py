"""An httpcore network backend on asyncio's own streams and TLS, for :func:`mirrorctl.net.build_client`.

Why: httpx reaches the network through httpcore's anyio backend, which decrypts one TLS record (16 KiB) per
read and enters a cancel scope for each. Downloading is CPU-bound on this kind of machine (a plain 16-way
httpx fetch of ~185 MB uses a whole core for ~2 s); asyncio's TLS transport decrypts into a buffer that
httpcore then reads 64 KiB at a time, which roughly halves the CPU per byte. Only the transport changes:
HTTP parsing, redirects, auth, timeouts and every check above it stay httpx's and mirrorctl's.

Example::

    transport = AsyncioTransport(limits=httpx.Limits(max_connections=16), http2=False)
    client = httpx.AsyncClient(transport=transport)
"""

# ruff: noqa: ASYNC109 - httpcore's network interface passes each timeout as an argument

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

_READ_LIMIT = 1 << 20  # bytes asyncio may buffer per connection before it pauses reading the socket


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KiB at a time and hands every byte it gets to h11 or h2, which keep whatever they
        # are given until it is parsed; so this returns all that is already buffered, up to _READ_LIMIT. Bigger
        # pieces mean a third of the reads, parser events and chunks through httpx for the same body (a plain
        # 16-way fetch of 261 MB: 4,200 -> 1,300 chunks, CPU 1.6 -> 1.2 s).
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max(max_bytes, _READ_LIMIT))
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except (OSError, ssl.SSLError, RuntimeError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # Not waiting for the peer: a connection is closed when it is no longer wanted (httpcore does the same
        # with anyio, without waiting for the TLS close_notify answer).
        self._writer.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> _Stream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of idle connections: the server closed it (asyncio has read its end).
            return self._reader.at_eof() or self._writer.is_closing()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections for one client. Each host name is looked up once and the answer shared by the connections
    opened at the same moment: sixteen lookups of one name at once made this machine's resolver drop some
    and retry after its 5 s timeout."""

    def __init__(self) -> None:
        self._lookups: dict[tuple[str, int], asyncio.Future[list[tuple[Any, ...]]]] = {}

    async def _addresses(self, host: str, port: int) -> list[tuple[Any, ...]]:
        key = (host, port)
        found = self._lookups.get(key)
        if found is None or (found.done() and (found.cancelled() or found.exception() is not None)):
            loop = asyncio.get_running_loop()
            found = self._lookups[key] = asyncio.ensure_future(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            )
        return await asyncio.shield(found)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> _Stream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._connect(host, port, local_address)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(reader, writer)

    async def _connect(
        self, host: str, port: int, local_address: str | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        infos = await self._addresses(host, port)
        # IPv4 first: where IPv6 has no route, its connect fails only after a while. (TLS still checks the
        # host name: httpcore passes it to start_tls.)
        infos = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
        error: OSError = OSError(f"no address for {host}")
        for family, _type, proto, _name, address in infos:
            try:
                return await asyncio.open_connection(
                    address[0], address[1], family=family, proto=proto,
                    local_addr=(local_address, 0) if local_address else None, limit=_READ_LIMIT,
                )
            except OSError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> _Stream:
        raise httpcore.ConnectError("unix sockets are not used by mirrorctl")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the connection pool on :class:`AsyncioBackend` (no proxy: see build_client)."""

    def __init__(self, *, limits: httpx.Limits, http2: bool, trust_env: bool = True) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=trust_env)  # the context httpx would build
        super().__init__(verify=ssl_context, limits=limits, http2=http2, trust_env=trust_env)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=AsyncioBackend(),
        )
