"""The npm registry API over the served view: what npm install and npm ci read.

Mounted at ``/npm``::

    /npm/<name>                      packument: full JSON, or the abbreviated ("corgi") form when asked for
    /npm/@scope%2fname               the same for a scoped package (%2f, %2F and /@scope/name all work)
    /npm/<name>/<version|tag>        one version's document
    /npm/<name>/-/<file>.tgz         the tarball, byte-identical; ETag = sha256, Range requests
    /npm/-/ping                      what ``npm ping`` asks

Only what the view holds is listed: versions the view does not carry do not exist here, ``dist-tags`` are
those the locks recorded (attr ``dist-tags``: the upstream's tags that pointed at a locked version) with
``latest`` the highest version a profile asked for (see :func:`dist_tags`), and every ``dist.tarball``
points at this mirror, built from the request's own URL so the same view works under any host name. A name
the view does not carry gets a fast JSON 404, which npm reports at once (it does not retry a 404).

What npm needs per version (dependencies, optionalDependencies, os, cpu, bin, engines, ...) comes from the
tarball's package.json (see manifest.py) plus the lock's attrs: integrity, shasum and deprecated. The
``time`` entries are the view's creation time: when the versions became available here, deterministic for a
view. npm 11 reads the full document during ``npm install`` and the corgi one during ``npm ci``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio
import nodesemver
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from mirrorctl.ecosystems.base import ServedContent, ServedView
from mirrorctl.ecosystems.blobfile import blob_response
from mirrorctl.ecosystems.rendered import RenderCache, Rendered
from mirrorctl.ecosystems.viewindex import ViewIndex
from mirrorctl.lockfile import Artifact

from .manifest import ManifestCache, TarballInfo

if TYPE_CHECKING:
    from mirrorctl.config import ConfigRef

ECOSYSTEM = "npm"
CORGI_TYPE = "application/vnd.npm.install-v1+json"
JSON_TYPE = "application/json"
# Where manifests parsed out of tarballs are kept, under the store root.
MANIFEST_CACHE = "manifests"  # the view's cache_dir("npm", ...): <store>/cache/npm-manifests
FALLBACK_TIME = "1970-01-01T00:00:00.000Z"

_IMMUTABLE = "public, max-age=31536000, immutable"
# A packument changes when an import switches the view; npm revalidates (If-None-Match) every time.
_REVALIDATE = "max-age=0, must-revalidate"

# npm package names (validate-npm-package-name): URL-safe, no leading . or _, at most 214 characters.
_PART = r"[A-Za-z0-9~-][A-Za-z0-9._~!-]*"
_NAME = re.compile(rf"^(@{_PART}/)?{_PART}$")
_MAX_NAME = 214

# package.json fields the abbreviated document keeps (registry docs, responses/package-metadata.md), plus
# what npm 11 reads from it for platform checks and install scripts.
CORGI_FIELDS = (
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "libc",
    "funding",
    "_hasShrinkwrap",
    "hasInstallScript",
    "dist",
)
# Fields of the latest version the full document repeats at the top, as the public registry does.
_HOISTED = ("description", "license", "homepage", "repository", "bugs", "keywords", "author", "maintainers")
# Never copied from a package.json: the registry's own fields (set here) and bulky documentation.
_DROPPED = ("readme", "readmeFilename", "deprecated", "dist", "gitHead")
_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")


# --- versions ----------------------------------------------------------------------------------------------


def _semver_cmp(a: str, b: str) -> int:
    va, vb = nodesemver.valid(a, False), nodesemver.valid(b, False)
    if va is None or vb is None:  # not semver: before every valid version, then by text (deterministic)
        return (va is not None) - (vb is not None) or (a > b) - (a < b)
    return int(nodesemver.compare(va, vb, False))


VERSION_KEY = cmp_to_key(_semver_cmp)


def _is_release(version: str) -> bool:
    parsed = nodesemver.make_semver(version, False) if nodesemver.valid(version, False) else None
    return parsed is not None and not parsed.prerelease


def latest_version(versions: Sequence[str]) -> str:
    """The highest release, else the highest version. ``versions`` sorted ascending and not empty."""
    releases = [v for v in versions if _is_release(v)]
    return (releases or list(versions))[-1]


DIST_TAGS_ATTR = "dist-tags"  # the lock attr (npm/resolver.py): "latest,next", the tags upstream had
ROOTS_ATTR = "roots"  # the lock attr (npm/resolver.py): the profile requests a version answers
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")


def dist_tags(artifacts: Sequence[Artifact]) -> dict[str, str]:
    """The ``dist-tags`` a package's mirrored artifacts (not empty) publish, sorted by tag.

    Every tag a lock recorded on a mirrored version; when locks disagree (several versions carry one tag), the
    highest of them. ``latest`` is always present: the highest version a profile asked for (attr ``roots``;
    a release before a prerelease), so ``npm install eslint`` inside takes the major the team declared, not one
    a peer range elsewhere let in. For a package no profile asked for (only reached as a dependency), and for
    locks made before roots were recorded: the upstream's ``latest`` when its version is mirrored, else the
    highest mirrored release (the highest version when all are prereleases)."""
    tagged: dict[str, set[str]] = {}
    for a in artifacts:
        value = a.attrs.get(DIST_TAGS_ATTR)
        for tag in value.split(",") if isinstance(value, str) else ():
            # Only tag names npm accepts (never a version or range: npm would read those as such).
            if _TAG.match(tag) and nodesemver.valid_range(tag, loose=True) is None:
                tagged.setdefault(tag, set()).add(a.version)
    tags = {tag: sorted(versions, key=VERSION_KEY)[-1] for tag, versions in tagged.items()}
    asked = sorted({a.version for a in artifacts if a.attrs.get(ROOTS_ATTR)}, key=VERSION_KEY)
    if asked:
        tags["latest"] = latest_version(asked)
    elif "latest" not in tags:
        tags["latest"] = latest_version(sorted({a.version for a in artifacts}, key=VERSION_KEY))
    return dict(sorted(tags.items()))


# --- the per-view index ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Package:
    name: str
    versions: tuple[Artifact, ...]  # one per version, ascending
    files: Mapping[str, Artifact]  # tarball path (``<name>/-/<file>``) -> artifact
    tags: Mapping[str, str]  # dist-tags (see dist_tags)


@dataclass(frozen=True, slots=True)
class _Index:
    view_id: str
    created: str
    packages: Mapping[str, _Package]


def _view_created(view: ServedView) -> str:
    return view.created or FALLBACK_TIME


def build_index(view: ServedView) -> _Index:
    grouped: dict[str, list[Artifact]] = {}
    for a in view.artifacts(ECOSYSTEM):
        grouped.setdefault(a.name, []).append(a)
    packages: dict[str, _Package] = {}
    for name, arts in grouped.items():
        by_version: dict[str, Artifact] = {}
        for a in sorted(arts, key=lambda a: (a.version, a.path, a.sha256)):
            by_version.setdefault(a.version, a)  # a view never holds two tarballs of one version; if so, one
        ordered = tuple(by_version[v] for v in sorted(by_version, key=VERSION_KEY))
        # Keyed by the artifact's path (``@acme/core/-/core-1.0.0.tgz``): the URL below the registry is the path.
        packages[name] = _Package(name, ordered, {a.path: a for a in ordered}, dist_tags(arts))
    return _Index(view.view_id, _view_created(view), packages)


def _manifest_cache_dir(view: ServedView) -> Path | None:
    """``<store>/cache/npm-manifests``."""
    return view.cache_dir(ECOSYSTEM, MANIFEST_CACHE)


# --- documents ---------------------------------------------------------------------------------------------


def _normalized_manifest(info: TarballInfo) -> dict[str, Any]:
    """package.json as the registry would hold it: a binding.gyp without install script means node-gyp."""
    doc = {k: v for k, v in info.manifest.items() if not k.startswith("_") and k not in _DROPPED}
    scripts = doc.get("scripts")
    scripts = dict(scripts) if isinstance(scripts, dict) else {}
    if info.has_binding_gyp and not any(s in scripts for s in ("install", "preinstall")):
        scripts["install"] = "node-gyp rebuild"
        doc["gypfile"] = True
    if scripts:
        doc["scripts"] = scripts
    if any(s in scripts for s in _INSTALL_SCRIPTS):
        doc["hasInstallScript"] = True
    return doc


def version_document(a: Artifact, info: TarballInfo, registry: str, *, corgi: bool) -> dict[str, Any]:
    """One entry of ``versions``: the tarball's package.json with the registry's fields set from the lock."""
    doc = _normalized_manifest(info)
    doc["name"] = a.name  # the lock's name and version are what was resolved and verified
    doc["version"] = a.version
    doc["_id"] = f"{a.name}@{a.version}"
    doc["_hasShrinkwrap"] = info.has_shrinkwrap
    deprecated = a.attrs.get("deprecated")
    if isinstance(deprecated, str) and deprecated:
        doc["deprecated"] = deprecated
    dist: dict[str, Any] = {"tarball": registry + quote(a.path, safe="/@")}
    if a.attrs.get("shasum"):
        dist["shasum"] = str(a.attrs["shasum"])
    if a.attrs.get("integrity"):
        dist["integrity"] = str(a.attrs["integrity"])
    dist["fileCount"] = info.file_count
    dist["unpackedSize"] = info.unpacked_size
    doc["dist"] = dist
    if corgi:
        return {k: doc[k] for k in CORGI_FIELDS if k in doc}
    return doc


def packument(
    package: _Package, infos: Mapping[str, TarballInfo], registry: str, created: str, *, corgi: bool
) -> dict[str, Any]:
    """The whole document for one package; ``infos`` by sha256, ``registry`` ends with ``/``."""
    versions = {a.version: version_document(a, infos[a.sha256], registry, corgi=corgi) for a in package.versions}
    tags = dict(package.tags)
    latest = tags["latest"]
    if corgi:
        return {"name": package.name, "modified": created, "dist-tags": tags, "versions": versions}
    doc: dict[str, Any] = {"_id": package.name, "name": package.name, "dist-tags": tags}
    latest_doc = versions[latest]
    doc.update({k: latest_doc[k] for k in _HOISTED if k in latest_doc})
    doc["versions"] = versions
    doc["time"] = {"created": created, "modified": created, **{v: created for v in versions}}
    doc["modified"] = created
    return doc


def wants_corgi(accept: str | None) -> bool:
    """True when the client accepts the abbreviated form (pacote names it first, with q=1.0)."""
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        if fields[0].lower() != CORGI_TYPE:
            continue
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


# --- the app -----------------------------------------------------------------------------------------------


def _json(
    doc: object, *, status: int = 200, media: str = JSON_TYPE, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type=media, headers=dict(headers or {}))


def _not_found() -> Response:
    return _json({"error": "Not found"}, status=404, headers={"Cache-Control": _REVALIDATE})


def _split(path: str) -> tuple[str, list[str]] | None:
    """``@scope/name/-/f.tgz`` -> ("@scope/name", ["-", "f.tgz"]); None when no package name can be there."""
    parts = [p for p in path.split("/") if p != ""]
    if not parts:
        return None
    if parts[0].startswith("@"):
        if len(parts) < 2:
            return None
        name, rest = f"{parts[0]}/{parts[1]}", parts[2:]
    else:
        name, rest = parts[0], parts[1:]
    if len(name) > _MAX_NAME or not _NAME.match(name):
        return None
    return name, rest


@dataclass(frozen=True, slots=True)
class NpmServeOptions:
    """``[serve.npm]``: ``base-url``, the mirror's address as clients reach it (``https://mirror.internal``, with
    any path prefix a reverse proxy adds). Tarball URLs in packuments are absolute (npm needs them so); with it
    set they are built from it, never from the request's Host header."""

    base_url: str | None = None


