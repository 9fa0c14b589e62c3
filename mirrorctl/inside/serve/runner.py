"""Run the embedded mirror with uvicorn (``mirrorctl serve``): inside the caller's event loop, or with
``--workers N`` in N worker processes that share the one listening socket.

Workers hold nothing that a switch could make stale: each request in each worker reads the channel's link (one
readlink) as the single-process server does, so a promote, rollback or import is seen at the next request by
every worker. Workers only read the store; the parent only waits for them and stops them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import MirrorctlError, UserError
from mirrorctl.inside.channels import ServedLayout, check_layout, layout_warnings, served_layout
from mirrorctl.inside.health import serve_problems
from mirrorctl.inside.store import CURRENT, Store
from mirrorctl.progress import Progress

from .app import StoreContent, create_app


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    access_log: bool = True
    workers: int = 1
    ecosystems: Mapping[str, object] = field(default_factory=dict)  # [serve.<ecosystem>], as the adapters parsed them
    config: Path | None = None  # the --config given, so a warning's fix is the exact command to type
    front: str | None = None  # "nginx": files through nginx, started by serve (front.py); None: uvicorn alone
    nginx: Path | None = None  # [serve] nginx, the binary; None: found on PATH
    default_channel: str | None = None  # [serve] default-channel: what the plain layout serves (None: current)


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


# The most worker processes serve accepts; past the cores they only add memory and context switches.
MAX_WORKERS = 64


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
        # Many workspaces start at once: past a full backlog new connections wait a second for a SYN retry.
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {base_url(host, port)}: {exc.strerror}",
            hint="pick another --port, or stop what is listening there",
        ) from exc
    sock.setblocking(False)
    return sock


def check_channels(
    store: Store, channels: Sequence[str], default_channel: str | None = None, ecosystems: Sequence[str] = ()
) -> ServedLayout:
    """The layout to serve (mirrorctl/inside/channels.py served_layout), each channel valid and existing
    (``current`` may be empty); UserError naming a missing one and the command that creates it."""
    layout = served_layout(channels, default_channel)
    check_layout(store, layout, reserved=ecosystems)
    return layout


async def serve(
    store: Store,
    ecosystems: Mapping[str, Ecosystem],
    options: ServeOptions,
    progress: Progress,
    channels: Sequence[str] = (),
) -> None:
    """Serve until interrupted. Never reaches upstream; an empty store serves empty indexes.

    The plain layout ``/<ecosystem>/`` serves the one of ``channels`` when one is given, else
    ``options.default_channel``, else ``current``; each of ``channels`` is also served at
    ``/<channel>/<ecosystem>/``."""
    layout = check_channels(store, channels, options.default_channel, sorted(ecosystems))
    check_workers(options.workers)
    if options.front is not None:
        from .withfront import serve_with_front

        await serve_with_front(store, ecosystems, options, progress, layout)
        return
    app = create_app(store, ecosystems, layout.prefixed, options.ecosystems, options.default_channel)
    sock = bind(options.host, options.port)
    url = base_url(options.host, sock.getsockname()[1])  # the real port when --port 0 asked for any
    progress.note(start_line(store, ecosystems, layout, url))
    warn_serve_problems(store, layout, ecosystems, options, progress)
    if options.workers > 1:
        progress.note(f"mirrorctl serve: {options.workers} worker processes")
        try:
            await _run_workers(sock, store.root, ecosystems, list(layout.prefixed), options)
        finally:
            sock.close()
        return
    server = uvicorn.Server(_uvicorn_config(app, options))
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()


def warn_serve_problems(
    store: Store, layout: ServedLayout, ecosystems: Mapping[str, Ecosystem], options: ServeOptions,
    progress: Progress,
) -> None:
    """What the ecosystems say keeps clients from using what is served (apt without an archive key): one
    WARNING each, with the fix, after the start-up line; ``/healthz`` answers ``degraded`` until it is fixed.
    Then a store with channels but no default channel (mirrorctl/inside/channels.py layout_warnings)."""
    contents = [StoreContent(store, name, options.ecosystems) for name in layout.channels]
    for problem in serve_problems(contents, ecosystems):
        progress.note(f"WARNING: {problem.line(options.config)}")
    for warning in layout_warnings(store, layout):
        progress.note(f"WARNING: {warning}")


def start_line(store: Store, ecosystems: Mapping[str, Ecosystem], layout: ServedLayout, url: str) -> str:
    """The first line serve prints: where it listens and what it serves (tests and scripts read the URL)."""
    view_id = store.channel_view_id(layout.plain)
    if view_id is None:
        what = "nothing imported yet: serving empty indexes until `mirrorctl import` switches a view in"
    elif layout.plain == CURRENT:
        what = f"serving view {view_id}"
    else:
        what = f"serving channel {layout.plain} (view {view_id})"
    paths = ", ".join(f"{name} at {url}/{name}/" for name in sorted(ecosystems))
    if layout.prefixed:
        paths += "; " + ", ".join(
            f"channel {c} (view {store.channel_view_id(c)}) at {url}/{c}/<ecosystem>/" for c in layout.prefixed
        )
    return f"mirrorctl serve: {url}/ from {store.root}; {what}; {paths}"


def _uvicorn_config(app: object, options: ServeOptions) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="info",
        access_log=options.access_log,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        # httptools when installed (a dependency): its parser costs a fraction of h11's per request.
        http="auto",
        # Keep-alive connections from many clients at once; uvicorn's default of 5 s closes idle pip sessions.
        timeout_keep_alive=30,
    )


def check_workers(workers: int) -> int:
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError(
            f"--workers {workers}: must be between 1 and {MAX_WORKERS}",
            hint="one per CPU core is a good start (`nproc`)",
        )
    return workers


def _worker_main(
    sock: socket.socket,
    root: Path,
    ecosystems: Mapping[str, Ecosystem],
    channels: list[str],
    options: ServeOptions,
) -> None:
    """One worker process: its own app over the store (read-only), serving the inherited socket until told
    to stop (SIGTERM or SIGINT, which uvicorn turns into a graceful shutdown)."""
    # The runtime opens the store, as for every command: with the adapters for records written before paths.
    from mirrorctl.config import Settings
    from mirrorctl.runtime import Runtime

    store = Runtime.for_settings(Settings(None, root, root / "profiles"), ecosystems=ecosystems).store
    app = create_app(store, ecosystems, channels, options.ecosystems, options.default_channel)
    config = _uvicorn_config(app, options)
    config.loop = "auto"  # uvloop when installed: this process owns its loop
    uvicorn.Server(config).run(sockets=[sock])


async def _run_workers(
    sock: socket.socket,
    root: Path,
    ecosystems: Mapping[str, Ecosystem],
    channels: list[str],
    options: ServeOptions,
    watch: Callable[[], None] | None = None,
) -> None:
    """Start the workers and wait; stop them all when this is cancelled (Ctrl-C) or one of them dies, or when
    ``watch`` (called twice a second) raises: the front server died."""
    # spawn, not fork: the parent runs an event loop and threads, which a forked child must not inherit.
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(sock, root, dict(ecosystems), channels, options),
            name=f"mirrorctl-serve-{i + 1}",
            daemon=True,
        )
        for i in range(options.workers)
    ]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM,):
        loop.add_signal_handler(sig, stop.set)
    try:
        for proc in procs:
            proc.start()
        while not stop.is_set():
            dead = [p for p in procs if not p.is_alive()]
            if dead:
                raise MirrorctlError(
                    f"mirrorctl serve: worker {dead[0].name} exited with code {dead[0].exitcode}; stopping the others",
                    hint="see the worker's messages above",
                )
            if watch is not None:
                watch()
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
    finally:
        for sig in (signal.SIGTERM,):
            loop.remove_signal_handler(sig)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then exits
        for proc in procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join, 5)
