"""The simple repository API over the served view: what pip and uv read.

Mounted at ``/pypi``::

    /pypi/simple/                         project list      PEP 503 HTML or PEP 691 JSON (content negotiation)
    /pypi/simple/<normalized>/            project detail    files with sha256, size, requires-python, PEP 714
    /pypi/files/<sha256>/<filename>       the file          ETag = sha256, Range requests
    /pypi/files/<sha256>/<filename>.metadata   its core metadata (PEP 658), when it was carried

Only what the view holds is served: an unknown project is a 404, never a trip upstream. File links are
relative (``../../files/...``) so the mirror works unchanged behind a reverse proxy that adds a path prefix.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from mirrorctl.ecosystems.base import ServedContent, ServedView
from mirrorctl.ecosystems.blobfile import blob_response
from mirrorctl.ecosystems.rendered import RenderCache, Rendered
from mirrorctl.ecosystems.viewindex import ViewIndex
from mirrorctl.errors import shorten
from mirrorctl.lockfile import Artifact

ECOSYSTEM = "pypi"
API_VERSION = "1.1"  # 1.1: "versions" and "size" (PEP 700)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
SUPPORTED = (JSON_TYPE, HTML_TYPE, TEXT_HTML)

METADATA_SUFFIX = ".metadata"
# PEP 508 project names; anything else cannot be a project here and gets a plain 404 (no redirect).
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_FILE_TYPES = {
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar.gz": "application/gzip",
    ".tgz": "application/gzip",
    ".tar.bz2": "application/x-bzip2",
    ".metadata": "text/plain; charset=utf-8",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
# Index pages change when an import switches the view; clients revalidate every time.
_REVALIDATE = "max-age=0, must-revalidate"


# --- the per-view index ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Project:
    name: str  # as published (for the project list)
    normalized: str
    files: tuple[Artifact, ...]  # sorted by version, then filename
    versions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Index:
    view_id: str
    projects: dict[str, _Project]  # by normalized name
    # Every artifact with those bytes: two files of one view may hold the same bytes (two paths, one blob), and
    # each is served under its own name.
    by_sha256: dict[str, tuple[Artifact, ...]]


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)  # sorts before every valid version; still deterministic


def build_index(view: ServedView) -> _Index:
    grouped: dict[str, list[Artifact]] = {}
    by_sha: dict[str, tuple[Artifact, ...]] = {}
    for a in view.artifacts(ECOSYSTEM):
        grouped.setdefault(canonicalize_name(a.name), []).append(a)
        by_sha[a.sha256] = (*by_sha.get(a.sha256, ()), a)
    projects: dict[str, _Project] = {}
    for norm, arts in grouped.items():
        arts.sort(key=lambda a: (_version_key(a.version), a.filename))
        versions = sorted({a.version for a in arts}, key=_version_key)
        projects[norm] = _Project(min(a.name for a in arts), norm, tuple(arts), tuple(versions))
    return _Index(view.view_id, dict(sorted(projects.items())), by_sha)


# --- content negotiation (PEP 691) -----------------------------------------------------------------------


class NotAcceptable(Exception):
    pass


# Tie-breaks, last is best: clients that name JSON get JSON; a bare "*/*" gets HTML.
_NAMED_PREFERENCE = (TEXT_HTML, HTML_TYPE, JSON_TYPE)
_WILDCARD_PREFERENCE = (HTML_TYPE, JSON_TYPE, TEXT_HTML)


def _parse_accept(header: str) -> list[tuple[str, float]]:
    ranges = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        ranges.append((media, q))
    return ranges


def negotiate(accept: str | None, fmt: str | None) -> str:
    """The content type to answer with. ``?format=`` wins over Accept; a missing Accept means ``*/*``.

    Among equally acceptable types a named type beats a wildcard match; where only wildcards match, HTML is
    the answer (what a browser, curl and old clients expect); where the client names several types with the
    same q, JSON is preferred. Raises NotAcceptable when nothing we serve is acceptable.
    """
    if fmt is not None:
        # An unencoded "+" arrives as a space; take the type the client evidently meant.
        wanted = fmt.strip().lower().replace(" ", "+")
        if wanted in SUPPORTED:
            return wanted
        raise NotAcceptable(f"format {fmt!r} is not served")
    ranges = _parse_accept(accept or "*/*")
    best: tuple[float, int, int] | None = None
    chosen = None
    for ctype in SUPPORTED:
        main = ctype.split("/")[0]
        match: tuple[float, int] | None = None  # (q, specificity) of the most specific matching range
        for media, q in ranges:
            spec = 2 if media == ctype else 1 if media == f"{main}/*" else 0 if media == "*/*" else -1
            if spec >= 0 and (match is None or spec > match[1]):
                match = (q, spec)
        if match is None or match[0] <= 0:
            continue
        pref = _NAMED_PREFERENCE if match[1] == 2 else _WILDCARD_PREFERENCE
        key = (match[0], match[1], pref.index(ctype))
        if best is None or key > best:
            best, chosen = key, ctype
    if chosen is None:
        raise NotAcceptable(f"none of the requested types is served: {accept!r}")
    return chosen


