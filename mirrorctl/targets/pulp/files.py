"""A static tree into Pulp's pulp_file: the files an ecosystem adapter's ``static_layout`` gives (npm: the
tarballs at the public layout, one packument file per package beside them; see ecosystems/npm/layout.py), as
one pulp_file repository and distribution whose URL is the endpoint. Any ecosystem whose clients can read a
static tree publishes this way by registering :class:`FileLayoutPlugin` under its name in the entry point group
``mirrorctl.targets.pulp.v1``; this module knows no ecosystem.

Why npm does not go through pulp_npm (0.10.2, read and tried on Pulp 3.123.1): its ``Package`` stores only name
and version, and its content handler builds a packument with ``versions{v:{_id, dist:{tarball}}}`` and
``dist-tags.latest`` only: no dependencies, no integrity, no shasum. npm 11 resolves from the full packument, so
a fresh ``npm install`` from it would not see a single transitive dependency and could not check a tarball.

What a static tree must respect in pulp_file (pulpcore 3.123.1 ``content/handler.py`` ``_match_and_stream``,
read and tried): a version where one path is a prefix folder of another is refused ("The path for file 'x'
overlaps: x/-/x-1.0.0.tgz"); a file at ``<dir>/index.html`` is not served for ``<dir>`` (the content app looks
for it among the publication's *published artifacts*, and a pulp_file publication is pass-through with none
but its manifest, so it answers ``<dir>`` with a 301 to ``<dir>/`` and that with an HTML listing). Only
distributions that serve a repository version directly (``SERVE_FROM_PUBLICATION = False``: pulp_npm,
pulp_maven) serve ``<name>/index.html`` for ``<name>``, and those take only their own content types.
Distribution base paths may not nest either, and pulp_file has no pull-through (its remote lacks
``get_remote_artifact_content_type``). Pulp's content app (aiohttp) decodes ``%2f``/``%2F`` before matching, so
``-/packuments/@scope%2fname`` answers with the unit at ``-/packuments/@scope/name`` (tried).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mirrorctl.config import ConfigRef, TargetSettings
from mirrorctl.ecosystems.base import Ecosystem, StoredSet
from mirrorctl.errors import MirrorctlError, TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact

from .api import PulpApi
from .plugins import PublishFile

CONTENT_PATH_PREFIX = "/pulp/content/"  # Pulp's default CONTENT_PATH_PREFIX


def _unsafe(path: str) -> bool:
    parts = path.split("/")
    return path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts)


def layout_files(adapter: Ecosystem, artifacts: Sequence[Artifact], store: Store, endpoint: str) -> list[PublishFile]:
    """The adapter's static tree for these artifacts, as the files a version must hold."""
    view = StoredSet(store, "publish", "", {adapter.name: tuple(artifacts)})
    try:
        layout = adapter.static_layout(view, endpoint)
    except MirrorctlError as exc:
        raise TargetError(f"not published: {exc.message}", hint=exc.hint) from None
    if layout is None:
        raise TargetError(
            f"{adapter.name}: its clients cannot read a static tree, so Pulp cannot serve it through pulp_file",
            hint=f"remove {adapter.name} from the target's repositories",
        )
    bad = sorted(p for p in layout if _unsafe(p))
    if bad:
        raise TargetError(f"{adapter.name}: the static layout names unsafe paths: {', '.join(bad[:5])}")
    return [PublishFile(p, f.sha256, f.size, f.artifact, f.data) for p, f in sorted(layout.items())]


class FileLayoutPlugin:
    """An ecosystem's static tree in pulp_file: content is (relative path, sha256); served from a publication."""

    settings_keys: frozenset[str] = frozenset()
    component = "file"
    repositories = "repositories/file/file/"
    distributions = "distributions/file/file/"
    content = "content/file/files/"
    publications = "publications/file/file/"
    serves_publications = True

    def __init__(self, target: TargetSettings, ref: ConfigRef, ecosystem: Ecosystem) -> None:
        self.ecosystem = ecosystem.name
        self._adapter = ecosystem

    async def trust_files(self, api: PulpApi) -> Mapping[str, str]:
        return {}

    def unit_key(self, unit: Mapping[str, Any]) -> tuple[str, str]:
        return str(unit["relative_path"]), str(unit["sha256"])

    def list_fields(self) -> str:
        return "pulp_href,relative_path,sha256"

    def distribution_fields(self) -> Mapping[str, Any]:
        return {}

    async def files(self, artifacts: Sequence[Artifact], store: Store, endpoint: str) -> list[PublishFile]:
        # Building the tree reads blobs (npm: package.json out of each tarball): off the event loop.
        return await asyncio.to_thread(layout_files, self._adapter, artifacts, store, endpoint)

    async def find_existing(self, api: PulpApi, files: Sequence[PublishFile]) -> dict[str, str]:
        # pulp_file filters sha256 only exactly; relative_path takes "__in". A unit counts only when both match.
        wanted = {(f.relative_path, f.sha256) for f in files}
        found: dict[str, str] = {}

        async def lookup(paths: list[str]) -> None:
            params = {"relative_path__in": ",".join(paths), "fields": self.list_fields()}
            async for unit in api.paged(self.content, what=f"looking up {self.ecosystem} files by path", params=params):
                if self.unit_key(unit) in wanted:
                    found[str(unit["sha256"])] = str(unit["pulp_href"])

        # A path holding a comma would split in "__in" (npm names cannot hold one); chunks stay under gunicorn's
        # request line.
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
