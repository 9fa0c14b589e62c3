"""The npm ecosystem: packages named with semver ranges or dist-tags resolved the way npm would (dependencies,
every declared platform's optionalDependencies, peerDependencies, ``npm:`` aliases), tarballs verified by their
SRI integrity, served as a registry (packuments at ``/npm/<name>`` and ``/npm/@scope%2fname``), and npm
configured to use only the mirror.

The artifact contract every part relies on (one Artifact per tarball)::

    ecosystem = "npm"
    name      = "@scope/name" or "name"         (npm package name, validated by spec.validate_artifact)
    version   = "1.2.3"                         (a valid semver version)
    filename  = "name-1.2.3.tgz"                (the tarball's basename: for scoped packages the scope is dropped)
    size, sha256                                (of the tarball bytes)
    targets   = ["linux-x64", ...]              (the declared platforms that need it)
    attrs     = {"integrity": "sha512-<base64>", "shasum": "<sha1 hex>", "deprecated": "<message>" (optional),
                 "dist-tags": "latest,next" (optional: the upstream's tags on this version, sorted; serve.dist_tags),
                 "roots": "eslint@^9" (optional: the profile requests it answers; serve's latest reads it),
                 "required-by": "plugin@1.2.0, other@2.0.0" (optional: packages whose edges reach it)}
    companions: none. What the registry serves for a version (dependencies, bin, os, cpu, engines, ...) is read
                from the tarball's own package/package.json, so nothing beyond the verified tarball crosses.

Modules:

    spec.py         [npm] profile table -> NpmSpec; name/version grammar checks for import
    registry.py     the upstream registry client (packuments, full and abbreviated)
    resolver.py     the closure per platform, with node-semver ranges; peers placed as npm places them
    picking.py      the version npm-pick-manifest picks for one range
    staging.py      tarballs verified while locking, committed to the store once the closure resolved
    lockcheck.py    whether a lock still fits its profile (lock --check)
    fetchplan.py    locked tarballs -> upstream URLs (from the packument's dist.tarball)
    manifest.py     package.json read out of a tarball (no extraction to disk)
    serve.py        the embedded registry over the served view
    clientconfig.py .npmrc and environment for workspaces
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
    no_settings,
    own_spec,
    package_url,
)
from mirrorctl.lockfile import Artifact, LegacyRecord


class NpmEcosystem:
    name = "npm"

    def parse_profile(self, table: Mapping[str, Any], source: ProfileSource) -> ProfileSpec:
        from .spec import parse_spec

        return parse_spec(table, source)

    async def resolve(self, spec: ProfileSpec, ctx: ResolveContext) -> list[Artifact]:
        from .resolver import resolve_spec
        from .spec import NpmSpec

        return await resolve_spec(own_spec(spec, NpmSpec, self.name), ctx)

    def check_lock(self, spec: ProfileSpec, artifacts: Sequence[Artifact], *, targets: Collection[str]) -> list[str]:
        from .resolver import check_lock
        from .spec import NpmSpec

        return check_lock(own_spec(spec, NpmSpec, self.name), artifacts, targets)

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        from .fetchplan import fetch_plan

        return await fetch_plan(artifacts, ctx)

    def validate_artifact(self, artifact: Artifact) -> None:
        from .spec import validate_artifact

        validate_artifact(artifact)

    def compare_versions(self, a: str, b: str) -> int | None:
        import nodesemver

        try:
            return int(nodesemver.compare(a, b, loose=True))
        except (ValueError, TypeError):
            return None

    def fold_name(self, name: str) -> str:
        return name  # npm names are lower case by rule: one spelling per package

    def purl(self, artifact: Artifact) -> str:
        return package_url("npm", artifact.name, artifact.version, artifact.filename)

    def parse_upstream(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        no_settings(table, ref)
        return None

    def parse_serve_options(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        from .serve import parse_serve_options

        return parse_serve_options(table, ref)

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
        return ()  # packuments and tarballs from the view need nothing else on the host

    def served_blobs(self, view: ServedView) -> Mapping[str, StaticFile]:
        from .layout import served_tarballs

        return served_tarballs(view)

    def static_layout(self, view: ServedView, base_url: str) -> Mapping[str, StaticFile] | None:
        from .layout import static_layout

        return static_layout(view, base_url)

    def client_config(
        self, mirror_url: str, *, endpoint: str | None = None, content: ServedContent | None = None
    ) -> ClientConfig:
        from .clientconfig import client_config

        return client_config(mirror_url, endpoint=endpoint)
