"""npm published into the real Pulp as a static registry in pulp_file (mirrorctl/targets/pulp/npm.py): tarballs
at the public layout ``<name>/-/<file>``, packuments under ``-/packuments/``.

Each test publishes into its own repository (random name) tarballs whose bytes are new to Pulp (a random mark
in a file of the package), so "uploaded" counts mean what they say even against a long-lived Pulp.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.ecosystems.npm.clientconfig import PACKUMENT_DIR
from mirrorctl.errors import TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import SilentProgress
from mirrorctl.targets.pulp import PulpTarget
from tests.fixtures.npm_registry import PkgSpec, build_tarball, sri_sha512
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401
from tests.fixtures.store_content import put_blob

from .test_pulp_target import session_client

pytestmark = pytest.mark.live


def npm_artifact(store: Store, spec: PkgSpec, *, deprecated: str | None = None) -> Artifact:
    """Pack ``spec`` as npm pack would, store it, return the Artifact a lock would hold for it."""
    data = build_tarball(spec)
    sha, size = put_blob(store, data)
    attrs: dict[str, str | int | bool] = {
        "integrity": sri_sha512(data),
        "shasum": hashlib.sha1(data).hexdigest(),
    }
    if deprecated:
        attrs["deprecated"] = deprecated
    return Artifact("npm", spec.name, spec.version, spec.path, size, sha, (), attrs)


@dataclass
class Made:
    store: Store
    mark: str

    def spec(self, name: str, version: str, **kw: Any) -> PkgSpec:
        return PkgSpec(name, version, files={"mark.txt": self.mark}, **kw)

    def artifact(self, name: str, version: str, *, deprecated: str | None = None, **kw: Any) -> Artifact:
        return npm_artifact(self.store, self.spec(name, version, **kw), deprecated=deprecated)


def npm_settings(service: PulpService, repo: str, name: str = "pulp") -> TargetSettings:
    return TargetSettings(
        name=name,
        kind="pulp",
        url=service.url,
        username_env="T_PULP_USER",
        password_env="T_PULP_PASSWORD",
        content_url=service.content_url,
        repositories={"npm": repo},
    )


def delete_npm_repository(service: PulpService, repo: str) -> None:
    with session_client(service) as client:
        for kind in ("distributions/file/file/", "repositories/file/file/"):
            for item in client.get(service.api + kind, params={"name": repo}).json().get("results", []):
                client.delete(service.url.rstrip("/") + item["pulp_href"])


@pytest.fixture
def made(tmp_path: Path) -> Made:
    return Made(Store(tmp_path / "store"), uuid.uuid4().hex)


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:
    name = f"mctl-npm-{uuid.uuid4().hex[:10]}"
    yield name
    delete_npm_repository(pulp_service, name)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=120) as c:
        yield c


@pytest.fixture
def target(pulp_service: PulpService, repo_name: str, client: httpx.AsyncClient) -> PulpTarget:
    environ = {"T_PULP_USER": pulp_service.username, "T_PULP_PASSWORD": pulp_service.password}
    return PulpTarget(npm_settings(pulp_service, repo_name), client, environ, ecosystems=load_ecosystems())


def get(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=30, follow_redirects=False) as c:
        return c.get(url)


def packument_url(target: PulpTarget, name: str) -> str:
    """Where npm asks for a packument (``@scope%2fname``) with the workspace config of a Pulp endpoint."""
    return target.endpoint("npm") + PACKUMENT_DIR + name.replace("/", "%2f")


def packument(target: PulpTarget, name: str) -> dict[str, Any]:
    resp = get(packument_url(target, name))
    assert resp.status_code == 200, (resp.status_code, resp.text[:200])
    return dict(json.loads(resp.content))


def repository(service: PulpService, repo: str) -> dict[str, Any] | None:
    with session_client(service) as c:
        found = c.get(service.api + "repositories/file/file/", params={"name": repo}).json()["results"]
    return dict(found[0]) if found else None


async def publish(target: PulpTarget, arts: Sequence[Artifact], store: Store) -> Any:
    return await target.publish("npm", arts, store, SilentProgress())


# ----------------------------------------------------------------------------------------------- tests


def test_npm_is_published_through_pulp_file_at_the_content_app(target: PulpTarget, repo_name: str) -> None:
    assert "npm" in target.ecosystems
    assert target.endpoint("npm") == f"{target.content_origin}/pulp/content/{repo_name}/"


async def test_first_publish_serves_full_packuments_and_a_republish_changes_nothing(
    target: PulpTarget, made: Made, pulp_service: PulpService, repo_name: str
) -> None:
    leaf1 = made.artifact("mctl-leaf", "1.0.0")
    leaf2 = made.artifact("mctl-leaf", "2.0.0-beta.1", deprecated="try 1.x")
    top = made.artifact("@mctl/top", "1.0.0", dependencies={"mctl-leaf": "^1.0.0"}, bin={"top": "bin/top.js"})
    arts = [leaf1, leaf2, top]

    first = await publish(target, arts, made.store)
    assert first.changed and first.version == 1
    assert first.uploaded == 5 and first.removed == 0  # 3 tarballs + 2 packuments

    doc = packument(target, "@mctl/top")
    assert doc["name"] == "@mctl/top" and doc["dist-tags"] == {"latest": "1.0.0"}
    v = doc["versions"]["1.0.0"]
    assert v["dependencies"] == {"mctl-leaf": "^1.0.0"} and v["bin"] == {"top": "bin/top.js"}
    assert v["dist"]["integrity"] == top.attrs["integrity"] and v["dist"]["shasum"] == top.attrs["shasum"]
    # The public registry's tarball path: where npm ci goes for a lock made against the public registry.
    assert v["dist"]["tarball"] == f"{target.endpoint('npm')}@mctl/top/-/top-1.0.0.tgz"
    # %2F as well, and the tarball is byte-identical.
    assert get(packument_url(target, "@mctl/top").replace("%2f", "%2F")).status_code == 200
    tarball = get(v["dist"]["tarball"])
    assert tarball.status_code == 200 and hashlib.sha256(tarball.content).hexdigest() == top.sha256

    leaf = packument(target, "mctl-leaf")
    assert sorted(leaf["versions"]) == ["1.0.0", "2.0.0-beta.1"]
    assert leaf["dist-tags"]["latest"] == "1.0.0"  # a prerelease is never latest while a release exists
    assert leaf["versions"]["2.0.0-beta.1"]["deprecated"] == "try 1.x"
    assert get(packument_url(target, "mctl-absent")).status_code == 404
    assert get(packument_url(target, "@mctl/absent")).status_code == 404
    assert get(f"{target.endpoint('npm')}mctl-absent/-/mctl-absent-1.0.0.tgz").status_code == 404
    plain = get(f"{target.endpoint('npm')}mctl-leaf/-/mctl-leaf-1.0.0.tgz")
    assert plain.status_code == 200 and hashlib.sha256(plain.content).hexdigest() == leaf1.sha256

    again = await publish(target, arts, made.store)
    assert not again.changed and again.version == 1 and again.uploaded == 0
    repo = repository(pulp_service, repo_name)
    assert repo and repo["latest_version_href"].endswith("/versions/1/")


async def test_adding_a_version_makes_one_new_version_and_rollback_serves_the_old_packument(
    target: PulpTarget, made: Made, pulp_service: PulpService, repo_name: str
) -> None:
    base = [made.artifact("mctl-leaf", "1.0.0"), made.artifact("@mctl/top", "1.0.0")]
    await publish(target, base, made.store)
    newer = made.artifact("mctl-leaf", "1.1.0")
    second = await publish(target, [*base, newer], made.store)
    # One tarball and the one packument that changed; the other packument is the same file.
    assert second.changed and second.version == 2 and second.uploaded == 2 and second.removed == 1
    assert sorted(packument(target, "mctl-leaf")["versions"]) == ["1.0.0", "1.1.0"]
    assert packument(target, "mctl-leaf")["dist-tags"]["latest"] == "1.1.0"

    history = await target.history("npm")
    assert [(h.version, h.served) for h in history] == [(2, True), (1, False), (0, False)]
    assert history[0].artifacts == 5 and history[1].artifacts == 4  # files: tarballs and packuments

    back = await target.rollback("npm", 1)
    assert back.version == 1 and back.served
    assert sorted(packument(target, "mctl-leaf")["versions"]) == ["1.0.0"]
    assert [h.version for h in await target.history("npm") if h.served] == [1]
    # Rolling forward reuses version 2's publication: no new publication is made.
    with session_client(pulp_service) as c:
        repo = repository(pulp_service, repo_name)
        assert repo
        params = {"repository": repo["pulp_href"]}
        before = c.get(pulp_service.api + "publications/file/file/", params=params).json()["count"]
        await target.rollback("npm", 2)
        after = c.get(pulp_service.api + "publications/file/file/", params=params).json()["count"]
    assert before == after
    assert sorted(packument(target, "mctl-leaf")["versions"]) == ["1.0.0", "1.1.0"]


async def test_a_tarball_that_disagrees_with_the_lock_is_refused_before_pulp_is_touched(
    target: PulpTarget, made: Made, pulp_service: PulpService, repo_name: str
) -> None:
    good = made.artifact("mctl-leaf", "1.0.0")
    liar = made.artifact("mctl-other", "1.0.0")
    renamed = Artifact(
        "npm", "mctl-third", "1.0.0", "mctl-third/-/mctl-third-1.0.0.tgz", liar.size, liar.sha256, (), liar.attrs
    )
    with pytest.raises(TargetError) as err:
        await publish(target, [good, renamed], made.store)
    assert "npm mctl-third 1.0.0 (mctl-third-1.0.0.tgz)" in err.value.message
    assert "mctl-other@1.0.0" in err.value.message
    assert repository(pulp_service, repo_name) is None  # nothing created, nothing uploaded


async def test_a_missing_blob_is_named_and_nothing_is_created(
    target: PulpTarget, made: Made, pulp_service: PulpService, repo_name: str
) -> None:
    art = made.artifact("mctl-leaf", "1.0.0")
    made.store.blob_path(art.sha256).unlink()
    with pytest.raises(TargetError) as err:
        await publish(target, [art], made.store)
    assert f"blob {art.sha256} is not in the store" in err.value.message
    assert repository(pulp_service, repo_name) is None


async def test_publish_of_fifty_tarballs_then_one_more(target: PulpTarget, made: Made) -> None:
    """Timing for the report: ~50 tarballs in 25 packages, then one added."""
    arts = [made.artifact(f"mctl-bulk-{i:02d}", f"1.{j}.0") for i in range(25) for j in range(2)]
    started = time.monotonic()
    first = await publish(target, arts, made.store)
    first_s = time.monotonic() - started
    assert first.version == 1 and first.uploaded == 75
    started = time.monotonic()
    again = await publish(target, arts, made.store)
    again_s = time.monotonic() - started
    assert not again.changed
    started = time.monotonic()
    more = await publish(target, [*arts, made.artifact("mctl-bulk-00", "1.2.0")], made.store)
    more_s = time.monotonic() - started
    assert more.version == 2 and more.uploaded == 2
    print(f"\nnpm publish to Pulp: 50 tarballs {first_s:.1f}s, unchanged {again_s:.1f}s, one more {more_s:.1f}s")
