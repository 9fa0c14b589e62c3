"""Run the embedded mirror with uvicorn inside the caller's event loop (``mirrorctl serve``)."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import uvicorn

from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import UserError
from mirrorctl.inside.store import CURRENT, Store
from mirrorctl.progress import Progress

from .app import create_app


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    access_log: bool = True
    ecosystems: Mapping[str, object] = field(default_factory=dict)  # [serve.<ecosystem>], as the adapters parsed them


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so a taken port is a clear error rather than a uvicorn exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r}: cannot be resolved ({exc.strerror})") from exc
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {base_url(host, port)}: {exc.strerror}",
            hint="pick another --port, or stop what is listening there",
        ) from exc
    sock.setblocking(False)
    return sock


def check_channels(store: Store, channels: Sequence[str]) -> list[str]:
    """The channels to serve (``current`` when none), each valid and existing (``current`` may be empty)."""
    from mirrorctl.inside.channels import require_channel, validate_channel_name

    chosen = list(dict.fromkeys(channels or [CURRENT]))
    for name in chosen:
        validate_channel_name(name)
        if name != CURRENT:
            require_channel(store, name)
    return chosen


async def serve(
    store: Store,
    ecosystems: Mapping[str, Ecosystem],
    options: ServeOptions,
    progress: Progress,
    channels: Sequence[str] = (),
) -> None:
    """Serve until interrupted. Never reaches upstream; an empty store serves empty indexes.

    ``channels``: one serves that channel at ``/<ecosystem>/``; several serve each at ``/<channel>/<ecosystem>/``."""
    chosen = check_channels(store, channels)
    app = create_app(store, ecosystems, chosen, options.ecosystems)
    sock = bind(options.host, options.port)
    url = base_url(options.host, sock.getsockname()[1])  # the real port when --port 0 asked for any
    if len(chosen) == 1:
        view_id = store.channel_view_id(chosen[0])
        what = (
            (f"serving view {view_id}" if chosen[0] == CURRENT else f"serving channel {chosen[0]} (view {view_id})")
            if view_id
            else "nothing imported yet: serving empty indexes until `mirrorctl import` switches a view in"
        )
        paths = ", ".join(f"{name} at {url}/{name}/" for name in sorted(ecosystems))
    else:
        what = "serving channels " + ", ".join(f"{c} (view {store.channel_view_id(c)})" for c in chosen)
        paths = ", ".join(f"{c}: {url}/{c}/<ecosystem>/" for c in chosen)
    progress.note(f"mirrorctl serve: {url}/ from {store.root}; {what}; {paths}")
    config = uvicorn.Config(
        app,
        log_level="info",
        access_log=options.access_log,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
