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

from mirrorctl.config import ConfigRef
from mirrorctl.ecosystems.base import (
    ASGIApp,
    ClientConfig,
    DiscoveredUpstream,
    FetchContext,
    FetchItem,
    ProfileSource,
    ProfileSpec,
    ResolveContext,
    ServedContent,
    ServedView,
    ServeProblem,
    StaticFile,
    no_serve_options,
    no_settings,
    own_spec,
    package_url,
)
from mirrorctl.lockfile import Artifact, LegacyRecord


class PypiEcosystem:
    name = "pypi"

    def parse_profile(self, table: Mapping[str, Any], source: ProfileSource) -> ProfileSpec:
        from .spec import parse_spec

        return parse_spec(table, source)

    async def resolve(self, spec: ProfileSpec, ctx: ResolveContext) -> list[Artifact]:
        from .resolver import resolve_spec
        from .spec import PypiSpec

        return await resolve_spec(own_spec(spec, PypiSpec, self.name), ctx)

    def check_lock(self, spec: ProfileSpec, artifacts: Sequence[Artifact], *, targets: Collection[str]) -> list[str]:
        from .resolver import check_lock
        from .spec import PypiSpec

        return check_lock(own_spec(spec, PypiSpec, self.name), artifacts, targets)

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        from .fetchplan import fetch_plan

        return await fetch_plan(artifacts, ctx)

    def validate_artifact(self, artifact: Artifact) -> None:
        from .spec import validate_artifact

        validate_artifact(artifact)

    def compare_versions(self, a: str, b: str) -> int | None:
        from packaging.version import InvalidVersion, Version

        try:
            va, vb = Version(a), Version(b)
        except InvalidVersion:
            return None
        return (va > vb) - (va < vb)

    def fold_name(self, name: str) -> str:
        from packaging.utils import canonicalize_name

        return str(canonicalize_name(name))

    def purl(self, artifact: Artifact) -> str:
        return package_url("pypi", self.fold_name(artifact.name), artifact.version, artifact.filename)

    def parse_upstream(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        no_settings(table, ref)
        return None

    def parse_serve_options(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        no_serve_options(table, ref)
        return None

    def discover_upstream(self, environ: Mapping[str, str]) -> DiscoveredUpstream | None:
        from .discover import discover_upstream

        return discover_upstream(environ)

    def legacy_path(self, record: LegacyRecord) -> str:
        from .spec import legacy_path

        return legacy_path(record)

    def serve_app(self, content: ServedContent) -> ASGIApp:
        from .serve import make_app

        return make_app(content)

    def serve_problems(self, content: ServedContent) -> Sequence[ServeProblem]:
        return ()  # an index and files from the view need nothing else on the host

    def served_blobs(self, view: ServedView) -> Mapping[str, StaticFile]:
        # serve.py's `file` route: /files/<sha256>/<file> and each companion at <file><suffix>.
        found: dict[str, StaticFile] = {}
        for a in view.artifacts(self.name):
            found[f"files/{a.sha256}/{a.filename}"] = StaticFile(a.sha256, a.size, a)
            for c in a.companions:
                found[f"files/{a.sha256}/{a.filename}{c.suffix}"] = StaticFile(c.sha256, c.size, a)
        return found

    def static_layout(self, view: ServedView, base_url: str) -> Mapping[str, StaticFile] | None:
        return None  # pip and uv need the simple API's answers per project; Pulp serves it with pulp_python

    def client_config(
        self, mirror_url: str, *, endpoint: str | None = None, content: ServedContent | None = None
    ) -> ClientConfig:
        from .clientconfig import client_config

        return client_config(mirror_url, endpoint=endpoint)
