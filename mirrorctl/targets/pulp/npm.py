"""npm into Pulp as a static registry layout in pulp_file: the tarballs at the public layout, one packument
file per package beside them.

Why not pulp_npm (0.10.2, read and tried on Pulp 3.123.1): its ``Package`` stores only name and version, and
its content handler builds a packument with ``versions{v:{_id, dist:{tarball}}}`` and ``dist-tags.latest``
only: no dependencies, no integrity, no shasum. npm 11 resolves from the full packument, so a fresh
``npm install`` from it would not see a single transitive dependency and could not check a tarball.

The layout (one pulp_file repository and distribution; the endpoint is the distribution's URL):

* tarballs at ``<name>/-/<basename>-<version>.tgz`` (``@scope/name/-/name-1.0.0.tgz``): the public layout, so
  that ``npm ci`` of a package-lock.json made against the public registry finds them where
  ``replace-registry-host`` sends it (``<registry>/<name>/-/<file>``);
* packuments at ``-/packuments/<name>`` (``-/packuments/@scope/name``), read by npm through a scope registry
  (npm/clientconfig.py ``PACKUMENT_DIR``; the workspace config says why that reaches every package).
  ``-`` is never a package name, and Pulp's content app (aiohttp) decodes ``%2f``/``%2F`` before matching,
  so ``-/packuments/@scope%2fname`` answers with the unit at ``-/packuments/@scope/name`` (tried).

Why packuments cannot sit at ``<name>`` (pulpcore 3.123.1 ``content/handler.py`` ``_match_and_stream``, read
and tried): pulp_file refuses a version where one path is a prefix directory of another ("The path for file
'x' overlaps: x/-/x-1.0.0.tgz"); and a packument at ``<name>/index.html`` is not served for ``<name>``: the
content app looks for ``<name>/index.html`` among the publication's *published artifacts* (a pulp_file
publication is pass-through and has none but its manifest), finds none, lists the directory instead, answers
``<name>`` with a 301 to ``<name>/`` and that with an HTML listing. Only distributions that serve a repository
version directly (``SERVE_FROM_PUBLICATION = False``: pulp_npm, pulp_maven) serve ``<name>/index.html`` for
``<name>``, and those take only their own content types. Distribution base paths may not nest either, and
pulp_file has no pull-through (its remote lacks ``get_remote_artifact_content_type``).

Packuments are served as ``application/octet-stream`` (no extension); npm parses the body as JSON whatever the
type (tried with npm 11). A packument carries, for each version, what ``mirrorctl serve`` serves
(npm/serve.py ``version_document``: the tarball's own package.json read by npm/manifest.py, ``_id``, ``dist``
{tarball, integrity, shasum, fileCount, unpackedSize}, ``deprecated`` from the lock); ``dist-tags`` are those
``mirrorctl serve`` publishes (npm/serve.py ``dist_tags``: the tags the locks recorded, ``latest`` the highest
release when none recorded it). The bytes are deterministic
(sorted keys, no timestamps), so an unchanged set makes the same packuments and a republish changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nodesemver

from mirrorctl.ecosystems.npm.clientconfig import PACKUMENT_DIR
from mirrorctl.ecosystems.npm.manifest import read_tarball_info
from mirrorctl.ecosystems.npm.serve import dist_tags, version_document
from mirrorctl.ecosystems.npm.spec import validate_artifact
from mirrorctl.errors import MirrorctlError, TargetError
from mirrorctl.lockfile import Artifact
from mirrorctl.store import Store

from .api import PulpApi
from .plugins import PublishFile

CONTENT_PATH_PREFIX = "/pulp/content/"  # Pulp's default CONTENT_PATH_PREFIX


def tarball_path(name: str, filename: str) -> str:
    """The public registry's tarball path, where npm ci looks after ``replace-registry-host``."""
    return f"{name}/-/{filename}"


def packument_path(name: str) -> str:
    return PACKUMENT_DIR + name


