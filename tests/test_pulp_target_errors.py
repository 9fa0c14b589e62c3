"""PulpTarget refusals: an unreachable server, wrong credentials, a missing plugin, a failed task.

Most run against httpx.MockTransport (a fake Pulp that answers just enough); the wrong-password case also
runs against the real Pulp (marker live).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import TargetError
from mirrorctl.inside.store import Store
from mirrorctl.progress import SilentProgress
from mirrorctl.targets.pulp import PulpTarget
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401
from tests.fixtures.store_content import wheel_artifact
from tests.fixtures.wheels import Dist

ECOSYSTEMS = load_ecosystems()  # the installed adapters, as the runtime loads them

ENVIRON = {"PU": "admin", "PP": "secret"}


def settings(url: str = "http://pulp.test:24817", repo: str = "snap") -> TargetSettings:
    return TargetSettings(
        name="inside",
        kind="pulp",
        url=url,
        username_env="PU",
        password_env="PP",
        content_url="http://pulp.test:24816",
        repositories={"pypi": repo},
    )


STATUS: dict[str, Any] = {
    "versions": [{"component": "core", "version": "3.123.1"}, {"component": "python", "version": "3.36.4"}],
    "online_workers": [{"name": "w1"}],
    "online_content_apps": [{"name": "c1"}],
    "database_connection": {"connected": True},
}


def fake_pulp(handler: Callable[[httpx.Request], httpx.Response | None]) -> httpx.AsyncClient:
    """A client whose server answers login and status like Pulp, and everything else through ``handler``."""
    requests: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = handler(request)
        if answer is not None:
            return answer
        if request.url.path == "/pulp/api/v3/login/":
            return httpx.Response(
                201, json={}, headers=[("set-cookie", "sessionid=s1; Path=/"), ("set-cookie", "csrftoken=c1; Path=/")]
            )
        if request.url.path == "/pulp/api/v3/status/":
            return httpx.Response(200, json=STATUS)
        return httpx.Response(200, json={"count": 0, "results": [], "next": None})

    client = httpx.AsyncClient(transport=httpx.MockTransport(route))
    client.requests = requests  # type: ignore[attr-defined]
    return client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_pulp_fails_check_and_publish_with_a_hint(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    async with httpx.AsyncClient(trust_env=False) as client:
        target = PulpTarget(settings(url), client, ENVIRON, ecosystems=ECOSYSTEMS)
        check = await target.check()
        assert not check.reachable and not check.ok
        assert "unreachable" in check.problems[0] and "pulpcore-api" in check.problems[0]
        with pytest.raises(TargetError) as err:
            await target.publish("pypi", [], Store(tmp_path / "s"), SilentProgress())
    assert "unreachable" in err.value.message and url in err.value.message
    assert err.value.hint and "targets.inside.url" in err.value.hint


async def test_missing_python_plugin_is_named_with_what_to_install() -> None:
    status = {**STATUS, "versions": [{"component": "core", "version": "3.123.1"}]}

    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/pulp/api/v3/status/":
            return httpx.Response(200, json=status)
        if request.url.path.startswith("/pulp/api/v3/repositories/python/"):
            return httpx.Response(404, json={"detail": "Not found."})
        return None

    async with fake_pulp(handler) as client:
        target = PulpTarget(settings(), client, ENVIRON, ecosystems=ECOSYSTEMS)
        check = await target.check()
        assert check.reachable and check.authenticated and not check.ok
        assert check.plugins == {"core": "3.123.1"}
        assert any("plugin 'python'" in p and "pulp-python" in p for p in check.problems), check.problems
        with pytest.raises(TargetError) as err:
            await target.publish("pypi", [], Store(Path("/nonexistent")), SilentProgress())
    assert "HTTP 404" in err.value.message
    assert err.value.hint and "plugin" in err.value.hint and "targets check inside" in err.value.hint


async def test_no_workers_and_no_content_app_are_problems() -> None:
    status = {**STATUS, "online_workers": [], "online_content_apps": []}

    def handler(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(200, json=status) if request.url.path.endswith("/status/") else None

    async with fake_pulp(handler) as client:
        check = await PulpTarget(settings(), client, ENVIRON, ecosystems=ECOSYSTEMS).check()
    assert not check.ok
    assert any("no Pulp worker" in p for p in check.problems)
    assert any("no Pulp content app" in p for p in check.problems)


async def test_wrong_password_is_named_with_the_variables_to_check() -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/status/"):
            return None
        return httpx.Response(401, json={"detail": "Invalid username/password."})

    async with fake_pulp(handler) as client:
        target = PulpTarget(settings(), client, ENVIRON, ecosystems=ECOSYSTEMS)
        check = await target.check()
        assert check.reachable and not check.authenticated
        with pytest.raises(TargetError) as err:
            await target.history("pypi")
    assert "refused the credentials" in err.value.message
    assert err.value.hint and "PU / PP" in err.value.hint
    assert "secret" not in err.value.message + err.value.hint


def test_unset_credential_variable_is_refused_before_any_request() -> None:
    client = fake_pulp(lambda r: None)
    with pytest.raises(TargetError) as err:
        PulpTarget(settings(), client, {"PU": "admin"}, ecosystems=ECOSYSTEMS)
    assert "password-env = 'PP'" in err.value.message
    assert client.requests == []  # type: ignore[attr-defined]


async def test_a_failed_task_carries_pulps_error_description(tmp_path: Path) -> None:
    repo = {
        "pulp_href": "/pulp/api/v3/repositories/python/python/r1/",
        "latest_version_href": "/pulp/api/v3/repositories/python/python/r1/versions/0/",
        "versions_href": "/pulp/api/v3/repositories/python/python/r1/versions/",
    }
    dist = {
        "pulp_href": "/pulp/api/v3/distributions/python/pypi/d1/",
        "repository": None,
        "repository_version": repo["latest_version_href"],
    }
    store = Store(tmp_path / "store")
    art = wheel_artifact(store, Dist("mctl-fail", "1.0"), tmp_path / "build")

    def handler(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/pulp/api/v3/repositories/python/python/" and request.method == "GET":
            return httpx.Response(200, json={"count": 1, "results": [repo], "next": None})
        if path == "/pulp/api/v3/distributions/python/pypi/" and request.method == "GET":
            return httpx.Response(200, json={"count": 1, "results": [dist], "next": None})
        if path.endswith("/upload/"):
            return httpx.Response(
                201,
                json={
                    "pulp_href": "/pulp/api/v3/content/python/packages/c1/",
                    "sha256": art.sha256,
                    "filename": art.filename,
                },
            )
        if path.endswith("/modify/"):
            assert json.loads(request.content)["base_version"] == repo["latest_version_href"]
            return httpx.Response(202, json={"task": "/pulp/api/v3/tasks/t1/"})
        if path == "/pulp/api/v3/tasks/t1/":
            return httpx.Response(200, json={"state": "failed", "error": {"description": "disk full on worker-2"}})
        if request.method == "PATCH":
            raise AssertionError("the distribution must not move after a failed task")
        return None

    async with fake_pulp(handler) as client:
        with pytest.raises(TargetError) as err:
            await PulpTarget(settings(), client, ENVIRON, ecosystems=ECOSYSTEMS).publish(
                "pypi", [art], store, SilentProgress()
            )
        sent = client.requests  # type: ignore[attr-defined]
    assert "task /pulp/api/v3/tasks/t1/ failed: disk full on worker-2" in err.value.message
    # One login with Basic auth; every later request rides the session, never the password.
    assert sum("authorization" in r.headers for r in sent) == 1
    assert all(
        r.headers.get("x-csrftoken") == "c1"
        for r in sent
        if r.method in ("POST", "PATCH") and not r.url.path.endswith("/login/")
    )


@pytest.mark.live
async def test_wrong_password_against_the_real_pulp(pulp_service: PulpService) -> None:  # noqa: F811
    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
        target = PulpTarget(
            settings(pulp_service.url, f"mctl-test-{uuid.uuid4().hex[:8]}"),
            client,
            {"PU": "admin", "PP": "wrong"},
            ecosystems=ECOSYSTEMS,
        )
        check = await target.check()
        assert check.reachable and not check.authenticated and check.plugins.get("python")
        with pytest.raises(TargetError) as err:
            await target.publish("pypi", [], Store(Path("/nonexistent")), SilentProgress())
    assert "refused the credentials" in err.value.message and "HTTP 401" in err.value.message
