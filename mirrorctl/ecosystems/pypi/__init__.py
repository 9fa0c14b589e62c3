"""The PyPI ecosystem: PEP 508 requirements resolved per (Python version x platform) target, wheels (and
sdists where allowed) served through the simple repository API (PEP 503 HTML, PEP 691 JSON, PEP 658/714
metadata), pip and uv configured to use only the mirror.

The parts live in their own modules; this class only wires them to the :class:`Ecosystem` Protocol:

    spec.py         [pypi] profile table -> PypiSpec; artifact name/version validation
    targets.py      target -> wheel tags and marker environment (packaging.tags / packaging.markers)
    index.py        the upstream simple API client (PEP 691 JSON, PEP 503 HTML fallback, PEP 658 metadata)
    choice.py       which files and versions are candidates (tags, requires-python, sdists, yanks, pre-releases)
    resolver.py     resolvelib provider; one consistent set per target; lock checking
    explain.py      the notes a lock prints and why a target cannot be resolved
    fetchplan.py    locked artifacts -> upstream URLs
    serve.py        the embedded simple index over the served view
    clientconfig.py pip.conf, uv.toml and environment for workspaces
    discover.py     the index the local pip/uv use, for `mirrorctl init`
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mirrorctl.ecosystems.base import (
    ASGIApp,
    ClientConfig,
    DiscoveredUpstream,
    FetchContext,
    FetchItem,
    ProfileSource,
    ResolveContext,
    ServedContent,
)
from mirrorctl.lockfile import Artifact


class PypiEcosystem:
    name = "pypi"

    def parse_profile(self, table: Mapping[str, Any], source: ProfileSource) -> Any:
        from .spec import parse_spec

        return parse_spec(table, source)

    async def resolve(self, spec: Any, ctx: ResolveContext) -> list[Artifact]:
        from .resolver import resolve_spec

        return await resolve_spec(spec, ctx)

    def check_lock(self, spec: Any, artifacts: Sequence[Artifact], *, targets: Collection[str]) -> list[str]:
        from .resolver import check_lock

        return check_lock(spec, artifacts, targets)

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        from .fetchplan import fetch_plan

        return await fetch_plan(artifacts, ctx)

    def validate_artifact(self, artifact: Artifact) -> None:
        from .spec import validate_artifact

        validate_artifact(artifact)

    def serve_app(self, content: ServedContent) -> ASGIApp:
        from .serve import make_app

        return make_app(content)

    def client_config(
        self, mirror_url: str, *, endpoint: str | None = None, content: ServedContent | None = None
    ) -> ClientConfig:
        from .clientconfig import client_config

        return client_config(mirror_url, endpoint=endpoint)

    def discover_upstream(self, environ: Mapping[str, str]) -> DiscoveredUpstream | None:
        from .discover import discover_upstream

        return discover_upstream(environ)
