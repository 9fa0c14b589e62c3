"""The embedded mirror: one ASGI app over a channel of the store (the plain layout: ``current``, or the
configured default channel), one sub-app per ecosystem; each channel asked for also under ``/<channel>/``.

Nothing here talks to anything but the store on disk: no database, no upstream. Each request asks
:meth:`StoreContent.current` which view the channel's link points at *now* (one readlink), so an import's,
promote's or rollback's atomic switch is seen by the next request, and a request that already holds a view
keeps it to the end: a reader sees the old view or the new one, never a mix.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import MirrorctlError
from mirrorctl.inside.health import health_text, serve_problems
from mirrorctl.inside.store import CURRENT, Store, View
from mirrorctl.lockfile import Artifact

# Views parsed and kept in memory; the current one and the one before it are enough for readers that straddle
# a switch. A view is immutable, so a cached one is never stale.
_VIEW_CACHE_SIZE = 2


class StoreView:
    """A :class:`~mirrorctl.ecosystems.base.ServedView` over one immutable store view."""

    def __init__(self, store: Store, view: View) -> None:
        self._store = store
        self.view = view
        self.view_id = view.view_id
        self.created = view.created
        grouped: dict[str, list[Artifact]] = {}
        for a in view.artifacts:
            grouped.setdefault(a.ecosystem, []).append(a)
        self._by_ecosystem = {eco: tuple(arts) for eco, arts in grouped.items()}

    def artifacts(self, ecosystem: str) -> Sequence[Artifact]:
        return self._by_ecosystem.get(ecosystem, ())

    def blob_path(self, sha256: str) -> Path:
        return self._store.blob_path(sha256)

    def cache_dir(self, ecosystem: str, purpose: str) -> Path | None:
        return self._store.root / "cache" / f"{ecosystem}-{purpose}"

    def counts(self) -> dict[str, int]:
        return {eco: len(arts) for eco, arts in sorted(self._by_ecosystem.items())}


class StoreContent:
    """A :class:`~mirrorctl.ecosystems.base.ServedContent`: whatever the channel's link (``current`` by
    default) points at, per call."""

    def __init__(
        self, store: Store, channel: str = CURRENT, options: Mapping[str, object] | None = None
    ) -> None:
        self.store = store
        self.channel = channel
        self._options = dict(options or {})
        self._cache: OrderedDict[str, StoreView] = OrderedDict()
        self._lock = threading.Lock()  # sync endpoints run in a thread pool

    def current(self) -> StoreView | None:
        view_id = self.store.channel_view_id(self.channel)
        if view_id is None:
            return None
        with self._lock:
            cached = self._cache.get(view_id)
            if cached is not None:
                self._cache.move_to_end(view_id)
                return cached
        # Parse outside the lock: a view is immutable, so two parses of the same one give equal results.
        served = StoreView(self.store, self.store.load_view(view_id))
        with self._lock:
            self._cache[view_id] = served
            while len(self._cache) > _VIEW_CACHE_SIZE:
                self._cache.popitem(last=False)
        return served

    def loaded(self) -> StoreView | None:
        view_id = self.store.channel_view_id(self.channel)
        if view_id is None:
            return None
        with self._lock:
            return self._cache.get(view_id)

    def keys_dir(self) -> Path:
        return self.store.root / "keys"

    def options(self, ecosystem: str) -> object:
        return self._options.get(ecosystem)


async def _store_error(request: Request, exc: Exception) -> Response:
    """A store that cannot be read (a damaged view, a missing blob): a 503 that names the problem."""
    assert isinstance(exc, MirrorctlError)
    text = f"mirror store error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else "")
    return PlainTextResponse(text + "\n", status_code=503)


def _channel_routes(content: StoreContent, ecosystems: Mapping[str, Ecosystem]) -> list[BaseRoute]:
    """``/`` (what the channel serves, as JSON) and each ecosystem's app at ``/<name>``."""
    names = sorted(ecosystems)

    async def status(request: Request) -> Response:
        served = await anyio.to_thread.run_sync(content.current)
        if served is None:
            return JSONResponse({"serving": False, "ecosystems": names, "view-id": None})
        v = served.view
        return JSONResponse(
            {
                "serving": True,
                "ecosystems": names,
                "view-id": v.view_id,
                "bundle-id": v.bundle_id,
                "sequence": v.sequence,
                "created": v.created,
                "profiles": dict(sorted(v.profiles.items())),
                "artifacts": served.counts(),
            }
        )

    routes: list[BaseRoute] = [Route("/", status)]
    routes += [Mount(f"/{name}", app=ecosystems[name].serve_app(content)) for name in names]
    return routes