def _sri_and_sha1(path: Path) -> tuple[str, str]:
    sha512, sha1 = hashlib.sha512(), hashlib.sha1()  # npm's dist.shasum is SHA-1 by definition
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha512.update(chunk)
            sha1.update(chunk)
    return "sha512-" + base64.b64encode(sha512.digest()).decode(), sha1.hexdigest()


def _sort_versions(versions: Sequence[str]) -> list[str]:
    return sorted(versions, key=nodesemver.cmp_to_key(lambda a, b: int(nodesemver.compare(a, b, loose=True))))


def version_object(artifact: Artifact, path: Path, registry_url: str) -> dict[str, Any]:
    """The version entry ``mirrorctl serve`` serves (npm/serve.py ``version_document``), tarball in this layout."""
    label = f"npm {artifact.name} {artifact.version} ({artifact.filename})"
    info = read_tarball_info(path, where=label)
    manifest = info.manifest
    if manifest.get("name") != artifact.name or manifest.get("version") != artifact.version:
        raise TargetError(
            f"{label}: the tarball's package.json says {manifest.get('name')}@{manifest.get('version')}",
            hint="the lock and the tarball disagree; run `mirrorctl verify` and lock again",
        )
    doc = version_document(artifact, info, registry_url, corgi=False)
    dist = doc["dist"]
    if not dist.get("integrity") or not dist.get("shasum"):  # a lock always has both; computed otherwise
        integrity, shasum = _sri_and_sha1(path)
        dist.setdefault("integrity", integrity)
        dist.setdefault("shasum", shasum)
    return doc


