"""The real Pulp and devpi that scripts/services.sh runs: they take a real wheel and the real pip installs it.

Start them first: `bash scripts/services.sh install && bash scripts/services.sh start`. Every name made here
carries a random suffix, so the tests can run again and again against the same long-lived services.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.services import DevpiService, PulpService, devpi_service, pulp_service  # noqa: F401
from tests.fixtures.wheels import Dist, build_wheel

pytestmark = pytest.mark.live

NEEDED_PULP_PLUGINS = ("core", "python", "deb", "npm", "maven")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _probe(tmp_path: Path) -> tuple[Dist, Path]:
    """A real wheel under a fresh name, so nothing from an earlier run can answer for it."""
    suffix = uuid.uuid4().hex[:10]
    dist = Dist(f"live-probe-{suffix}", "1.0.0", code=f'MARK = "{suffix}"\n')
    return dist, build_wheel(dist, tmp_path / "dist")


def pip_install(index_url: str, requirement: str, target: Path) -> subprocess.CompletedProcess[str]:
    """The real pip, told of nothing but this index: no config file, no PIP_* or proxy variable, no cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("PIP_") and not k.upper().endswith("_PROXY")
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--isolated",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--index-url",
        index_url,
        "--target",
        str(target),
        requirement,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)


def _assert_installed(result: subprocess.CompletedProcess[str], dist: Dist, target: Path) -> None:
    assert result.returncode == 0, f"pip failed:\n{result.stdout}\n{result.stderr}"
    assert f"Successfully installed {dist.name}-{dist.version}" in result.stdout
    assert (target / dist.module / "__init__.py").read_text() == dist.code


# ------------------------------------------------------------------------------------------------------ Pulp


def _wait_task(client: httpx.Client, pulp: PulpService, task: str, timeout: float = 120) -> dict[str, Any]:
    url = pulp.url.rstrip("/") + task if task.startswith("/") else task
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(url).raise_for_status().json()
        if body["state"] == "completed":
            return body
        if body["state"] in ("failed", "canceled", "skipped"):
            pytest.fail(f"Pulp task {task} ended {body['state']}: {body.get('error')}")
        if time.monotonic() > deadline:
            pytest.fail(f"Pulp task {task} still {body['state']} after {timeout}s")
        time.sleep(0.3)


@pytest.fixture
def pulp(pulp_service: PulpService) -> Iterator[tuple[PulpService, httpx.Client]]:  # noqa: F811
    with pulp_service.client() as client:
        yield pulp_service, client


def test_pulp_status_shows_workers_and_plugins(pulp_service: PulpService) -> None:  # noqa: F811
    with pulp_service.client() as client:
        status = client.get(pulp_service.api + "status/").raise_for_status().json()
    assert len(status["online_workers"]) >= 2, status["online_workers"]
    assert status["online_content_apps"]
    versions = {v["component"]: v["version"] for v in status["versions"]}
    missing = [p for p in NEEDED_PULP_PLUGINS if not versions.get(p)]
    assert not missing, f"plugins missing from Pulp: {missing} (has {versions})"
    # The env file the script wrote says the same versions the server reports.
    assert pulp_service.env.get("PULPCORE_VERSION") == versions["core"]
    assert pulp_service.env.get("PULP_PYTHON_VERSION") == versions["python"]


