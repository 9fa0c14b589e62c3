"""What the served content needs on the mirror host (Ecosystem.serve_problems): /healthz answers ``degraded``
naming it, with the command that fixes it, while apt packages are served without an archive key (issue 13
item 9); ``ok`` again once the key exists."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.ecosystems.base import ServeProblem, load_ecosystems
from mirrorctl.inside.health import health_text, serve_problems, snapshot_problems
from mirrorctl.inside.serve import StoreContent, create_app
from mirrorctl.inside.store import Store

from .fixtures.apt_store import SUITE, apt_artifact
from .fixtures.debs import build_deb
from .fixtures.store_content import closure_store, publish_view, wheel_artifact
from .fixtures.wheels import Dist

BASE = "http://mirror.test"


def apt_and_pypi_store(root: Path, build: Path) -> Store:
    store = Store(root)
    deb = build_deb(build / "debs", "mctl-hello", "1.0-1", "amd64")
    publish_view(store, [apt_artifact(store, deb), wheel_artifact(store, Dist("alpha", "1.0"), build / "wheels")])
    return store


def client(store: Store, channels: list[str] | None = None) -> httpx.AsyncClient:
    app = create_app(store, load_ecosystems(), channels)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def test_healthz_is_degraded_while_apt_is_served_without_a_key_and_ok_once_it_exists(tmp_path: Path) -> None:
    store = apt_and_pypi_store(tmp_path / "s", tmp_path / "b")
    folder = store.root / "keys" / "apt"
    async with client(store) as c:
        r = await c.get("/healthz")
        # 200: a load balancer keeps the mirror (PyPI and npm work); the body names the problem and its fix.
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.text == (
            "degraded\n"
            f"apt: apt packages are served but there is no archive key in {folder}: InRelease answers 503 and "
            "apt-get update fails in every workspace; fix: run `mirrorctl archive-key generate` on the mirror "
            "host (or `mirrorctl archive-key import FILE` to sign with a key you already have)\n"
        )
        strict = await c.get("/healthz?strict")
        assert strict.status_code == 503 and strict.text == r.text  # for a monitor that only sees status codes
        assert (await c.get(f"/apt/dists/{SUITE}/InRelease")).status_code == 503  # what the degraded names
        assert (await c.get("/pypi/simple/alpha/")).status_code == 200  # what still works
        assert not folder.exists()  # asking changed nothing
        ArchiveKey(store.root / "keys").generate()
        ok = await c.get("/healthz")  # the next probe sees the key: no restart
        assert (ok.status_code, ok.text) == (200, "ok\n")
        assert (await c.get("/healthz?strict")).status_code == 200
        assert (await c.get(f"/apt/dists/{SUITE}/InRelease")).status_code == 200


async def test_healthz_without_apt_content_is_ok_even_without_a_key(tmp_path: Path) -> None:
    store, _ = closure_store(tmp_path / "s", tmp_path / "b")
    async with client(store) as c:
        r = await c.get("/healthz?strict")
        assert (r.status_code, r.text) == (200, "ok\n")
    async with client(Store(tmp_path / "empty")) as c:
        assert (await c.get("/healthz")).text == "ok\n"


async def test_healthz_over_several_channels_names_a_problem_once(tmp_path: Path) -> None:
    store = apt_and_pypi_store(tmp_path / "s", tmp_path / "b")
    view_id = store.current_view_id()
    assert view_id is not None
    store.switch_channel("prod", view_id)
    async with client(store, ["current", "prod"]) as c:
        r = await c.get("/healthz")
        assert r.status_code == 200 and r.text.startswith("degraded\napt: ")
        assert r.text.count("\n") == 2, r.text  # two channels, one key: one line


async def test_a_damaged_key_state_is_degraded_with_its_hint_and_no_command(tmp_path: Path) -> None:
    store = apt_and_pypi_store(tmp_path / "s", tmp_path / "b")
    state = store.root / "keys" / "apt" / "keys.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    async with client(store) as c:
        r = await c.get("/healthz")
    assert r.status_code == 200
    assert r.text.startswith(f"degraded\napt: apt archive key state {state} is damaged: ")
    assert "InRelease answers 503" in r.text and "restore it from a backup" in r.text
    assert "mirrorctl archive-key generate" not in r.text  # generate would refuse: a key state is there
    assert state.read_text() == "{not json"


def test_problems_of_a_snapshot_not_served_yet(tmp_path: Path) -> None:
    # What import asks about the snapshot it made, whichever channel serves it.
    store = apt_and_pypi_store(tmp_path / "s", tmp_path / "b")
    view_id = store.current_view_id()
    assert view_id is not None
    (problem,) = snapshot_problems(store, view_id, load_ecosystems())
    assert problem.ecosystem == "apt" and problem.fix == ("archive-key", "generate")
    assert serve_problems([StoreContent(store)], load_ecosystems()) == [problem]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, "mirrorctl archive-key generate"),
        (Path("/srv/my mirror/m.toml"), "mirrorctl --config '/srv/my mirror/m.toml' archive-key generate"),
    ],
)
def test_the_fix_is_the_exact_command_with_the_config_given(config: Path | None, expected: str) -> None:
    p = ServeProblem("apt", "no key", ("archive-key", "generate"))
    assert p.command(config) == expected
    assert p.line(config) == f"apt: no key; fix: run `{expected}` on the mirror host"
    assert health_text([p]) == "degraded\napt: no key; fix: run `mirrorctl archive-key generate` on the mirror host\n"
    assert ServeProblem("apt", "broken").line() == "apt: broken"