def render_packument(name: str, versions: Mapping[str, dict[str, Any]], tags: Mapping[str, str]) -> bytes:
    ordered = _sort_versions(list(versions))
    doc = {
        "_id": name,
        "name": name,
        "dist-tags": dict(tags),
        "versions": {v: versions[v] for v in ordered},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def registry_files(artifacts: Sequence[Artifact], store: Store, registry_url: str) -> list[PublishFile]:
    """Every file of the layout: each tarball (from the store) and one generated packument per package."""
    files: list[PublishFile] = []
    by_name: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    arts_by_name: dict[str, list[Artifact]] = defaultdict(list)
    for a in sorted(artifacts, key=lambda a: (a.name, a.filename)):
        label = f"npm {a.name} {a.version} ({a.filename})"
        try:
            validate_artifact(a)  # names become paths in Pulp (``..``, a stray ``/``): the grammar first
        except MirrorctlError as exc:
            raise TargetError(f"{label}: not published: {exc.message}", hint=exc.hint) from None
        rel = tarball_path(a.name, a.filename)
        path = store.blob_path(a.sha256)
        if not path.is_file():
            raise TargetError(f"{label}: blob {a.sha256} is not in the store", hint="run `mirrorctl verify`")
        by_name[a.name][a.version] = version_object(a, path, registry_url)
        arts_by_name[a.name].append(a)
        files.append(PublishFile(rel, a.sha256, a.size, a))
    for name, versions in sorted(by_name.items()):
        data = render_packument(name, versions, dist_tags(arts_by_name[name]))
        files.append(PublishFile(packument_path(name), hashlib.sha256(data).hexdigest(), len(data), None, data))
    return files


class NpmFilePlugin:
    """npm as a static registry in pulp_file: content is (relative path, sha256); served from a publication."""

    ecosystem = "npm"
    component = "file"
    repositories = "repositories/file/file/"
    distributions = "distributions/file/file/"
    content = "content/file/files/"
    publications = "publications/file/file/"

    def unit_key(self, unit: Mapping[str, Any]) -> tuple[str, str]:
        return str(unit["relative_path"]), str(unit["sha256"])

    def list_fields(self) -> str:
        return "pulp_href,relative_path,sha256"

    def distribution_fields(self) -> Mapping[str, Any]:
        return {}

    async def files(self, artifacts: Sequence[Artifact], store: Store, endpoint: str) -> list[PublishFile]:
        # Reading package.json out of each tarball is blocking file work: off the event loop.
        return await asyncio.to_thread(registry_files, artifacts, store, endpoint)

    async def find_existing(self, api: PulpApi, files: Sequence[PublishFile]) -> dict[str, str]:
        # pulp_file filters sha256 only exactly; relative_path takes "__in". A unit counts only when both match.
        wanted = {(f.relative_path, f.sha256) for f in files}
        found: dict[str, str] = {}

        async def lookup(paths: list[str]) -> None:
            params = {"relative_path__in": ",".join(paths), "fields": self.list_fields()}
            async for unit in api.paged(self.content, what="looking up npm files by path", params=params):
                if self.unit_key(unit) in wanted:
                    found[str(unit["sha256"])] = str(unit["pulp_href"])

        # Paths can hold commas in theory only (npm names cannot); chunks stay under gunicorn's request line.
        paths = sorted({f.relative_path for f in files})
        chunks: list[list[str]] = []
        for p in paths:
            if not chunks or sum(len(quote(x)) + 3 for x in chunks[-1]) + len(quote(p)) > 2800:
                chunks.append([])
            chunks[-1].append(p)
        for i in range(0, len(chunks), 4):
            await asyncio.gather(*(lookup(c) for c in chunks[i : i + 4]))
        return found

    async def upload(self, api: PulpApi, file: PublishFile, source: Path | bytes) -> str:
        # The synchronous upload: artifact and content unit in one request, no task; it returns the existing
        # unit when Pulp already holds these bytes at this path (tried), so a concurrent publish is harmless.
        what = f"uploading {file.relative_path}"
        basename = file.relative_path.rsplit("/", 1)[-1]
        if isinstance(source, bytes):
            resp = await api.request(
                "POST",
                self.content + "upload/",
                what=what,
                files={"file": (basename, source, "application/octet-stream")},
                data={"relative_path": file.relative_path},
                ok=(201,),
            )
        else:
            with source.open("rb") as fh:
                resp = await api.request(
                    "POST",
                    self.content + "upload/",
                    what=what,
                    files={"file": (basename, fh, "application/octet-stream")},
                    data={"relative_path": file.relative_path},
                    ok=(201,),
                )
        unit = resp.json()
        if unit.get("sha256") != file.sha256 or unit.get("relative_path") != file.relative_path:
            raise TargetError(
                f"targets.{api.name}: {what}: Pulp stored {unit.get('relative_path')} with sha256 "
                f"{unit.get('sha256')}, expected sha256 {file.sha256}",
                hint="the file changed on its way to Pulp; run `mirrorctl verify` and publish again",
            )
        return str(unit["pulp_href"])

    async def serve(self, api: PulpApi, version_href: str) -> dict[str, Any]:
        # pulp_file serves publications, not versions: reuse the version's publication or make one. With
        # repository=None the distribution does not follow new publications on its own.
        pub = await api.find_one(
            self.publications,
            what=f"finding the publication of {version_href}",
            repository_version=version_href,
            ordering="-pulp_created",
        )
        if pub is not None and pub.get("complete", True):
            href = str(pub["pulp_href"])
        else:
            task = await api.run_task(
                "POST",
                self.publications,
                {"repository_version": version_href},
                what=f"publishing {version_href}",
            )
            href = next(h for h in task.get("created_resources", []) if "/publications/" in h)
        return {"repository": None, "publication": href}

    async def served_version(self, api: PulpApi, distribution: Mapping[str, Any]) -> str | None:
        if distribution.get("repository") or not distribution.get("publication"):
            return None
        pub = await api.get_json(str(distribution["publication"]), what="reading the served publication")
        href = pub.get("repository_version")
        return str(href) if href else None

    def endpoint(self, api_origin: str, content_origin: str, base_path: str) -> str:
        return f"{content_origin.rstrip('/')}{CONTENT_PATH_PREFIX}{base_path}/"