def parse_serve_options(table: Mapping[str, object], ref: ConfigRef) -> NpmServeOptions:
    ref.no_unknown(table, ("base-url",))
    raw = table.get("base-url")
    if raw is None:
        return NpmServeOptions()
    if not isinstance(raw, str):
        raise ref.error("base-url", f"must be a string (an http(s) URL), got {raw!r}")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ref.error(
            "base-url", f"must be an http(s) URL with a host and no query, got {raw!r}",
            hint='the mirror as clients reach it, e.g. base-url = "https://mirror.internal"',
        )
    if parts.username or parts.password:
        raise ref.error("base-url", "must not carry a user or password (clients would see it in every packument)")
    return NpmServeOptions(raw.rstrip("/"))


def _registry_url(request: Request, options: object) -> str:
    """This registry's base URL, ending with ``/``: the configured ``base-url`` and the mount prefix, or, without
    one, as the client reached it (host, port, mount prefix)."""
    prefix = request.scope.get("root_path", "") + "/"
    if isinstance(options, NpmServeOptions) and options.base_url is not None:
        return options.base_url + prefix
    return str(request.url.replace(path=prefix, query=""))


def make_app(content: ServedContent) -> Router:
    """The ``/npm`` app. Example: ``Mount("/npm", app=make_app(content))``.

    A bare Router, like the PyPI app: a damaged store surfaces as the host app's 503, never a half-sent 500.
    """
    cache = ViewIndex(content, build_index, empty=_Index("", FALLBACK_TIME, {}))
    # Packuments rendered once per view (and registry URL): a busy package costs one render, not one a request.
    pages = RenderCache()
    manifests: dict[str, ManifestCache] = {}  # by cache folder: one per store
    manifests_lock = threading.Lock()

    def manifest_cache(view: ServedView) -> ManifestCache:
        folder = _manifest_cache_dir(view)
        key = str(folder)
        with manifests_lock:
            if key not in manifests:
                manifests[key] = ManifestCache(folder)
            return manifests[key]

    def load_infos(view: ServedView, artifacts: Sequence[Artifact]) -> dict[str, TarballInfo]:
        mc = manifest_cache(view)
        return {
            a.sha256: mc.get(a.sha256, view.blob_path(a.sha256), where=f"npm {a.name} {a.version} ({a.filename})")
            for a in artifacts
        }

    async def document(
        request: Request, package: _Package, view: ServedView, index: _Index, rest: list[str]
    ) -> Response:
        corgi = wants_corgi(request.headers.get("accept")) and not rest
        registry = _registry_url(request, content.options(ECOSYSTEM))
        key = (package.name, tuple(rest), corgi, registry)
        hit = pages.get(view.view_id, key)
        if hit is None:
            if rest:  # /<name>/<version or tag>
                wanted = rest[0]
                version = package.tags.get(wanted, wanted)
                art = next((a for a in package.versions if a.version == version), None)
                if art is None or len(rest) != 1:
                    return _not_found()
                infos = await anyio.to_thread.run_sync(load_infos, view, [art])
                doc: dict[str, Any] = version_document(art, infos[art.sha256], registry, corgi=False)
            else:
                infos = await anyio.to_thread.run_sync(load_infos, view, package.versions)
                doc = packument(package, infos, registry, index.created, corgi=corgi)
            body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            hit = pages.put(view.view_id, key, Rendered(body, CORGI_TYPE if corgi else JSON_TYPE, etag))
        headers = {"ETag": hit.etag, "Vary": "Accept", "Cache-Control": _REVALIDATE}
        if hit.etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(hit.body, media_type=hit.media_type, headers=headers)

    async def tarball(request: Request, art: Artifact, view: ServedView) -> Response:
        etag = f'"{art.sha256}"'
        headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        path = view.blob_path(art.sha256)
        response = await blob_response(request, path, media_type="application/octet-stream", headers=headers)
        if response is None:
            return _json(
                {
                    "error": f"mirror store error: blob {art.sha256} of {art.filename} is missing",
                    "hint": "run `mirrorctl verify` on the mirror host",
                },
                status=503,
            )
        return response

    async def endpoint(request: Request) -> Response:
        path = request.path_params["path"]
        if path in ("-/ping", "-/ping/"):
            return _json({})
        split = _split(path)
        if split is None:
            return _not_found()
        name, rest = split
        view, index = await cache.aget()
        package = index.packages.get(name)
        if view is None or package is None:
            return _not_found()
        if len(rest) == 2 and rest[0] == "-":
            art = package.files.get(f"{name}/-/{rest[1]}")
            return _not_found() if art is None else await tarball(request, art, view)
        if len(rest) > 1:
            return _not_found()
        return await document(request, package, view, index, rest)

    return Router(routes=[Route("/{path:path}", endpoint, methods=["GET", "HEAD"])])