def test_pulp_python_upload_then_real_pip_installs(
    pulp: tuple[PulpService, httpx.Client], tmp_path: Path
) -> None:
    service, client = pulp
    dist, wheel = _probe(tmp_path)
    name = f"{dist.name}-test"
    repo = (
        client.post(service.api + "repositories/python/python/", json={"name": name})
        .raise_for_status()
        .json()
    )
    dist_href = None
    try:
        with wheel.open("rb") as fh:
            resp = client.post(
                service.api + "content/python/packages/",
                data={"relative_path": wheel.name, "repository": repo["pulp_href"]},
                files={"file": (wheel.name, fh, "application/octet-stream")},
            )
        task = _wait_task(client, service, resp.raise_for_status().json()["task"])
        version_href = next(h for h in task["created_resources"] if "/versions/" in h)
        assert version_href.endswith("/versions/1/")

        content = (
            client.get(service.api + "content/python/packages/", params={"repository_version": version_href})
            .raise_for_status()
            .json()
        )
        assert [(c["filename"], c["sha256"]) for c in content["results"]] == [(wheel.name, _sha256(wheel))]

        resp = client.post(
            service.api + "distributions/python/pypi/",
            json={"name": name, "base_path": name, "repository": repo["pulp_href"]},
        )
        task = _wait_task(client, service, resp.raise_for_status().json()["task"])
        dist_href = task["created_resources"][0]
        base_url = client.get(service.url.rstrip("/") + dist_href).raise_for_status().json()["base_url"]
        assert base_url.startswith(service.url.rstrip("/") + "/"), base_url

        page = client.get(f"{base_url}simple/{dist.name}/").raise_for_status().text
        assert f"sha256={_sha256(wheel)}" in page

        target = tmp_path / "site"
        _assert_installed(
            pip_install(f"{base_url}simple/", f"{dist.name}=={dist.version}", target), dist, target
        )
    finally:
        for href in (dist_href, repo["pulp_href"]):
            if href:
                resp = client.delete(service.url.rstrip("/") + href if href.startswith("/") else href)
                if resp.status_code == 202:
                    _wait_task(client, service, resp.json()["task"])


# ----------------------------------------------------------------------------------------------------- devpi


def _devpi_user_and_index(devpi: DevpiService, tag: str) -> tuple[str, str, str]:
    user, password, index = f"u{tag}", uuid.uuid4().hex, "snap"
    with devpi.client() as client:
        client.put(f"{devpi.url}/{user}", json={"password": password}).raise_for_status()
    with devpi.client(auth=(user, password)) as client:
        client.put(
            f"{devpi.url}/{user}/{index}", json={"type": "stage", "bases": [], "volatile": False}
        ).raise_for_status()
    return user, password, index


def _devpi_upload(client: httpx.Client, url: str, dist: Dist, wheel: Path) -> httpx.Response:
    with wheel.open("rb") as fh:
        return client.post(
            url,
            data={":action": "file_upload", "name": dist.name, "version": dist.version},
            files={"content": (wheel.name, fh, "application/octet-stream")},
        )


def test_devpi_index_without_bases_upload_then_real_pip_installs(
    devpi_service: DevpiService,  # noqa: F811
    tmp_path: Path,
) -> None:
    dist, wheel = _probe(tmp_path)
    user, password, index = _devpi_user_and_index(devpi_service, dist.name.rsplit("-", 1)[1])
    index_url = f"{devpi_service.url}/{user}/{index}"
    with devpi_service.client(auth=(user, password)) as client:
        config = client.get(index_url).raise_for_status().json()["result"]
        assert (config["type"], list(config["bases"]), config["volatile"]) == ("stage", [], False)

        assert _devpi_upload(client, index_url + "/", dist, wheel).status_code == 200
        page = client.get(
            f"{index_url}/+simple/{dist.name}/", headers={"Accept": "text/html"}
        ).raise_for_status()
        assert f"sha256={_sha256(wheel)}" in page.text

    target = tmp_path / "site"
    _assert_installed(
        pip_install(f"{index_url}/+simple/", f"{dist.name}=={dist.version}", target), dist, target
    )


def test_devpi_non_volatile_index_refuses_a_different_file_under_the_same_name(
    devpi_service: DevpiService,  # noqa: F811
    tmp_path: Path,
) -> None:
    dist, wheel = _probe(tmp_path)
    user, password, index = _devpi_user_and_index(devpi_service, dist.name.rsplit("-", 1)[1])
    index_url = f"{devpi_service.url}/{user}/{index}/"
    other = build_wheel(Dist(dist.name, dist.version, code="CHANGED = True\n"), tmp_path / "other")
    assert other.name == wheel.name and _sha256(other) != _sha256(wheel)
    with devpi_service.client(auth=(user, password)) as client:
        assert _devpi_upload(client, index_url, dist, wheel).status_code == 200
        assert (
            _devpi_upload(client, index_url, dist, wheel).status_code == 200
        )  # identical: accepted, no change
        assert _devpi_upload(client, index_url, dist, other).status_code == 409
        page = client.get(
            f"{index_url}+simple/{dist.name}/", headers={"Accept": "text/html"}
        ).raise_for_status()
    assert f"sha256={_sha256(wheel)}" in page.text and _sha256(other) not in page.text
