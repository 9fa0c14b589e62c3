"""Per-ecosystem strategies: how one Pulp plugin stores, finds, uploads and serves one ecosystem's files.

The publish algorithm (mirrorctl/targets/pulp/target.py) is the same for every plugin: find what Pulp has,
upload the rest, make one repository version holding exactly the set, then switch the distribution to it. What
differs per plugin is small and lives behind :class:`PulpPlugin`:

* endpoints (repository, distribution, content) and the status component that must be installed;
* how a content unit is named (filename or relative path) and looked up by sha256;
* the fastest upload path the plugin offers;
* how a distribution is made to serve one repository version: pulp_python serves a version directly
  (``repository_version``); pulp_deb and pulp_file serve a *publication*, so their ``serve`` creates one for
  the version first and returns ``{"publication": href}``. The switch is still one PATCH.

Later plugins, per protocol-facts section 8.2: pulp_deb (``content/deb/packages/``, publication with
``--simple``/``--structured``), pulp_npm (``content/npm/packages/upload/``; its packument lacks dependencies, so
npm may need pulp_file with our own packuments), pulp_maven (``content/maven/artifact/upload/``), and pulp_file
(``content/file/files/`` with a relative path: Go module proxy trees, Maven trees, model files).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mirrorctl.errors import TargetError
from mirrorctl.lockfile import Artifact

from .api import PulpApi

# sha256 values per lookup: Pulp's gunicorn refuses a request line over 4094 bytes (65 bytes per value).
SHA_QUERY_CHUNK = 40


class PulpPlugin(Protocol):
    ecosystem: str
    component: str  # the name in GET /status/ "versions" (e.g. "python")
    repositories: str  # list/create endpoint relative to the API root
    distributions: str
    content: str

    def unit_key(self, unit: Mapping[str, Any]) -> tuple[str, str]:
        """(name as clients see it, sha256) of a content unit from a list answer."""
        ...

    def artifact_key(self, artifact: Artifact) -> tuple[str, str]: ...

    def list_fields(self) -> str:
        """The ``fields`` parameter that keeps content lists small."""
        ...

    def distribution_fields(self) -> Mapping[str, Any]:
        """Extra fields for a new distribution (e.g. refuse direct uploads)."""
        ...

    async def find_existing(self, api: PulpApi, artifacts: Sequence[Artifact]) -> dict[str, str]:
        """sha256 -> content href for the artifacts Pulp already holds as content units (in any repository)."""
        ...

    async def upload(self, api: PulpApi, artifact: Artifact, path: Path) -> str:
        """Create the content unit for one file; returns its href."""
        ...

    async def serve(self, api: PulpApi, version_href: str) -> dict[str, Any]:
        """The distribution PATCH body that makes it serve exactly ``version_href``."""
        ...

    def served_version(self, distribution: Mapping[str, Any]) -> str | None:
        """The repository version href a distribution serves, or None when it follows nothing explicit."""
        ...

    def endpoint(self, api_origin: str, content_origin: str, base_path: str) -> str:
        """The URL the ecosystem's clients are configured with."""
        ...


class PythonPlugin:
    """pulp_python: wheels and sdists, served by the distribution from a repository version (no publication)."""

    ecosystem = "pypi"
    component = "python"
    repositories = "repositories/python/python/"
    distributions = "distributions/python/pypi/"
    content = "content/python/packages/"

    def unit_key(self, unit: Mapping[str, Any]) -> tuple[str, str]:
        return str(unit["filename"]), str(unit["sha256"])

    def artifact_key(self, artifact: Artifact) -> tuple[str, str]:
        return artifact.filename, artifact.sha256

    def list_fields(self) -> str:
        return "pulp_href,filename,sha256"

    def distribution_fields(self) -> Mapping[str, Any]:
        # The index serves only what mirrorctl published: no twine uploads into it, no pull-through remote.
        return {"allow_uploads": False}

    async def find_existing(self, api: PulpApi, artifacts: Sequence[Artifact]) -> dict[str, str]:
        shas = sorted({a.sha256 for a in artifacts})
        found: dict[str, str] = {}

        async def lookup(chunk: list[str]) -> None:
            params = {"sha256__in": ",".join(chunk), "fields": self.list_fields()}
            async for unit in api.paged(self.content, what="looking up python content by sha256", params=params):
                found[str(unit["sha256"])] = str(unit["pulp_href"])

        chunks = [shas[i : i + SHA_QUERY_CHUNK] for i in range(0, len(shas), SHA_QUERY_CHUNK)]
        for i in range(0, len(chunks), 4):  # a few lookups at a time: the API has few workers
            await asyncio.gather(*(lookup(c) for c in chunks[i : i + 4]))
        return found

    async def upload(self, api: PulpApi, artifact: Artifact, path: Path) -> str:
        # The synchronous upload endpoint creates the artifact and the content unit in the API process in one
        # request, without a task. Measured here (20 wheels of ~2 MB, 8 at a time): 1.6 s, against 13.1 s for
        # POST artifacts/ then a content-create task per file. It is idempotent: bytes Pulp already holds
        # come back as the existing unit, so a concurrent publish of the same file is harmless. The file name
        # must be the exact distribution filename: pulp_python parses name, version and tags from it.
        what = f"uploading {artifact.filename}"
        with path.open("rb") as fh:
            resp = await api.request(
                "POST",
                self.content + "upload/",
                what=what,
                files={"file": (artifact.filename, fh, "application/octet-stream")},
                ok=(201,),
            )
        unit = resp.json()
        if unit.get("sha256") != artifact.sha256:
            raise TargetError(
                f"targets.{api.name}: {what}: Pulp stored sha256 {unit.get('sha256')}, the lock says {artifact.sha256}",
                hint="the file changed on its way to Pulp; run `mirrorctl verify` and publish again",
            )
        return str(unit["pulp_href"])

    async def serve(self, api: PulpApi, version_href: str) -> dict[str, Any]:
        # repository=None: a distribution with a repository follows its latest version automatically; an
        # explicit version is what makes the PATCH the single switch (and rollback possible).
        return {"repository": None, "publication": None, "repository_version": version_href}

    def served_version(self, distribution: Mapping[str, Any]) -> str | None:
        if distribution.get("repository") or distribution.get("publication"):
            return None
        href = distribution.get("repository_version")
        return str(href) if href else None

    def endpoint(self, api_origin: str, content_origin: str, base_path: str) -> str:
        # pulp_python serves the simple index from the API app (PYPI_PATH_PREFIX "/pypi/"); the file links on
        # it point at the content app (CONTENT_ORIGIN), which clients must reach as well.
        return f"{api_origin.rstrip('/')}/pypi/{base_path}/simple/"


PLUGINS: dict[str, PulpPlugin] = {p.ecosystem: p for p in (PythonPlugin(),)}
