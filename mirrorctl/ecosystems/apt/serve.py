"""The signed apt repository over the served view: what ``apt-get update`` and ``apt-get install`` read.

Mounted at ``/apt``::

    /apt/dists/<suite>/InRelease                          clearsigned by the archive key(s) that sign now
    /apt/dists/<suite>/Release, Release.gpg
    /apt/dists/<suite>/<comp>/binary-<arch>/Packages{,.gz,.xz}
    /apt/dists/<suite>/<comp>/binary-<arch>/by-hash/SHA256/<hex>
    /apt/<attrs.pool>                                     the .deb, byte-identical; ETag = sha256, Range
    /apt/archive-keyring.gpg, archive-keyring.asc         the public keyring (convenience: trust comes from
                                                          the copy workspace-config writes, not from here)

Everything else is a 404; nothing is ever fetched upstream. The repository of a view is built once, on the
first request after the view switches (see repo.py), and signed once per set of signing keys; a missing
archive key makes the signed files a 503 that says how to create one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router

from mirrorctl.ecosystems.base import ASGIApp, ServedContent, ServedView, own_options
from mirrorctl.ecosystems.blobfile import blob_response
from mirrorctl.errors import UserError, shorten

from .archive_key import ArchiveKey
from .repo import Repository, build_repository, signed_files
from .settings import ReleaseOptions

_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "max-age=0, must-revalidate"
KEYRING_BINARY = "archive-keyring.gpg"
KEYRING_ARMORED = "archive-keyring.asc"


class RepositoryCache:
    """The repository of the view being served; rebuilt once when the view id changes."""

    def __init__(self, content: ServedContent, options: ReleaseOptions) -> None:
        self._content = content
        self._options = options
        self._repo: Repository | None = None
        self._lock = threading.Lock()  # one build at a time; a second request for the same view waits for it

    def get(self) -> tuple[ServedView | None, Repository | None]:
        view = self._content.current()
        if view is None:
            return None, None
        repo = self._repo
        if repo is not None and repo.view_id == view.view_id:
            return view, repo
        with self._lock:
            repo = self._repo
            if repo is None or repo.view_id != view.view_id:
                repo = build_repository(view, self._options)
                self._repo = repo
        return view, repo

    async def aget(self) -> tuple[ServedView | None, Repository | None]:
        """:meth:`get` for a handler: on the event loop when nothing needs building, else in a worker thread."""
        found = self.peek()
        return found if found is not None else await anyio.to_thread.run_sync(self.get)

    def peek(self) -> tuple[ServedView, Repository] | None:
        """What :meth:`get` returns when the view's repository is already built (one readlink, no thread)."""
        view = self._content.loaded()
        repo = self._repo
        if view is None or repo is None or repo.view_id != view.view_id:
            return None
        return view, repo

    def signed(self, repo: Repository) -> Mapping[str, bytes]:
        key = ArchiveKey(self._content.keys_dir())
        signers = key.signers()  # raises UserError when there is no key
        with self._lock:
            return signed_files(repo, key, signers)


def _not_found(path: str) -> Response:
    # The request path is the client's: echoed escaped (no control characters) and cut to a few hundred.
    shown = shorten(path.encode("unicode_escape").decode("ascii"))
    return PlainTextResponse(f"not found: {shown}\n", status_code=404, headers={"Cache-Control": _REVALIDATE})


def _unavailable(text: str, hint: str | None) -> Response:
    body = text + (f"\nhint: {hint}" if hint else "") + "\n"
    return PlainTextResponse(body, status_code=503)


def _bytes(request: Request, data: bytes, *, immutable: bool, media: str) -> Response:
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": _IMMUTABLE if immutable else _REVALIDATE}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media, headers=headers)


def _media(path: str) -> str:
    if path.endswith(".gz"):
        return "application/gzip"
    if path.endswith(".xz"):
        return "application/x-xz"
    if path.endswith(".deb"):
        return "application/vnd.debian.binary-package"
    return "text/plain; charset=utf-8" if "/by-hash/" not in path else "application/octet-stream"


def make_app(content: ServedContent, options: ReleaseOptions = ReleaseOptions()) -> Router:
    """The ``/apt`` app. Example: ``Mount("/apt", app=make_app(content))``.

    A bare Router, like the other ecosystems: a damaged store surfaces as the host app's 503.
    """
    cache = RepositoryCache(content, options)

    async def keyring(request: Request, armor: bool) -> Response:
        key = ArchiveKey(content.keys_dir())
        try:
            data = await anyio.to_thread.run_sync(lambda: key.public_keyring(armor=armor))
        except UserError as exc:
            return _unavailable(f"apt archive key: {exc.message}", exc.hint)
        return _bytes(request, data, immutable=False, media="application/pgp-keys")

    async def deb(request: Request, view: ServedView, path: str, sha256: str) -> Response:
        etag = f'"{sha256}"'
        headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        response = await blob_response(request, view.blob_path(sha256), media_type=_media(path), headers=headers)
        if response is None:
            return _unavailable(
                f"mirror store error: blob {sha256} of {path} is missing", "run `mirrorctl verify` on the mirror host"
            )
        return response

    async def endpoint(request: Request) -> Response:
        path: str = request.path_params["path"]
        if path == KEYRING_BINARY:
            return await keyring(request, armor=False)
        if path == KEYRING_ARMORED:
            return await keyring(request, armor=True)
        view, repo = await cache.aget()
        if view is None or repo is None:
            return _not_found(path)
        if path.startswith("dists/"):
            data = repo.files.get(path)
            if data is not None:
                # by-hash files never change; the rest is revalidated (a new view may change them)
                return _bytes(request, data, immutable="/by-hash/" in path, media=_media(path))
            if path.endswith(("/InRelease", "/Release.gpg")) and path.split("/")[1] in repo.suites:
                try:
                    signed = await anyio.to_thread.run_sync(cache.signed, repo)
                except UserError as exc:
                    return _unavailable(f"apt archive key: {exc.message}", exc.hint)
                if path in signed:
                    return _bytes(request, signed[path], immutable=False, media=_media(path))
            return _not_found(path)
        art = repo.pool.get(path)
        if art is None:
            return _not_found(path)
        return await deb(request, view, path, art.sha256)

    return Router(routes=[Route("/{path:path}", endpoint, methods=["GET", "HEAD"])])


def serve_app(content: ServedContent) -> ASGIApp:
    """The ecosystem's ``serve_app``: the signed repository at ``/apt``, Release fields from ``[serve.apt]``."""
    return make_app(content, own_options(content.options("apt"), ReleaseOptions, ReleaseOptions()))
