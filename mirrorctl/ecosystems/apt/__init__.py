"""apt (Debian) ecosystem, registered as entry point ``apt``.

The adapter (``AptEcosystem``, entry point ``apt`` in ``mirrorctl.ecosystems.v1``):

* profile ``[apt]``: suite (or several ``suites`` with ``priorities``, resolved together as apt does), components,
  architectures, packages with optional version pins (``curl=7.88.1-10``),
  an opt-in ``essential`` flag (the suite's Essential/required set, for base images), ``recommends``;
* lock: fetch each suite's ``dists/<suite>/InRelease`` from its archive, verify it with that archive's keyring
  (:mod:`.release`, :mod:`.settings`), fetch each
  ``Packages`` index, check it against the Release SHA256 lines, then resolve the closure per architecture
  (:mod:`.resolve`);
* snapshot: each .deb checked against the index sha256;
* serve / publish: a repository signed with the internal archive key (InRelease, Packages per component and
  architecture, by-hash, pool), published into Pulp with pulp_deb;
* workspace-config: a deb822 ``.sources`` file with ``Signed-By`` pointing at the exported internal keyring.

The lock artifact (the contract between lock, snapshot, serve and publish)::

    ecosystem = "apt"
    name = "curl"                        # Package
    version = "7.88.1-10+deb12u5"        # Version, exactly as the index has it (epoch included)
    filename = "curl_7.88.1-10+deb12u5_amd64.deb"   # basename of the index's Filename
    size, sha256                          # Size and SHA256 of the index stanza (checked again at snapshot)
    targets = ["amd64"]                   # the profile architectures whose closure needs it
    [artifacts.attrs]
    architecture = "amd64"               # the package's own Architecture (``all`` for arch-independent ones)
    suite = "bookworm"                   # the upstream suite (served under the same name)
    component = "main"
    pool = "pool/main/c/curl/curl_7.88.1-10+deb12u5_amd64.deb"   # the index's Filename, served at this path
    archive = "security"                 # only from [upstreams.apt.archives.<name>]: fetched from that archive
    suites = "bookworm bookworm-updates bookworm-security"   # only with several suites: resolved together, and
                                         # each is served (an empty one too) and named in the generated sources

The served Packages stanzas are rebuilt from each .deb's own control file (as dpkg-scanpackages and pulp_deb
do), so nothing but the verified .deb has to cross the gap. The inside's archive key lives under
``ServedContent.keys_dir() / "apt"``.
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
    own_spec,
    package_url,
)
from mirrorctl.lockfile import Artifact, LegacyRecord


class AptEcosystem:
    """Modules: spec.py (``[apt]`` table, grammar checks), release.py (InRelease, index hashes), resolve.py (the
    closure), lock.py (lock and check_lock), fetchplan.py (pool URLs), discover.py (the machine's apt sources),
    settings.py (its mirrorctl.toml keys), serve.py and clientconfig.py (the served repository and the
    workspace's sources), commands.py (``mirrorctl archive-key``)."""

    name = "apt"

    def parse_profile(self, table: Mapping[str, Any], source: ProfileSource) -> ProfileSpec:
        from .spec import parse_spec

        return parse_spec(table, source)

    async def resolve(self, spec: ProfileSpec, ctx: ResolveContext) -> list[Artifact]:
        from .lock import resolve_spec
        from .spec import AptSpec

        return await resolve_spec(own_spec(spec, AptSpec, self.name), ctx)

    def check_lock(self, spec: ProfileSpec, artifacts: Sequence[Artifact], *, targets: Collection[str]) -> list[str]:
        from .lock import check_lock
        from .spec import AptSpec

        return check_lock(own_spec(spec, AptSpec, self.name), artifacts, targets)

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        from .fetchplan import fetch_plan

        return await fetch_plan(artifacts, ctx)

    def validate_artifact(self, artifact: Artifact) -> None:
        from .spec import validate_artifact

        validate_artifact(artifact)

    def compare_versions(self, a: str, b: str) -> int | None:
        # python-debian's own comparison (no apt_pkg needed): the order dpkg and apt use for upgrades, so
        # ``1:2.0`` > ``3.0`` and ``1.0~rc1`` < ``1.0``.
        from debian.debian_support import Version

        try:
            va, vb = Version(a), Version(b)
        except ValueError:
            return None
        return (va > vb) - (va < vb)

    def fold_name(self, name: str) -> str:
        return name  # Debian package names are lower case by policy: nothing to fold

    def purl(self, artifact: Artifact) -> str:
        return package_url("deb", artifact.name, artifact.version, artifact.filename)

    def parse_upstream(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        from .settings import parse_upstream

        return parse_upstream(table, ref)

    def parse_serve_options(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        from .settings import release_options

        return release_options(table, ref)

    def discover_upstream(self, environ: Mapping[str, str]) -> DiscoveredUpstream | None:
        from .discover import discover_upstream

        return discover_upstream(environ)

    def legacy_path(self, record: LegacyRecord) -> str:
        from .spec import legacy_path

        return legacy_path(record)

    def serve_app(self, content: ServedContent) -> ASGIApp:
        from .serve import serve_app

        return serve_app(content)

    def serve_problems(self, content: ServedContent) -> Sequence[ServeProblem]:
        from .health import serve_problems

        return serve_problems(content)

    def served_blobs(self, view: ServedView) -> Mapping[str, StaticFile]:
        from .repo import pool_files

        return pool_files(view)

    def static_layout(self, view: ServedView, base_url: str) -> Mapping[str, StaticFile] | None:
        # A signed repository needs the inside's archive key, which a view does not carry; Pulp publishes apt
        # with pulp_deb, which signs with its own signing service.
        return None

    def client_config(
        self, mirror_url: str, *, endpoint: str | None = None, content: ServedContent | None = None
    ) -> ClientConfig:
        from .clientconfig import client_config

        return client_config(mirror_url, endpoint=endpoint, content=content)