# --- rendering -------------------------------------------------------------------------------------------


def _file_url(a: Artifact) -> str:
    # Relative to /pypi/simple/<project>/: works at any mount point and behind path-prefixing proxies.
    return f"../../files/{a.sha256}/{quote(a.filename)}"


def _metadata_hash(a: Artifact) -> str | None:
    return next((c.sha256 for c in a.companions if c.suffix == METADATA_SUFFIX), None)


def _render(ctype: str, data: Mapping[str, object] | str, *, status: int = 200) -> Response:
    headers = {"Vary": "Accept", "Cache-Control": _REVALIDATE}
    if ctype == JSON_TYPE:
        body = json.dumps(data, sort_keys=False, separators=(",", ":")).encode()
        return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)
    assert isinstance(data, str)
    media = "text/html; charset=utf-8" if ctype == TEXT_HTML else HTML_TYPE
    return Response(data.encode(), status_code=status, media_type=media, headers=headers)


def _html_page(title: str, body: Sequence[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html>",
            "  <head>",
            f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
            f"    <title>{html.escape(title)}</title>",
            "  </head>",
            "  <body>",
            f"    <h1>{html.escape(title)}</h1>",
            *(f"    {line}" for line in body),
            "  </body>",
            "</html>",
            "",
        ]
    )


def render_project_list(index: _Index, ctype: str) -> Response:
    if ctype == JSON_TYPE:
        projects = [{"name": p.name} for p in index.projects.values()]
        return _render(ctype, {"meta": {"api-version": API_VERSION}, "projects": projects})
    links = [
        f'<a href="{quote(p.normalized)}/">{html.escape(p.name)}</a><br/>' for p in index.projects.values()
    ]
    return _render(ctype, _html_page("Simple index", links))


def _yanked(a: Artifact) -> bool | str | None:
    value = a.attrs.get("yanked")
    if value is None or value is False:
        return None
    return value if isinstance(value, str) and value else True


def render_project(project: _Project, ctype: str) -> Response:
    if ctype == JSON_TYPE:
        files = []
        for a in project.files:
            entry: dict[str, object] = {
                "filename": a.filename,
                "url": _file_url(a),
                "hashes": {"sha256": a.sha256},
                "size": a.size,
            }
            rp = a.attrs.get("requires-python")
            if rp:
                entry["requires-python"] = str(rp)
            meta = _metadata_hash(a)
            if meta:
                entry["core-metadata"] = {"sha256": meta}
                entry["dist-info-metadata"] = {"sha256": meta}  # PEP 658's name, still read by older clients
            yanked = _yanked(a)
            if yanked is not None:
                entry["yanked"] = yanked
            files.append(entry)
        doc = {
            "meta": {"api-version": API_VERSION},
            "name": project.normalized,
            "files": files,
            "versions": list(project.versions),
        }
        return _render(ctype, doc)
    links = []
    for a in project.files:
        attrs = [f'href="{html.escape(_file_url(a))}#sha256={a.sha256}"']
        rp = a.attrs.get("requires-python")
        if rp:
            attrs.append(f'data-requires-python="{html.escape(str(rp))}"')
        meta = _metadata_hash(a)
        if meta:
            attrs.append(f'data-core-metadata="sha256={meta}"')
            attrs.append(f'data-dist-info-metadata="sha256={meta}"')
        yanked = _yanked(a)
        if yanked is True:
            attrs.append("data-yanked")
        elif isinstance(yanked, str):
            attrs.append(f'data-yanked="{html.escape(yanked)}"')
        links.append(f"<a {' '.join(attrs)}>{html.escape(a.filename)}</a><br/>")
    return _render(ctype, _html_page(f"Links for {project.normalized}", links))


def _content_type(filename: str) -> str:
    lower = filename.lower()
    for suffix, ctype in _FILE_TYPES.items():
        if lower.endswith(suffix):
            return ctype
    return "application/octet-stream"


# --- the app ---------------------------------------------------------------------------------------------


