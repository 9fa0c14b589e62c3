"""Serving an ecosystem's ``static_layout`` as it is: the ``serve_app`` of an ecosystem whose clients read a
plain tree (a GOPROXY tree, a Maven repository, model files), so the one layout function feeds both
``mirrorctl serve`` and publishing through Pulp's pulp_file (mirrorctl/targets/pulp/files.py).

npm, PyPI and apt keep servers of their own: npm answers the abbreviated packument when the client asks for it
(``Accept``) and links tarballs under the host the client used, PyPI's simple API negotiates its format, and apt's
InRelease is signed with the inside's archive key, which a view does not carry.

Example (an adapter)::

    def serve_app(self, content: ServedContent) -> ASGIApp:
        from mirrorctl.ecosystems.static import static_app

        return static_app(self, content)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from mirrorctl.ecosystems.base import ServedContent, ServedView, StaticFile
from mirrorctl.ecosystems.blobfile import blob_response
from mirrorctl.errors import MirrorctlError

_IMMUTABLE = "public, max-age=31536000, immutable"  # a blob's bytes never change under its digest
_REVALIDATE = "max-age=0, must-revalidate"  # a generated file changes when an import switches the view


class StaticLayout(Protocol):
    name: str

    def static_layout(self, view: ServedView, base_url: str) -> Mapping[str, StaticFile] | None: ...


def _base_url(request: Request) -> str:
    return str(request.url.replace(path=request.scope.get("root_path", "") + "/", query=""))


def static_blobs(adapter: StaticLayout, view: ServedView) -> Mapping[str, StaticFile]:
    """The ``served_blobs`` of an ecosystem served by :func:`static_app`: the blob files of its layout (generated
    files stay with the app: they may name the base URL). Example (an adapter)::

        def served_blobs(self, view: ServedView) -> Mapping[str, StaticFile]:
            return static_blobs(self, view)
    """
    layout = adapter.static_layout(view, "http://mirror.invalid/") or {}  # blob paths never depend on it
    return {path: file for path, file in layout.items() if file.data is None}


def static_app(adapter: StaticLayout, content: ServedContent) -> Router:
    """The tree ``adapter.static_layout`` gives for the current view, at the paths it names; 404 elsewhere.
    Built once per (view, base URL) and kept until the view changes."""
    lock = threading.Lock()
    cache: dict[tuple[str, str], Mapping[str, StaticFile]] = {}

    def layout(view: ServedView, base_url: str) -> Mapping[str, StaticFile]:
        key = (view.view_id, base_url)
        with lock:
            found = cache.get(key)
        if found is None:
            found = adapter.static_layout(view, base_url) or {}
            with lock:
                for old in [k for k in cache if k[0] != view.view_id]:
                    del cache[old]
                cache[key] = found
        return found

    async def endpoint(request: Request) -> Response:
        view = await anyio.to_thread.run_sync(content.current)
        if view is None:
            return Response(b"not found\n", status_code=404, media_type="text/plain")
        files = await anyio.to_thread.run_sync(layout, view, _base_url(request))
        file = files.get(request.path_params["path"])
        if file is None:
            return Response(b"not found\n", status_code=404, media_type="text/plain")
        etag = f'"{file.sha256}"'
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"ETag": etag})
        if file.data is not None:
            headers = {"ETag": etag, "Cache-Control": _REVALIDATE}
            return Response(file.data, media_type="application/octet-stream", headers=headers)
        headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
        response = await blob_response(
            request, view.blob_path(file.sha256), media_type="application/octet-stream", headers=headers
        )
        if response is None:
            # The host app answers a store error with a 503 naming it.
            raise MirrorctlError(
                f"blob {file.sha256} of {request.path_params['path']} is missing",
                hint="run `mirrorctl verify` on the mirror host",
            ) from None
        return response

    return Router(routes=[Route("/{path:path}", endpoint, methods=["GET", "HEAD"])])
