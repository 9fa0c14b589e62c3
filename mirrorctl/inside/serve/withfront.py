"""``mirrorctl serve --front nginx``: the file trees made ready, nginx started on the public address (front.py),
and mirrorctl's own server (one process or ``--workers N``) on the unix socket nginx passes the rest to; the
two stopped together, whichever ends first."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence

import uvicorn

from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import MirrorctlError, UserError
from mirrorctl.inside.channels import ServedLayout
from mirrorctl.inside.filetree import check_tree, ensure_tree, rebuild_tree
from mirrorctl.inside.store import Store
from mirrorctl.progress import Progress

from .app import create_app
from .front import FileRoute, Nginx, find_nginx, make_run_dir, nginx_config, unix_listener, worker_user
from .runner import ServeOptions, _run_workers, _uvicorn_config, base_url, bind, start_line, warn_serve_problems


def file_routes(store: Store, layout: ServedLayout) -> list[FileRoute]:
    """Where nginx finds files, as create_app lays the channels out: each channel at ``/<channel>/<ecosystem>/``
    through its link, then the plain layout ``/<ecosystem>/`` through the link of the channel it serves
    (mirrorctl/inside/channels.py plain_link). Last: nginx takes the first regex location that matches."""
    routes = [FileRoute(f"/{name}", store.channel_link(name)) for name in layout.prefixed]
    return [*routes, FileRoute("", store.channel_link(layout.plain))]


def prepare_trees(
    store: Store, ecosystems: Mapping[str, Ecosystem], chosen: Sequence[str], progress: Progress
) -> None:
    """Build the tree of every view that lacks one (made before trees existed) and rebuild a served view's
    damaged one; a view whose tree cannot be made keeps being served, its files by mirrorctl itself."""
    served = {v for c in chosen if (v := store.channel_view_id(c)) is not None}
    built, failed = 0, []
    with store.shared():  # gc (exclusive) waits: it never renames a view away under a tree being written
        for view_id in store.view_ids():
            try:
                if ensure_tree(store, view_id, ecosystems):
                    built += 1
                elif view_id in served:
                    problems = check_tree(store, view_id, ecosystems)
                    if problems:
                        rebuild_tree(store, view_id, ecosystems)
                        first = problems[0]
                        progress.note(
                            f"mirrorctl serve: rebuilt the damaged file tree of view {view_id} "
                            f"({len(problems)} problem(s), first: {first.path}: {first.problem})"
                        )
            except (MirrorctlError, OSError) as exc:
                failed.append((view_id, exc.message if isinstance(exc, MirrorctlError) else str(exc)))
    if built:
        progress.note(f"mirrorctl serve: wrote the file tree of {built} view(s) made before file trees")
    if failed:
        view_id, why = failed[0]
        progress.note(
            f"mirrorctl serve: WARNING: no file tree for {len(failed)} view(s) (first: {view_id}: {why}); "
            "mirrorctl itself serves their files"
        )


def _probe_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


async def serve_with_front(
    store: Store, ecosystems: Mapping[str, Ecosystem], options: ServeOptions, progress: Progress,
    layout: ServedLayout,
) -> None:
    if options.front != "nginx":
        raise UserError(f"--front {options.front!r}: the only front server is nginx", hint="--front nginx")
    binary = find_nginx(options.nginx, options.config)
    probe = bind(options.host, options.port)  # a taken port is the same clear error as without the front
    port = int(probe.getsockname()[1])
    probe.close()
    url = base_url(options.host, port)
    progress.note(start_line(store, ecosystems, layout, url))
    warn_serve_problems(store, layout, ecosystems, options, progress)
    await asyncio.to_thread(prepare_trees, store, ecosystems, layout.channels, progress)
    run = make_run_dir()
    nginx = Nginx(binary, run)
    app_sock: socket.socket | None = None
    started = False
    try:
        app_sock = unix_listener(run / "app.sock")
        user = worker_user(store.root, run)
        (run / "nginx.conf").write_text(
            nginx_config(
                run_dir=run, host=options.host, port=port, app_socket=run / "app.sock",
                routes=file_routes(store, layout), access_log=options.access_log, user=user,
            )
        )
        nginx.spawn()
        await asyncio.to_thread(nginx.wait_listening, _probe_host(options.host), port)
        started = True
        progress.note(f"mirrorctl serve: package files sent by nginx ({binary}); the rest by mirrorctl on {run}")
        # nginx logs every request when asked; mirrorctl's own log would repeat the proxied ones.
        inner = dataclasses.replace(options, access_log=False)
        if options.workers > 1:
            progress.note(f"mirrorctl serve: {options.workers} worker processes")
            await _run_workers(app_sock, store.root, ecosystems, list(layout.prefixed), inner, watch=nginx.check)
        else:
            app = create_app(store, ecosystems, layout.prefixed, options.ecosystems, options.default_channel)
            await _serve_one(app, app_sock, inner, nginx)
    finally:
        died = nginx.proc is not None and nginx.proc.poll() is not None
        nginx.stop()
        if app_sock is not None:
            app_sock.close()
        if nginx.proc is None or (started and not died):  # else kept: the error names its log and configuration
            shutil.rmtree(run, ignore_errors=True)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: serve_with_front stops it, then nginx, then exits."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_one(app: object, sock: socket.socket, options: ServeOptions, nginx: Nginx) -> None:
    server = _QuietServer(_uvicorn_config(app, options))
    loop = asyncio.get_running_loop()
    signals: list[int] = []

    def on_signal(sig: int) -> None:
        signals.append(sig)
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                task.result()
                break
            try:
                nginx.check()
            except MirrorctlError:
                server.should_exit = True
                await task
                raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if not task.done():
            server.should_exit = True
            await task
    if signal.SIGINT in signals:
        raise KeyboardInterrupt  # as a Ctrl-C without the front: exit 130, "interrupted"