def _not_found(what: str) -> Response:
    return PlainTextResponse(f"{what} is not in this mirror\n", status_code=404)


def _named(candidates: Sequence[Artifact], filename: str) -> Artifact | None:
    """The artifact among those with one sha256 whose file (or a companion of it) is called ``filename``."""
    for a in candidates:
        if filename == a.filename or any(a.filename + c.suffix == filename for c in a.companions):
            return a
    return candidates[0] if candidates else None  # a wrong name under a known digest: 404 below, as before


def _redirect(request: Request, path: str) -> Response:
    """A redirect to ``path`` on this server, as a path only: the Location never carries the request's Host
    header (a client, or a cache in front, could be sent anywhere by one). ``//`` at the start would make it a
    network-path reference to another host, so leading slashes are collapsed."""
    query = request.url.query
    location = "/" + path.lstrip("/") + (f"?{query}" if query else "")
    return RedirectResponse(location, status_code=301)


def make_app(content: ServedContent) -> Router:
    """The ``/pypi`` app. Example: ``Mount("/pypi", app=make_app(content))``.

    A bare Router, not a Starlette app: errors travel up to the host app's single middleware stack, which
    turns a damaged store into one 503 instead of a half-sent 500.
    """
    cache = ViewIndex(content, build_index, empty=_Index("", {}, {}))
    pages = RenderCache()  # project pages rendered once per view and content type

    def negotiated(request: Request) -> str | Response:
        try:
            return negotiate(request.headers.get("accept"), request.query_params.get("format"))
        except NotAcceptable as exc:
            return PlainTextResponse(
                f"406 Not Acceptable: {exc}\nserved types: {', '.join(SUPPORTED)}\n", status_code=406
            )

    async def simple_root_noslash(request: Request) -> Response:
        return _redirect(request, request.url.path + "/")

    async def simple_root(request: Request) -> Response:
        ctype = negotiated(request)
        if isinstance(ctype, Response):
            return ctype
        _, index = await cache.aget()
        return render_project_list(index, ctype)

    async def project_page(request: Request) -> Response:
        raw = request.path_params["project"]
        if not _NAME.match(raw):
            return _not_found(f"project {shorten(raw)!r}")
        normalized = canonicalize_name(raw)
        slash = request.url.path.endswith("/")
        if raw != normalized or not slash:
            prefix = request.url.path[: request.url.path.rstrip("/").rfind("/") + 1]
            return _redirect(request, f"{prefix}{normalized}/")
        ctype = negotiated(request)
        if isinstance(ctype, Response):
            return ctype
        view, index = await cache.aget()
        project = index.projects.get(normalized)
        if view is None or project is None:
            return _not_found(f"project {shorten(normalized)!r}")
        hit = pages.get(view.view_id, (normalized, ctype))
        if hit is None:
            page = render_project(project, ctype)
            hit = pages.put(view.view_id, (normalized, ctype), Rendered(bytes(page.body), page.media_type or ctype))
        return Response(hit.body, media_type=hit.media_type, headers={"Vary": "Accept", "Cache-Control": _REVALIDATE})

    async def file(request: Request) -> Response:
        sha256, filename = request.path_params["sha256"], request.path_params["filename"]
        view, index = await cache.aget()
        artifact = _named(index.by_sha256.get(sha256, ()) if _SHA256.match(sha256) else (), filename)
        if view is None or artifact is None:
            return _not_found(f"file {shorten(filename)!r}")
        if filename == artifact.filename:
            blob_sha = artifact.sha256
        else:
            companion = next(
                (c for c in artifact.companions if artifact.filename + c.suffix == filename), None
            )
            if companion is None:
                return _not_found(f"file {shorten(filename)!r}")
            blob_sha = companion.sha256
        etag = f'"{blob_sha}"'
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers={"ETag": etag, "Cache-Control": _IMMUTABLE})
        path: Path = view.blob_path(blob_sha)
        response = await blob_response(
            request, path, media_type=_content_type(filename), headers={"ETag": etag, "Cache-Control": _IMMUTABLE}
        )
        if response is None:
            return PlainTextResponse(
                f"mirror store error: blob {blob_sha} of {filename} is missing\n"
                "hint: run `mirrorctl verify` on the mirror host\n",
                status_code=503,
            )
        return response

    routes = [
        Route("/simple", simple_root_noslash),
        Route("/simple/", simple_root),
        Route("/simple/{project}", project_page),
        Route("/simple/{project}/", project_page),
        Route("/files/{sha256}/{filename}", file),
    ]
    return Router(routes=routes)
