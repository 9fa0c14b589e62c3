"""PulpTarget against the real Pulp that scripts/services.sh runs: one version per publish, one switch.

Every test publishes into its own repository (random name) with wheels whose bytes are new to Pulp (a random
mark in the code), so that "uploaded" counts mean what they say even against a long-lived Pulp.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import SilentProgress
from mirrorctl.targets.base import PublishTarget
from mirrorctl.targets.pulp import PulpTarget
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401
from tests.fixtures.store_content import wheel_artifact
from tests.fixtures.wheels import Dist

ECOSYSTEMS = load_ecosystems()  # the installed adapters, as the runtime loads them

pytestmark = pytest.mark.live

ENV = {"T_PULP_USER": "", "T_PULP_PASSWORD": ""}


def pulp_settings(service: PulpService, repo: str, name: str = "pulp") -> TargetSettings:
    return TargetSettings(
        name=name,
        kind="pulp",
        url=service.url,
        username_env="T_PULP_USER",
        password_env="T_PULP_PASSWORD",
        content_url=service.content_url,
        repositories={"pypi": repo},
    )


def pulp_environ(service: PulpService) -> dict[str, str]:
    return {"T_PULP_USER": service.username, "T_PULP_PASSWORD": service.password}


@contextmanager
def session_client(service: PulpService) -> Iterator[httpx.Client]:
    """A client logged in once: Basic auth costs Pulp about a second of PBKDF2 per request, a session does not."""
    with httpx.Client(timeout=60, trust_env=False) as client:
        client.post(service.api + "login/", auth=(service.username, service.password)).raise_for_status()
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        yield client


def delete_repository(service: PulpService, repo: str) -> None:
    """Remove what a test made (distribution, repository); content units stay, as Pulp keeps them anyway."""
    with session_client(service) as client:
        for kind in ("distributions/python/pypi/", "repositories/python/python/"):
            found = client.get(service.api + kind, params={"name": repo}).json().get("results", [])
            for item in found:
                client.delete(service.url.rstrip("/") + item["pulp_href"])


@dataclass
class Made:
    store: Store
    build: Path
    mark: str

    def artifact(self, name: str, version: str, requires: tuple[str, ...] = (), pad: int = 0) -> Artifact:
        code = f'MARK = "{self.mark}"\n'
        files = {f"{name.replace('-', '_')}/pad.bin": "x" * pad} if pad else {}
        return wheel_artifact(self.store, Dist(name, version, requires=requires, code=code, files=files), self.build)


@pytest.fixture
def made(tmp_path: Path) -> Made:
    return Made(Store(tmp_path / "store"), tmp_path / "build", uuid.uuid4().hex)


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:
    name = f"mctl-test-{uuid.uuid4().hex[:10]}"
    yield name
    delete_repository(pulp_service, name)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=120) as c:
        yield c


@pytest.fixture
def target(pulp_service: PulpService, repo_name: str, client: httpx.AsyncClient) -> PulpTarget:
    return PulpTarget(pulp_settings(pulp_service, repo_name), client, pulp_environ(pulp_service), ecosystems=ECOSYSTEMS)


def distribution(service: PulpService, repo: str) -> dict[str, Any]:
    with session_client(service) as c:
        found = c.get(service.api + "distributions/python/pypi/", params={"name": repo}).json()["results"]
    assert len(found) == 1
    return dict(found[0])


def version_files(service: PulpService, version_href: str) -> set[tuple[str, str]]:
    with session_client(service) as c:
        page = c.get(
            service.api + "content/python/packages/",
            params={"repository_version": version_href, "limit": 1000},
        ).json()
    return {(u["filename"], u["sha256"]) for u in page["results"]}


def keys(arts: list[Artifact]) -> set[tuple[str, str]]:
    return {(a.filename, a.sha256) for a in arts}


def simple_page(service: PulpService, target: PulpTarget, project: str) -> str:
    with session_client(service) as c:
        return c.get(target.endpoint("pypi") + project + "/").text


# ----------------------------------------------------------------------------------------------- tests


def test_pulp_target_satisfies_the_protocol(target: PulpTarget) -> None:
    assert isinstance(target, PublishTarget)
    assert target.kind == "pulp" and "pypi" in target.ecosystems


async def test_check_reports_versions_workers_and_credentials(target: PulpTarget) -> None:
    check = await target.check()
    assert check.ok, check.problems
    assert check.reachable and check.authenticated
    assert check.server_version and check.plugins["python"]


async def test_first_publish_makes_version_1_and_second_changes_nothing(
    target: PulpTarget,
    made: Made,
    pulp_service: PulpService,
    repo_name: str,
) -> None:
    arts = [made.artifact("mctl-pa", "1.0"), made.artifact("mctl-pb", "2.0"), made.artifact("mctl-pb", "2.1")]
    first = await target.publish("pypi", arts, made.store, SilentProgress())
    assert (first.uploaded, first.present, first.removed, first.version, first.changed) == (3, 0, 0, 1, True)
    dist = distribution(pulp_service, repo_name)
    # The distribution serves an explicit version, never "whatever is latest".
    assert dist["repository"] is None and dist["repository_version"].endswith("/versions/1/")
    assert dist["allow_uploads"] is False
    assert version_files(pulp_service, dist["repository_version"]) == keys(arts)
    assert first.endpoint == f"{pulp_service.url}/pypi/{repo_name}/simple/"
    assert f"sha256={arts[1].sha256}" in simple_page(pulp_service, target, "mctl-pb")

    again = await target.publish("pypi", list(reversed(arts)), made.store, SilentProgress())
    assert (again.uploaded, again.present, again.version, again.changed) == (0, 3, 1, False)
    assert [v.version for v in await target.history("pypi")] == [1, 0]


async def test_adding_one_uploads_one_and_removing_makes_a_version_without_it(
    target: PulpTarget,
    made: Made,
    pulp_service: PulpService,
    repo_name: str,
) -> None:
    arts = [made.artifact("mctl-pc", "1.0"), made.artifact("mctl-pd", "1.0")]
    await target.publish("pypi", arts, made.store, SilentProgress())
    added = made.artifact("mctl-pd", "1.1")
    second = await target.publish("pypi", [*arts, added], made.store, SilentProgress())
    assert (second.uploaded, second.present, second.removed, second.version) == (1, 2, 0, 2)
    third = await target.publish("pypi", [arts[0], added], made.store, SilentProgress())
    assert (third.uploaded, third.removed, third.version, third.changed) == (0, 1, 3, True)
    dist = distribution(pulp_service, repo_name)
    assert version_files(pulp_service, dist["repository_version"]) == keys([arts[0], added])
    page = simple_page(pulp_service, target, "mctl-pd")
    assert added.filename in page and arts[1].filename not in page

    history = await target.history("pypi")
    assert [(v.version, v.artifacts, v.served) for v in history] == [
        (3, 2, True),
        (2, 3, False),
        (1, 2, False),
        (0, 0, False),
    ]
    # Earlier versions stay: version 2 still holds all three.
    assert version_files(pulp_service, history[1].details["href"]) == keys([*arts, added])


async def test_republishing_the_same_bytes_into_a_new_repository_uploads_nothing(
    target: PulpTarget,
    made: Made,
    pulp_service: PulpService,
    client: httpx.AsyncClient,
) -> None:
    arts = [made.artifact("mctl-pe", "1.0")]
    await target.publish("pypi", arts, made.store, SilentProgress())
    other = f"mctl-test-{uuid.uuid4().hex[:10]}"
    try:
        second = PulpTarget(
            pulp_settings(pulp_service, other), client, pulp_environ(pulp_service), ecosystems=ECOSYSTEMS
        )
        result = await second.publish("pypi", arts, made.store, SilentProgress())
        assert (result.uploaded, result.present, result.version) == (0, 1, 1)
    finally:
        delete_repository(pulp_service, other)


async def test_rollback_points_the_distribution_back_and_refuses_unknown_versions(
    target: PulpTarget,
    made: Made,
    pulp_service: PulpService,
    repo_name: str,
) -> None:
    old = made.artifact("mctl-pf", "1.0")
    new = made.artifact("mctl-pf", "2.0")
    await target.publish("pypi", [old], made.store, SilentProgress())
    await target.publish("pypi", [new], made.store, SilentProgress())
    assert new.filename in simple_page(pulp_service, target, "mctl-pf")

    back = await target.rollback("pypi", 1)
    assert (back.version, back.served) == (1, True)
    page = simple_page(pulp_service, target, "mctl-pf")
    assert old.filename in page and new.filename not in page
    assert [v.version for v in await target.history("pypi") if v.served] == [1]

    before = distribution(pulp_service, repo_name)
    with pytest.raises(TargetError) as err:
        await target.rollback("pypi", 7)
    assert "no version 7" in err.value.message and "versions: 0, 1, 2" in err.value.message
    assert distribution(pulp_service, repo_name)["repository_version"] == before["repository_version"]

    # Publishing the rolled-back set again: the distribution served v1 (not latest), so a version is made.
    again = await target.publish("pypi", [new], made.store, SilentProgress())
    assert again.changed and again.version == 2 and again.uploaded == 0


async def test_a_failing_upload_is_reported_with_the_others_and_nothing_is_switched(
    target: PulpTarget,
    made: Made,
    pulp_service: PulpService,
    repo_name: str,
) -> None:
    good = made.artifact("mctl-pg", "1.0")
    await target.publish("pypi", [good], made.store, SilentProgress())
    before = distribution(pulp_service, repo_name)

    fine = made.artifact("mctl-ph", "1.0")
    broken = made.artifact("mctl-pi", "1.0")
    # Not a wheel at all under a wheel's name: Pulp refuses it when reading its metadata.
    made.store.blob_path(broken.sha256).chmod(0o644)
    made.store.blob_path(broken.sha256).write_bytes(b"not a zip file")
    gone = made.artifact("mctl-pj", "1.0")
    made.store.blob_path(gone.sha256).unlink()
    with pytest.raises(TargetError) as err:
        await target.publish("pypi", [good, fine, broken, gone], made.store, SilentProgress())
    msg = err.value.message
    assert "2 of 3 uploads failed" in msg and broken.filename in msg and gone.filename in msg
    assert "distribution serves what it served before" in msg
    after = distribution(pulp_service, repo_name)
    assert after["repository_version"] == before["repository_version"]
    assert [v.version for v in await target.history("pypi")] == [1, 0]


async def test_same_bytes_under_another_filename_in_pulp_are_refused_before_the_switch(
    target: PulpTarget, made: Made, pulp_service: PulpService, repo_name: str
) -> None:
    first = made.artifact("mctl-pk", "1.0")
    await target.publish("pypi", [first], made.store, SilentProgress())
    before = distribution(pulp_service, repo_name)
    art = made.artifact("mctl-pl", "1.0")
    # Someone put these exact bytes into Pulp under another name; Pulp keeps one unit per sha256.
    alias = "mctl_alias-1.0-py3-none-any.whl"
    with session_client(pulp_service) as c:
        c.post(
            pulp_service.api + "content/python/packages/upload/",
            files={"file": (alias, made.store.blob_path(art.sha256).read_bytes())},
        ).raise_for_status()
    with pytest.raises(TargetError) as err:
        await target.publish("pypi", [first, art], made.store, SilentProgress())
    assert f"lacks {art.filename}" in err.value.message and alias in err.value.message
    assert "the distribution was not switched" in err.value.message
    assert distribution(pulp_service, repo_name)["repository_version"] == before["repository_version"]
