"""`targets check` warns when Pulp keeps serving files of a superseded publication
(DISTRIBUTED_PUBLICATION_RETENTION_PERIOD not 0), which the API does not expose: the probe publishes a file,
serves an empty publication instead, and asks the content app for the file.

Against a fake Pulp (httpx.MockTransport) that behaves like pulpcore with and without the grace period; the live
check against the real Pulp of scripts/services.sh is in tests/test_acceptance_pulp_retention.py. Also pins that
the services' Pulp settings set the period to 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.targets.pulp import PulpTarget
from mirrorctl.targets.pulp.retention import PROBE_PREFIX, SETTING

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRON = {"PU": "admin", "PP": "secret"}
API = "/pulp/api/v3/"


def settings(repositories: dict[str, str]) -> TargetSettings:
    return TargetSettings(
        name="inside",
        kind="pulp",
        url="http://pulp.test:24817",
        username_env="PU",
        password_env="PP",
        content_url="http://pulp.test:24816",
        repositories=repositories,
    )


class FakePulp:
    """Just enough of pulpcore and pulp_file for the probe; ``retains``: the content app still serves a file of
    any publication the distribution served before."""

    def __init__(self, retains: bool, components: tuple[str, ...] = ("core", "file", "python")) -> None:
        self.retains = retains
        self.components = components
        self.requests: list[tuple[str, str]] = []
        self.pubs: dict[str, set[str]] = {}  # publication href -> relative paths
        self.versions: dict[str, set[str]] = {}
        self.dist: dict[str, Any] = {}
        self.served_before: list[str] = []
        self.deleted: list[str] = []
        self.tasks: dict[str, list[str]] = {}
        self.n = 0

    def task(self, created: list[str]) -> httpx.Response:
        self.n += 1
        href = f"{API}tasks/{self.n}/"
        self.tasks[href] = created
        return httpx.Response(202, json={"task": href})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.requests.append((method, path))
        if path == API + "login/":
            return httpx.Response(201, json={}, headers=[("set-cookie", "sessionid=s; Path=/"),
                                                         ("set-cookie", "csrftoken=c; Path=/")])  # fmt: skip
        if path == API + "status/":
            return httpx.Response(200, json={
                "versions": [{"component": c, "version": "1"} for c in self.components],
                "online_workers": [{"name": "w"}], "online_content_apps": [{"name": "c"}],
                "database_connection": {"connected": True},
            })  # fmt: skip
        if path.startswith(API + "tasks/"):
            return httpx.Response(200, json={"state": "completed", "created_resources": self.tasks[path]})
        repo = f"{API}repositories/file/file/r1/"
        if path == API + "repositories/file/file/" and method == "POST":
            name = json.loads(request.content)["name"]
            assert name.startswith(PROBE_PREFIX)
            self.versions[repo + "versions/0/"] = set()
            return httpx.Response(201, json={"pulp_href": repo, "versions_href": repo + "versions/", "name": name})
        if path == API + "content/file/files/" and method == "POST":
            body = request.content.decode("latin-1")
            rel = re.search(r'name="relative_path"\r\n\r\n([^\r]+)', body)
            assert rel and f'name="repository"\r\n\r\n{repo}' in body
            self.versions[repo + "versions/1/"] = {rel.group(1)}
            return self.task([f"{API}content/file/files/u1/", repo + "versions/1/"])
        if path == API + "publications/file/file/" and method == "POST":
            href = f"{API}publications/file/file/p{len(self.pubs)}/"
            self.pubs[href] = set(self.versions[json.loads(request.content)["repository_version"]])
            return self.task([href])
        if path == API + "distributions/file/file/" and method == "POST":
            body = json.loads(request.content)
            self.dist = {"base_path": body["base_path"], "publication": body["publication"]}
            return self.task([f"{API}distributions/file/file/d1/"])
        if path == f"{API}distributions/file/file/d1/" and method == "PATCH":
            self.served_before.append(self.dist["publication"])
            self.dist["publication"] = json.loads(request.content)["publication"]
            return self.task([])
        if method == "DELETE":
            self.deleted.append(path)
            return self.task([])
        if request.url.port == 24816:  # the content app
            base, _, rel = path.removeprefix("/pulp/content/").partition("/")
            pubs = [self.dist["publication"], *(self.served_before if self.retains else [])]
            found = base == self.dist.get("base_path") and any(rel in self.pubs[p] for p in pubs)
            return httpx.Response(200 if found else 404, text="x")
        return httpx.Response(200, json={"count": 0, "results": [], "next": None})


async def check(fake: FakePulp, repositories: dict[str, str]) -> Any:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        target = PulpTarget(settings(repositories), client, ENVIRON, ecosystems=load_ecosystems())
        return await target.check()


async def test_a_pulp_that_keeps_superseded_files_is_warned_about() -> None:
    fake = FakePulp(retains=True)
    result = await check(fake, {"npm": "team-npm"})
    assert result.ok  # a warning, not a problem: the target works
    [warning] = result.warnings
    assert SETTING in warning and "is not 0" in warning and "= 0" in warning and "restart Pulp" in warning
    assert "targets.inside" in warning and "docs/targets-pulp" in warning
    # the probe cleaned up after itself: distribution, then repository
    assert fake.deleted == [f"{API}distributions/file/file/d1/", f"{API}repositories/file/file/r1/"]


async def test_a_pulp_with_the_period_at_0_gets_no_warning() -> None:
    fake = FakePulp(retains=False)
    result = await check(fake, {"npm": "team-npm"})
    assert result.ok and result.warnings == ()
    assert len(fake.served_before) == 1 and len(fake.deleted) == 2  # the probe did run


async def test_only_targets_with_publication_served_repositories_are_probed() -> None:
    fake = FakePulp(retains=True)
    result = await check(fake, {"pypi": "team-pypi"})  # pulp_python serves versions: no grace period applies
    assert result.ok and result.warnings == ()
    assert not any("file/file" in p for _, p in fake.requests)


@pytest.mark.parametrize("settings_file", ["scripts/services/pulp-settings.py.in", "containers/pulp/settings.py"])
def test_the_services_pulp_settings_set_the_period_to_0(settings_file: str) -> None:
    text = (REPO_ROOT / settings_file).read_text()
    assert re.search(rf"^{SETTING} = 0$", text, re.M), settings_file


@pytest.mark.parametrize("doc", ["docs/targets-pulp.md", "docs/npm.md"])
def test_the_pulp_docs_say_what_to_set(doc: str) -> None:
    text = (REPO_ROOT / doc).read_text()
    assert f"{SETTING} = 0" in text and "targets check" in text, doc
