"""apt published into the real Pulp with pulp_deb (mirrorctl/targets/pulp/deb.py): structured, signed.

Each test publishes into its own repository (random name) .debs whose bytes are new to Pulp (a random mark in
the payload), built with dpkg-deb and put into a Store as an import leaves them. The signing service is the one
`bash scripts/services.sh start` (or `... signing`) registers; its name and keyring come from .services/env.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from debian import deb822

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import SilentProgress
from mirrorctl.targets.base import PublishResult
from mirrorctl.targets.pulp import PulpTarget
from tests.fixtures.debs import build_deb
from tests.fixtures.services import PulpService, pulp_service, unavailable  # noqa: F401
from tests.fixtures.store_content import publish_view, put_blob

from .test_pulp_target import session_client

ECOSYSTEMS = load_ecosystems()  # the installed adapters, as the runtime loads them

pytestmark = pytest.mark.live

SUITE = "bookworm"


@dataclass
class Debs:
    """Builds marked .debs into a store; ``artifact`` returns the lock Artifact shaped per the apt contract."""

    store: Store
    build: Path
    mark: str

    def artifact(
        self,
        name: str,
        version: str,
        arch: str = "amd64",
        *,
        component: str = "main",
        targets: Sequence[str] = ("amd64",),
        **control: Any,
    ) -> Artifact:
        deb = build_deb(self.build, name, version, arch, payload=f"{name} {version} {self.mark}\n".encode(), **control)
        sha, size = put_blob(self.store, deb.path.read_bytes())
        attrs: dict[str, str | int | bool] = {
            "architecture": arch,
            "suite": SUITE,
            "component": component,
            "pool": deb.pool_path(component),
        }
        return Artifact("apt", name, version, str(attrs["pool"]), size, sha, tuple(targets), attrs)


def signing_service_name(service: PulpService) -> str:
    name = service.env.get("PULP_APT_SIGNING_SERVICE")
    if not name:
        unavailable("no PULP_APT_SIGNING_SERVICE in .services/env: run `bash scripts/services.sh signing`")
    assert name
    return name


def deb_settings(service: PulpService, repo: str, signing: str | None) -> TargetSettings:
    return TargetSettings(
        name="pulp",
        kind="pulp",
        url=service.url,
        username_env="T_PULP_USER",
        password_env="T_PULP_PASSWORD",
        content_url=service.content_url,
        repositories={"apt": repo},
        options={"apt-signing-service": signing} if signing is not None else {},
    )


def environ(service: PulpService) -> dict[str, str]:
    return {"T_PULP_USER": service.username, "T_PULP_PASSWORD": service.password}


def delete_apt_repository(service: PulpService, repo: str) -> None:
    with session_client(service) as client:
        for kind in ("distributions/deb/apt/", "repositories/deb/apt/"):
            for item in client.get(service.api + kind, params={"name": repo}).json().get("results", []):
                client.delete(service.url.rstrip("/") + item["pulp_href"])


def api_get(service: PulpService, href: str, **params: Any) -> Any:
    with session_client(service) as c:
        url = (
            href
            if href.startswith("http")
            else (service.url.rstrip("/") + href if href.startswith("/") else service.api + href)
        )
        resp = c.get(url, params=params)
        resp.raise_for_status()
        return resp.json()


def content_get(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=30, follow_redirects=True) as c:
        return c.get(url)


@pytest.fixture
def debs(tmp_path: Path) -> Debs:
    return Debs(Store(tmp_path / "store"), tmp_path / "build", uuid.uuid4().hex)


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:
    name = f"mctl-apt-{uuid.uuid4().hex[:10]}"
    yield name
    delete_apt_repository(pulp_service, name)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=120) as c:
        yield c


@pytest.fixture
def target(pulp_service: PulpService, repo_name: str, client: httpx.AsyncClient) -> PulpTarget:
    settings = deb_settings(pulp_service, repo_name, signing_service_name(pulp_service))
    return PulpTarget(settings, client, environ(pulp_service), ecosystems=ECOSYSTEMS)


async def publish(target: PulpTarget, arts: Sequence[Artifact], store: Store) -> PublishResult:
    publish_view(store, arts)
    return await target.publish("apt", arts, store, SilentProgress())


def repository(service: PulpService, repo: str) -> dict[str, Any] | None:
    found = api_get(service, "repositories/deb/apt/", name=repo)["results"]
    return dict(found[0]) if found else None


def packages_of(service: PulpService, version_href: str) -> set[tuple[str, str, str]]:
    params = {"repository_version": version_href, "fields": "package,version,sha256", "limit": 1000}
    return {
        (u["package"], u["version"], u["sha256"])
        for u in api_get(service, "content/deb/packages/", **params)["results"]
    }


def served_packages(target: PulpTarget, component: str, arch: str) -> dict[str, deb822.Packages]:
    resp = content_get(f"{target.endpoint('apt')}dists/{SUITE}/{component}/binary-{arch}/Packages")
    assert resp.status_code == 200, (resp.status_code, resp.text[:200])
    return {p["Package"]: p for p in deb822.Packages.iter_paragraphs(resp.text, use_apt_pkg=False)}


def dearmor(armored: str) -> bytes:
    return subprocess.run(["gpg", "--dearmor"], input=armored.encode(), capture_output=True, check=True).stdout


def gpgv(keyring: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpgv", "--keyring", str(keyring), *map(str, files)], capture_output=True, text=True)


# ----------------------------------------------------------------------------------------------- tests


async def test_publish_is_structured_signed_and_a_republish_changes_nothing(
    target: PulpTarget, debs: Debs, pulp_service: PulpService, repo_name: str, tmp_path: Path
) -> None:
    arts = [
        debs.artifact("mctl-hello", "1.0-1", depends="mctl-libhello (>= 2.0)"),
        debs.artifact("mctl-libhello", "2:2.1-3", source="mctl-hello-src"),
        debs.artifact("mctl-doc", "0.5", "all", targets=("amd64", "arm64")),
        debs.artifact("mctl-extra", "1.0", "arm64", component="contrib", targets=("arm64",)),
    ]
    first = await publish(target, arts, debs.store)
    assert (first.changed, first.uploaded, first.present, first.removed) == (True, 4, 0, 0)
    assert first.version == 1 and first.endpoint == target.endpoint("apt")

    repo = repository(pulp_service, repo_name)
    assert repo is not None and repo["latest_version_href"].endswith("/versions/1/")
    assert packages_of(pulp_service, repo["latest_version_href"]) == {(a.name, a.version, a.sha256) for a in arts}

    # The distribution serves a structured, signed publication of exactly that version.
    dist = api_get(pulp_service, "distributions/deb/apt/", name=repo_name)["results"][0]
    pub = api_get(pulp_service, dist["publication"])
    service = api_get(pulp_service, "signing-services/", name=signing_service_name(pulp_service))["results"][0]
    assert pub["repository_version"] == repo["latest_version_href"]
    assert (pub["structured"], pub["simple"], pub["signing_service"]) == (True, False, service["pulp_href"])

    # What apt reads: a signed InRelease naming both components and architectures, and Packages per arch.
    base = target.endpoint("apt") + f"dists/{SUITE}/"
    inrelease, release, detached = (content_get(base + n) for n in ("InRelease", "Release", "Release.gpg"))
    assert inrelease.status_code == release.status_code == detached.status_code == 200
    keyring = tmp_path / "pulp.gpg"
    keyring.write_bytes(dearmor(service["public_key"]))
    (tmp_path / "InRelease").write_bytes(inrelease.content)
    (tmp_path / "Release").write_bytes(release.content)
    (tmp_path / "Release.gpg").write_bytes(detached.content)
    assert gpgv(keyring, tmp_path / "InRelease").returncode == 0
    assert gpgv(keyring, tmp_path / "Release.gpg", tmp_path / "Release").returncode == 0
    fields = deb822.Release(release.text)
    assert set(fields["Components"].split()) == {"main", "contrib"}
    assert set(fields["Architectures"].split()) == {"amd64", "arm64", "all"}
    main_amd64 = served_packages(target, "main", "amd64")
    assert set(main_amd64) == {"mctl-hello", "mctl-libhello"}
    # pulp_deb lists Architecture: all packages in binary-all only; apt reads it as the Release lists "all".
    assert set(served_packages(target, "main", "all")) == {"mctl-doc"}
    assert main_amd64["mctl-libhello"]["Version"] == "2:2.1-3"
    assert main_amd64["mctl-hello"]["SHA256"] == arts[0].sha256
    assert set(served_packages(target, "contrib", "arm64")) == {"mctl-extra"}
    assert "mctl-extra" not in served_packages(target, "main", "arm64")
    pool = content_get(target.endpoint("apt") + main_amd64["mctl-hello"]["Filename"])
    assert pool.status_code == 200 and pool.content == debs.store.blob_path(arts[0].sha256).read_bytes()

    # The same view again: nothing uploaded, no new version, the same publication served.
    again = await publish(target, arts, debs.store)
    assert (again.changed, again.uploaded, again.version) == (False, 0, 1)
    repo2 = repository(pulp_service, repo_name)
    assert repo2 is not None and repo2["latest_version_href"] == repo["latest_version_href"]
    assert (
        api_get(pulp_service, "distributions/deb/apt/", name=repo_name)["results"][0]["publication"]
        == dist["publication"]
    )


async def test_a_changed_view_makes_exactly_one_new_version(
    target: PulpTarget, debs: Debs, pulp_service: PulpService, repo_name: str
) -> None:
    keep = debs.artifact("mctl-keep", "1.0")
    old = debs.artifact("mctl-old", "1.0", component="contrib")
    await publish(target, [keep, old], debs.store)
    new = debs.artifact("mctl-new", "3.0", "arm64", targets=("arm64",))
    result = await publish(target, [keep, new], debs.store)
    assert (result.changed, result.uploaded, result.present, result.removed, result.version) == (True, 1, 1, 1, 2)

    repo = repository(pulp_service, repo_name)
    assert repo is not None and repo["latest_version_href"].endswith("/versions/2/")
    assert packages_of(pulp_service, repo["latest_version_href"]) == {
        (a.name, a.version, a.sha256) for a in (keep, new)
    }
    # The placement followed: contrib is gone from the Release, arm64 came in, the old package is not served.
    release = deb822.Release(content_get(target.endpoint("apt") + f"dists/{SUITE}/Release").text)
    assert release["Components"].split() == ["main"]
    assert set(release["Architectures"].split()) == {"amd64", "arm64", "all"}
    assert set(served_packages(target, "main", "arm64")) == {"mctl-new"}
    assert set(served_packages(target, "main", "amd64")) == {"mctl-keep"}

    history = await target.history("apt")
    assert [v.version for v in history] == [2, 1, 0] and history[0].served


async def test_a_missing_signing_service_is_refused_naming_it_and_nothing_is_created(
    pulp_service: PulpService, debs: Debs, repo_name: str, client: httpx.AsyncClient
) -> None:
    settings = deb_settings(pulp_service, repo_name, "mctl-no-such-service")
    target = PulpTarget(settings, client, environ(pulp_service), ecosystems=ECOSYSTEMS)
    art = debs.artifact("mctl-refused", "1.0")
    with pytest.raises(TargetError) as err:
        await publish(target, [art], debs.store)
    assert "Pulp has no signing service 'mctl-no-such-service'" in err.value.message
    assert "targets.pulp.apt-signing-service" in err.value.message
    assert err.value.hint and "pulpcore-manager add-signing-service mctl-no-such-service" in err.value.hint
    assert "--class deb:AptReleaseSigningService" in err.value.hint
    assert repository(pulp_service, repo_name) is None
    assert api_get(pulp_service, "content/deb/packages/", sha256=art.sha256)["count"] == 0

    unset = PulpTarget(
        deb_settings(pulp_service, repo_name, None), client, environ(pulp_service), ecosystems=ECOSYSTEMS
    )
    with pytest.raises(TargetError, match=r"targets\.pulp\.apt-signing-service is not set"):
        await publish(unset, [art], debs.store)
    assert repository(pulp_service, repo_name) is None


async def test_an_artifact_without_the_contract_attrs_is_refused_before_pulp_is_touched(
    target: PulpTarget, debs: Debs, pulp_service: PulpService, repo_name: str
) -> None:
    art = debs.artifact("mctl-noattrs", "1.0")
    bad = Artifact(
        "apt",
        art.name,
        art.version,
        art.path,
        art.size,
        art.sha256,
        art.targets,
        {"architecture": "amd64", "suite": SUITE},
    )
    with pytest.raises(TargetError, match=r"mctl-noattrs 1\.0 .*attrs\.component"):
        await publish(target, [bad], debs.store)
    assert repository(pulp_service, repo_name) is None


async def test_targets_check_names_a_missing_signing_service(
    pulp_service: PulpService, repo_name: str, client: httpx.AsyncClient
) -> None:
    good = PulpTarget(
        deb_settings(pulp_service, repo_name, signing_service_name(pulp_service)),
        client,
        environ(pulp_service),
        ecosystems=ECOSYSTEMS,
    )
    assert (await good.check()).ok
    bad = PulpTarget(
        deb_settings(pulp_service, repo_name, "mctl-no-such-service"),
        client,
        environ(pulp_service),
        ecosystems=ECOSYSTEMS,
    )
    found = await bad.check()
    assert not found.ok
    assert any("no signing service 'mctl-no-such-service'" in p for p in found.problems), found.problems
