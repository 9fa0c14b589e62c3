"""Why npm is published through pulp_file, not pulp_npm: checked against the real Pulp.

mirrorctl/targets/pulp/npm.py publishes npm as a static registry layout in pulp_file because pulp_npm (0.10.2)
stores only a package's name and version and its content app serves a packument without ``dependencies`` and
without ``dist.integrity``/``dist.shasum``: npm could neither resolve a transitive dependency from it nor check a
tarball. This test puts a tarball whose package.json has dependencies into pulp_npm by the plugin's own
synchronous upload (``POST content/npm/packages/upload/``), adds it to an npm repository, distributes it and
reads the packument the content app serves. It fails the day pulp_npm keeps those fields, so that the choice
gets reconsidered.

Content units cannot be deleted one by one in Pulp (only by an orphan cleanup, which is global and would touch
other users' content): the test removes its distribution and repository, and the package it leaves behind has
a name of its own (random), so a rerun never meets it.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.fixtures.npm_registry import PkgSpec, build_tarball, sri_sha512
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401

from .test_pulp_target import session_client

pytestmark = pytest.mark.live

RECONSIDER = (
    "pulp_npm now keeps dependencies/integrity: reconsider publishing npm through pulp_npm "
    "(mirrorctl/targets/pulp/npm.py)"
)
TASK_TIMEOUT = 120.0


@dataclass
class Created:
    """Hrefs of what the test made, deleted afterwards in reverse order."""

    hrefs: list[str] = field(default_factory=list)


def wait_task(client: httpx.Client, service: PulpService, task_href: str) -> dict[str, Any]:
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        task: dict[str, Any] = client.get(service.url.rstrip("/") + task_href).json()
        if task.get("state") == "completed":
            return task
        if task.get("state") in ("failed", "canceled", "skipped"):
            pytest.fail(f"Pulp task {task_href} {task['state']}: {task.get('error')}")
        if time.monotonic() > deadline:
            pytest.fail(f"Pulp task {task_href} still {task.get('state')} after {TASK_TIMEOUT:.0f}s")
        time.sleep(0.3)


def run_task(client: httpx.Client, service: PulpService, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, (resp.status_code, resp.text[:500])
    return wait_task(client, service, resp.json()["task"])


@pytest.fixture
def pulp(pulp_service: PulpService) -> Iterator[tuple[httpx.Client, Created]]:
    created = Created()
    with session_client(pulp_service) as client:
        try:
            yield client, created
        finally:
            for href in reversed(created.hrefs):
                resp = client.delete(pulp_service.url.rstrip("/") + href)
                if resp.status_code == 202:
                    wait_task(client, pulp_service, resp.json()["task"])


def test_pulp_npm_packument_lacks_dependencies_and_integrity(
    pulp_service: PulpService, pulp: tuple[httpx.Client, Created]
) -> None:
    client, created = pulp
    api = pulp_service.api
    origin = pulp_service.url.rstrip("/")
    mark = uuid.uuid4().hex[:10]
    name = f"mctl-npm-check-{mark}"
    spec = PkgSpec(
        name,
        "1.2.3",
        dependencies={"left-pad": "^1.3.0"},
        optional_dependencies={"fsevents": "^2.3.0"},
        peer_dependencies={"react": ">=18"},
        files={"mark.txt": mark},
    )
    data = build_tarball(spec)
    integrity, shasum = sri_sha512(data), hashlib.sha1(data).hexdigest()

    # The plugin's most direct way in: a synchronous upload of the tarball as npm package content.
    upload = client.post(
        api + "content/npm/packages/upload/",
        files={"file": (spec.filename, data, "application/octet-stream")},
        data={"name": spec.name, "version": spec.version},
    )
    assert upload.status_code == 201, (upload.status_code, upload.text[:500])
    package = upload.json()
    assert (package["name"], package["version"]) == (spec.name, spec.version), package

    repo = client.post(api + "repositories/npm/npm/", json={"name": name})
    assert repo.status_code == 201, (repo.status_code, repo.text[:500])
    repo_href = repo.json()["pulp_href"]
    created.hrefs.append(repo_href)
    run_task(
        client,
        pulp_service,
        client.post(
            origin + repo_href + "modify/",
            json={
                "add_content_units": [package["pulp_href"]],
            },
        ),
    )

    dist_task = run_task(
        client,
        pulp_service,
        client.post(
            api + "distributions/npm/npm/",
            json={
                "name": name,
                "base_path": name,
                "repository": repo_href,
            },
        ),
    )
    created.hrefs.extend(h for h in dist_task["created_resources"] if "/distributions/" in h)

    url = f"{pulp_service.content_url.rstrip('/')}/pulp/content/{name}/{spec.name}"
    with httpx.Client(trust_env=False, timeout=30) as anon:
        resp = anon.get(url, headers={"Accept": "application/json"})
        tarball = anon.get(f"{pulp_service.content_url.rstrip('/')}/pulp/content/{name}/{spec.name}/-/{spec.filename}")
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    served = json.loads(resp.content)
    print(f"pulp_npm {pulp_service.versions.get('npm', '?')} served for {url}:\n{json.dumps(served, indent=2)}")

    # The packument is pulp_npm's own (not a 404 or a listing), and the tarball is there byte for byte:
    # what is missing below is missing from the document, not from Pulp.
    assert served["name"] == spec.name and spec.version in served["versions"], served
    assert tarball.status_code == 200 and tarball.content == data, (tarball.status_code, len(tarball.content))

    entry = served["versions"][spec.version]
    dist = entry.get("dist") or {}
    kept = {
        "dependencies": entry.get("dependencies"),
        "optionalDependencies": entry.get("optionalDependencies"),
        "peerDependencies": entry.get("peerDependencies"),
        "dist.integrity": dist.get("integrity"),
        "dist.shasum": dist.get("shasum"),
    }
    present = {k: v for k, v in kept.items() if v is not None}
    assert not present, (
        f"{RECONSIDER}; served {present} (the tarball's own: dependencies {dict(spec.dependencies)}, "
        f"integrity {integrity}, shasum {shasum})"
    )