class RelativeRedirects:
    """Every ``Location`` this mirror sends is a path on this server, never a URL built from the request's
    ``Host`` header: a hostile Host (or a cache in front keyed without it) would otherwise send clients to
    another server. Starlette's own slash redirects are absolute; this turns them, and any other, into
    ``/path?query`` (leading slashes collapsed, so the result is never a ``//host`` reference)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, _relative(v) if k.lower() == b"location" else v) for k, v in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_relative)


def _relative(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/")
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


def _healthz(contents: Sequence[StoreContent], ecosystems: Mapping[str, Ecosystem]) -> Route:
    """``/healthz``: ``ok``, or ``degraded`` naming what the ecosystems report (HTTP 200 either way, 503 with
    ``?strict``); mirrorctl/inside/health.py says why."""

    async def healthz(request: Request) -> Response:
        problems = await anyio.to_thread.run_sync(serve_problems, contents, ecosystems)
        status = 503 if problems and "strict" in request.query_params else 200
        return PlainTextResponse(health_text(problems), status_code=status, headers={"Cache-Control": "no-store"})

    return Route("/healthz", healthz)


_MIDDLEWARE = [Middleware(RelativeRedirects)]


def create_app(
    store: Store,
    ecosystems: Mapping[str, Ecosystem],
    channels: Sequence[str] | None = None,
    options: Mapping[str, object] | None = None,
    default_channel: str | None = None,
) -> Starlette:
    """The mirror: ``/healthz`` (``ok`` or ``degraded``), ``/`` (what is served, as JSON) and each ecosystem's
    app at ``/<name>``.

    The plain layout (``/<name>/``) serves :func:`~mirrorctl.inside.channels.served_layout`'s plain channel: the
    one of ``channels`` when one is given, else ``default_channel`` (``[serve] default-channel``), else
    ``current``. Each of ``channels`` is also served under ``/<channel>/`` (``/<channel>/`` status,
    ``/<channel>/<ecosystem>/``), so workspaces configured for the plain layout and those configured for a
    channel both keep working; with several channels ``/`` lists them.

    ``options``: the ``[serve.<ecosystem>]`` tables of mirrorctl.toml as the adapters parsed them
    (Settings.serve_options).

    Example: ``uvicorn.Server(uvicorn.Config(create_app(Store(path), load_ecosystems()), port=8080))``
    """
    from mirrorctl.inside.channels import served_layout

    layout = served_layout(channels or (), default_channel)
    contents = {name: StoreContent(store, name, options) for name in layout.channels}
    plain = contents[layout.plain]
    routes: list[BaseRoute] = [_healthz(list(contents.values()), ecosystems)]
    if len(layout.prefixed) > 1:

        async def index(request: Request) -> Response:
            views = {name: await anyio.to_thread.run_sync(store.channel_view_id, name) for name in layout.prefixed}
            view = await anyio.to_thread.run_sync(store.channel_view_id, layout.plain)
            return JSONResponse(
                {
                    "channels": views,
                    "ecosystems": sorted(ecosystems),
                    "plain": {"channel": layout.plain, "view-id": view},
                }
            )

        routes += [Route("/", index), *_channel_routes(plain, ecosystems)[1:]]
    else:
        routes += _channel_routes(plain, ecosystems)
    routes += [Mount(f"/{name}", routes=_channel_routes(contents[name], ecosystems)) for name in layout.prefixed]
    app = Starlette(routes=routes, exception_handlers={MirrorctlError: _store_error}, middleware=_MIDDLEWARE)
    app.state.content = plain
    app.state.contents = {name: contents[name] for name in layout.prefixed}
    app.state.layout = layout
    return app
