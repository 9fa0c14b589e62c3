"""apt into Pulp with pulp_deb: the view's .debs placed by suite and component, published structured and signed.

What a repository version holds (pulp_deb 3.11, read in its serializers and publishing task):

* one ``Package`` per .deb (``content/deb/packages/``, created by an upload task; the same bytes are one unit
  however often they are published, so each .deb is uploaded once and found again by sha256);
* the units that *place* the packages, without which a structured publication leaves them out:
  a ``ReleaseComponent`` per (suite, component), a ``ReleaseArchitecture`` per (suite, architecture) (the
  Release's ``Architectures``; never ``all``, which pulp_deb always adds), and a ``PackageReleaseComponent``
  per (package, suite/component). They are content units too, created once and shared between versions.

The publish algorithm stays PulpTarget's (one ``modify`` makes the new version holding exactly the packages
*and* their placement; one PATCH switches the distribution): this plugin adds the placement through
:class:`~.plugins.StructuredPulpPlugin`. ``serve`` makes a publication with ``structured=True``,
``simple=False`` and the configured ``signing_service`` (``targets.<name>.apt-signing-service``, a pulp_deb
``AptReleaseSigningService``): Pulp writes ``dists/<suite>/Release``, has the service write ``InRelease`` and
``Release.gpg``, and serves ``dists/<suite>/<component>/binary-<arch>/Packages`` (by the artifacts' attrs)
plus the pool. Pulp builds the Packages stanzas from each .deb's own control file, like ``mirrorctl serve``.

The key workspaces trust is the signing service's public key, which the Pulp API returns
(:meth:`DebPlugin.public_key`); ``mirrorctl workspace-config --target`` writes it beside the apt sources.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirrorctl.config import ConfigRef, TargetSettings
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact

from .api import PulpApi
from .plugins import PublishFile

CONTENT_PATH_PREFIX = "/pulp/content/"  # Pulp's default CONTENT_PATH_PREFIX
LOOKUPS_AT_ONCE = 4  # concurrent lookups and small create tasks: the API and the workers are few
# Where `mirrorctl workspace-config --target` writes the signing service's key (relative to --out): the file the
# apt client config's Signed-By names (ecosystems/apt/clientconfig.py KEYRING; a test keeps them equal), written
# after the client config, so for a Pulp target it holds Pulp's key rather than the inside's serving key.
WORKSPACE_KEYRING = "mirrorctl-archive-keyring.asc"
ADD_SERVICE_HINT = (
    "register it on the Pulp host: pulpcore-manager add-signing-service {name} /path/to/apt-sign.sh <key "
    "fingerprint> --class deb:AptReleaseSigningService --home <GNUPGHOME with the key> (see "
    "docs/targets-pulp-apt.md), or set targets.{target}.apt-signing-service to an existing one"
)

Key = tuple[str, str]


def package_key(package: str, version: str, architecture: str) -> str:
    # pulp_deb's Package.name(): Package_Version_Architecture, the version exactly as the control file has it
    # (epoch included), so the artifact side and the unit side agree without pool paths.
    return f"{package}_{version}_{architecture}.deb"


def _attr(artifact: Artifact, name: str) -> str:
    value = artifact.attrs.get(name)
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise TargetError(
            f"apt {artifact.name} {artifact.version} ({artifact.filename}): the lock artifact has no valid "
            f"attrs.{name} ({value!r})",
            hint="lock the apt profile again with this mirrorctl version; every apt artifact names its "
            "architecture, suite and component",
        )
    return value


def placement_keys(files: Sequence[PublishFile]) -> set[Key]:
    """The natural keys of the placement units these files need (see the module docstring)."""
    keys: set[Key] = set()
    for f in files:
        assert f.artifact is not None
        a = f.artifact
        suite, component, arch = _attr(a, "suite"), _attr(a, "component"), _attr(a, "architecture")
        keys.add(("component", f"{suite} {component}"))
        keys.add(("link", f"{suite} {component} {f.sha256}"))
        for target in {arch, *a.targets}:
            if target != "all":  # pulp_deb refuses a ReleaseArchitecture "all" and always publishes it
                keys.add(("architecture", f"{suite} {target}"))
    return keys


SIGNING_SERVICE_KEY = "apt-signing-service"  # in [targets.<name>]


class DebStrategy:
    """The entry point (``DEB``): offered only where the target names a repository for the ecosystem (it needs
    the target's signing service); ``targets.<name>.apt-signing-service`` is checked here, naming file and key."""

    settings_keys = frozenset({SIGNING_SERVICE_KEY})

    def __call__(self, target: TargetSettings, ref: ConfigRef, ecosystem: Ecosystem) -> DebPlugin | None:
        value = target.options.get(SIGNING_SERVICE_KEY)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ref.error(SIGNING_SERVICE_KEY, f"must be a non-empty name, got {value!r}")
        if ecosystem.name not in target.repositories:
            return None
        return DebPlugin(target.name, value, ecosystem=ecosystem.name)


DEB = DebStrategy()


class DebPlugin:
    """pulp_deb: packages plus their placement, served from a structured, signed publication."""

    ecosystem = "apt"
    component = "deb"
    repositories = "repositories/deb/apt/"
    distributions = "distributions/deb/apt/"
    content = "content/deb/packages/"
    publications = "publications/deb/apt/"
    serves_publications = True
    components = "content/deb/release_components/"
    architectures = "content/deb/release_architectures/"
    links = "content/deb/package_release_components/"

    def __init__(self, target: str, signing_service: str | None, *, ecosystem: str = "apt") -> None:
        self.ecosystem = ecosystem
        self.target = target
        self.signing_service = signing_service
        self._service: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------ PulpPlugin: packages

    def unit_key(self, unit: Mapping[str, Any]) -> Key:
        return package_key(str(unit["package"]), str(unit["version"]), str(unit["architecture"])), str(unit["sha256"])

    def list_fields(self) -> str:
        return "pulp_href,package,version,architecture,sha256"

    def distribution_fields(self) -> Mapping[str, Any]:
        return {}

    async def files(self, artifacts: Sequence[Artifact], store: Store, endpoint: str) -> list[PublishFile]:
        out = []
        for a in artifacts:
            _attr(a, "suite"), _attr(a, "component")
            out.append(PublishFile(package_key(a.name, a.version, _attr(a, "architecture")), a.sha256, a.size, a))
        return out

    async def find_existing(self, api: PulpApi, files: Sequence[PublishFile]) -> dict[str, str]:
        # pulp_deb filters sha256 exactly only: one small lookup per file, a few at a time.
        found: dict[str, str] = {}
        gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def lookup(f: PublishFile) -> None:
            async with gate:
                params = {"sha256": f.sha256, "fields": self.list_fields()}
                async for unit in api.paged(self.content, what=f"looking up {f.relative_path}", params=params):
                    if self.unit_key(unit) == f.key:
                        found[f.sha256] = str(unit["pulp_href"])

        await asyncio.gather(*(lookup(f) for f in {f.sha256: f for f in files}.values()))
        return found

    async def upload(self, api: PulpApi, file: PublishFile, source: Path | bytes) -> str:
        # An upload task without a repository: only the Package is created (pulp_deb reads the control file);
        # its placement is added with the version. Existing bytes come back as the existing unit.
        what = f"uploading {file.relative_path}"
        if isinstance(source, bytes) or file.artifact is None:
            raise TargetError(f"targets.{api.name}: {what}: pulp_deb takes only .debs from the store")
        with source.open("rb") as fh:
            resp = await api.request(
                "POST",
                self.content,
                what=what,
                files={"file": (file.artifact.filename, fh, "application/vnd.debian.binary-package")},
                ok=(202,),
            )
        task = await api.wait_task(str(resp.json()["task"]), what=what)
        href = next((h for h in task.get("created_resources", []) if "/content/deb/packages/" in h), None)
        if href is None:
            raise TargetError(f"targets.{api.name}: {what}: Pulp's task created no package")
        unit = await api.get_json(href, what=what, params={"fields": self.list_fields()})
        if self.unit_key(unit) != file.key:
            raise TargetError(
                f"targets.{api.name}: {what}: Pulp read {self.unit_key(unit)[0]} with sha256 {unit.get('sha256')}, "
                f"the lock says {file.relative_path} with sha256 {file.sha256}",
                hint="the .deb and the lock disagree; run `mirrorctl verify` and publish again",
            )
        return href

    # ---------------------------------------------------------------------- StructuredPulpPlugin: placement

    async def prepare(self, api: PulpApi) -> None:
        await self._signing(api)

    def structure_keys(self, files: Sequence[PublishFile]) -> set[Key]:
        return placement_keys(files)

    async def version_structure(self, api: PulpApi, version_href: str, units: Mapping[Key, str]) -> dict[Key, str]:
        """Natural key -> href of each placement unit ``version_href`` holds (``units``: its packages)."""
        sha_of = {href: key[1] for key, href in units.items()}
        held: dict[Key, str] = {}
        comps: dict[str, str] = {}  # component href -> "suite component"
        params = {"repository_version": version_href}
        async for c in api.paged(self.components, what=f"listing components of {version_href}", params=params):
            comps[str(c["pulp_href"])] = f"{c['distribution']} {c['component']}"
            held[("component", comps[str(c["pulp_href"])])] = str(c["pulp_href"])
        async for r in api.paged(self.architectures, what=f"listing architectures of {version_href}", params=params):
            held[("architecture", f"{r['distribution']} {r['architecture']}")] = str(r["pulp_href"])
        async for link in api.paged(self.links, what=f"listing package placement of {version_href}", params=params):
            comp, sha = comps.get(str(link["release_component"])), sha_of.get(str(link["package"]))
            # A link to a package or component outside the version never matches a wanted key: it is removed.
            held[("link", f"{comp} {sha}" if comp and sha else f"stray {link['pulp_href']}")] = str(link["pulp_href"])
        return held

    async def ensure_structure(
        self, api: PulpApi, files: Mapping[Key, PublishFile], units: Mapping[Key, str], held: Mapping[Key, str]
    ) -> dict[Key, str]:
        """Natural key -> href of every placement unit the files need: those ``held`` already, the others
        found in Pulp or created (content only; no repository changes here)."""
        wanted = placement_keys(list(files.values()))
        out = {k: h for k, h in held.items() if k in wanted}
        gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def unit(endpoint: str, body: dict[str, str], what: str) -> str:
            async with gate:
                found = await api.find_one(endpoint, what=f"finding {what}", **body)
                if found is not None:
                    return str(found["pulp_href"])
                # Components and architectures are created by a task; a package-component link synchronously.
                made = await api.post_json(endpoint, body, what=f"creating {what}")
                if "task" in made:
                    task = await api.wait_task(str(made["task"]), what=f"creating {what}")
                    return str(task["created_resources"][0])
                return str(made["pulp_href"])

        async def component(key: Key) -> None:
            suite, comp = key[1].split(" ")
            out[key] = await unit(self.components, {"distribution": suite, "component": comp}, f"component {key[1]}")

        async def architecture(key: Key) -> None:
            suite, arch = key[1].split(" ")
            body = {"distribution": suite, "architecture": arch}
            out[key] = await unit(self.architectures, body, f"architecture {key[1]}")

        missing = [k for k in sorted(wanted) if k not in out]
        await asyncio.gather(*(component(k) for k in missing if k[0] == "component"))
        await asyncio.gather(*(architecture(k) for k in missing if k[0] == "architecture"))
        href_of_sha = {key[1]: href for key, href in units.items()}

        async def link(key: Key) -> None:
            suite, comp, sha = key[1].split(" ")
            body = {"package": href_of_sha[sha], "release_component": out[("component", f"{suite} {comp}")]}
            out[key] = await unit(self.links, body, f"placement of {sha[:12]} in {suite}/{comp}")

        await asyncio.gather(*(link(k) for k in missing if k[0] == "link"))
        return out

    # --------------------------------------------------------------------------------------- serving

    async def _signing(self, api: PulpApi) -> dict[str, Any]:
        if self._service is not None:
            return self._service
        name = self.signing_service
        if not name:
            raise TargetError(
                f"targets.{self.target}.apt-signing-service is not set: Pulp would publish apt content unsigned",
                hint=f'add apt-signing-service = "mirrorctl-archive" (a pulp_deb signing service) under '
                f"[targets.{self.target}]; " + ADD_SERVICE_HINT.format(name="mirrorctl-archive", target=self.target),
            )
        found = await api.find_one("signing-services/", what=f"finding signing service {name!r}", name=name)
        if found is None:
            raise TargetError(
                f"targets.{self.target}.apt-signing-service: Pulp has no signing service {name!r}; "
                "nothing was published",
                hint=ADD_SERVICE_HINT.format(name=name, target=self.target),
            )
        self._service = dict(found)
        return self._service

    async def public_key(self, api: PulpApi) -> str:
        """The armored public key of the signing service: what apt's Signed-By must hold."""
        key = str((await self._signing(api)).get("public_key") or "")
        if "BEGIN PGP PUBLIC KEY BLOCK" not in key:
            raise TargetError(
                f"targets.{self.target}: signing service {self.signing_service!r} has no public key in Pulp",
                hint="register it again with pulpcore-manager add-signing-service",
            )
        return key if key.endswith("\n") else key + "\n"

    async def trust_files(self, api: PulpApi) -> Mapping[str, str]:
        """What a workspace must hold to trust this distribution: the key at WORKSPACE_KEYRING."""
        return {WORKSPACE_KEYRING: await self.public_key(api)}

    async def serve(self, api: PulpApi, version_href: str) -> dict[str, Any]:
        service = str((await self._signing(api))["pulp_href"])
        pub = await api.find_one(
            self.publications,
            what=f"finding the publication of {version_href}",
            repository_version=version_href,
            ordering="-pulp_created",
        )
        if (
            pub is not None
            and pub.get("complete", True)
            and pub.get("structured")
            and not pub.get("simple")
            and pub.get("signing_service") == service
        ):
            href = str(pub["pulp_href"])
        else:
            body = {"repository_version": version_href, "structured": True, "simple": False, "signing_service": service}
            task = await api.run_task("POST", self.publications, body, what=f"publishing {version_href} (signed)")
            href = next(h for h in task.get("created_resources", []) if "/publications/" in h)
        return {"repository": None, "publication": href}

    async def served_version(self, api: PulpApi, distribution: Mapping[str, Any]) -> str | None:
        if distribution.get("repository") or not distribution.get("publication"):
            return None
        pub = await api.get_json(str(distribution["publication"]), what="reading the served publication")
        service = (await self._signing(api))["pulp_href"]
        if not pub.get("structured") or pub.get("simple") or pub.get("signing_service") != service:
            return None  # served, but not as this target publishes (unsigned, or another key): publish anew
        href = pub.get("repository_version")
        return str(href) if href else None

    def endpoint(self, api_origin: str, content_origin: str, base_path: str) -> str:
        # apt's URIs: the distribution's root; apt appends dists/<suite>/... and the pool paths itself.
        return f"{content_origin.rstrip('/')}{CONTENT_PATH_PREFIX}{base_path}/"
