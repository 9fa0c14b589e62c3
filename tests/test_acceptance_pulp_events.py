"""Publish events against the real Pulp (issue 13 item 4): one `mirrorctl publish` to a target with a PyPI and an
npm repository is one event; `history --to pulp` lists the events with each repository's own version number;
`rollback --to pulp --publish N` makes both distributions serve event N's versions again, together; a version
deleted in Pulp meanwhile refuses the rollback before anything is switched.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.inside.publish import read_journal
from mirrorctl.inside.store import Store
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401

from .fixtures.store_content import publish_view, wheel_artifact
from .fixtures.wheels import Dist
from .test_pulp_npm import Made, delete_npm_repository
from .test_pulp_target import delete_repository, session_client

pytestmark = pytest.mark.live


@pytest.fixture
def names(pulp_service: PulpService) -> Iterator[tuple[str, str]]:
    mark = uuid.uuid4().hex[:10]
    yield f"mctl-ev-py-{mark}", f"mctl-ev-npm-{mark}"
    delete_repository(pulp_service, f"mctl-ev-py-{mark}")
    delete_npm_repository(pulp_service, f"mctl-ev-npm-{mark}")


def get(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=30) as c:
        return c.get(url)


def test_one_publish_is_one_event_and_rollback_publish_restores_both_repositories(
    pulp_service: PulpService, names: tuple[str, str], tmp_path: Path
) -> None:
    py_repo, npm_repo = names
    mark = uuid.uuid4().hex
    made = Made(Store(tmp_path / "store"), mark)
    store = made.store
    lib1 = wheel_artifact(store, Dist("mctl-ev-lib", "1.0", code=f"M = '{mark}'\n"), tmp_path / "b1")
    lib2 = wheel_artifact(store, Dist("mctl-ev-lib", "2.0", code=f"M = '{mark}'\n"), tmp_path / "b2")
    left1, left2 = made.artifact("mctl-ev-left", "1.0.0"), made.artifact("mctl-ev-left", "2.0.0")
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{store.root}"\n\n[targets.pulp]\nkind = "pulp"\nurl = "{pulp_service.url}"\n'
        f'content-url = "{pulp_service.content_url}"\nusername-env = "PL_USER"\npassword-env = "PL_PASS"\n'
        f'repositories = {{ pypi = "{py_repo}", npm = "{npm_repo}" }}\n'
    )
    env = {"PL_USER": pulp_service.username, "PL_PASS": pulp_service.password}

    def cli(*args: str, code: int = 0) -> str:
        done = CliRunner().invoke(app, ["--config", str(config), *args], env=env)
        assert done.exit_code == code, done.output
        return done.output

    simple = f"{pulp_service.url}/pypi/{py_repo}/simple/mctl-ev-lib/"
    npm = f"{pulp_service.content_url}/pulp/content/{npm_repo}/"

    def served() -> tuple[bool, bool, bool, bool]:
        index = get(simple).text
        return (
            lib1.filename in index,
            lib2.filename in index,
            get(npm + left1.path).status_code == 200,
            get(npm + left2.path).status_code == 200,
        )

    publish_view(store, [lib1, left1], sequence=1)
    cli("-q", "publish", "--to", "pulp")  # event 1: pypi v1, npm v1
    publish_view(store, [lib2, left2], sequence=2)
    cli("-q", "publish", "--to", "pulp")  # event 2: pypi v2, npm v2 (the first of each removed)
    publish_view(store, [lib2, left1, left2], sequence=3)
    cli("-q", "publish", "--to", "pulp")  # event 3: pypi unchanged (v2), npm v3
    assert served() == (False, True, True, True)

    lines = cli("history", "--to", "pulp").splitlines()
    assert lines[0].split()[:2] == ["publish", "when"]
    assert [line.split()[0] for line in lines[1:3]] == ["1", "2"] and lines[3].split()[:2] == ["*", "3"]
    assert f"npm {npm_repo} v1, pypi {py_repo} v1" in lines[1]
    assert f"npm {npm_repo} v3, pypi {py_repo} v2" in lines[3]  # each repository with its own numbers

    out = cli("rollback", "--to", "pulp", "--publish", "2")
    assert f"npm {npm_repo} serves version 2 (was version 3)" in out, out
    assert f"pypi {py_repo} serves version 2 (already served it)" in out, out
    assert served() == (False, True, False, True)
    out = cli("rollback", "--to", "pulp", "--publish", "1")
    assert served() == (True, False, True, False), out
    lines = cli("history", "--to", "pulp").splitlines()
    assert lines[-1].split()[:2] == ["*", "5"] and "rollback to 1" in lines[-1], lines
    assert lines[1].split()[0] == "1"  # event 1's versions are served again, but event 5 put them there: one star

    # Unknown event: exit 2, nothing switched.
    out = cli("rollback", "--to", "pulp", "--publish", "42", code=2)
    assert "no publish event 42 (events: 1-5)" in out and "mirrorctl history --to pulp" in out
    assert served() == (True, False, True, False)

    # A version deleted in Pulp meanwhile: refused before anything moves (pypi would have moved first).
    npm_v2 = read_journal(store, "pulp")[1].results["npm"]["version"]
    with session_client(pulp_service) as client:
        repo = client.get(pulp_service.api + "repositories/file/file/", params={"name": npm_repo}).json()
        href = repo["results"][0]["versions_href"] + f"{npm_v2}/"
        task = client.delete(pulp_service.url + href).json()["task"]
        for _ in range(300):
            if client.get(pulp_service.url + task).json()["state"] in ("completed", "failed"):
                break
    out = cli("rollback", "--to", "pulp", "--publish", "2", code=1)
    assert f"{npm_repo} (npm) has no version {npm_v2} any more; nothing was switched" in out, out
    assert served() == (True, False, True, False)
    assert [e.number for e in read_journal(store, "pulp")] == [1, 2, 3, 4, 5]
