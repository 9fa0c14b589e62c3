"""The mirror's root app and served content: what is served, view switches, a damaged store, the CLI."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.ecosystems.pypi.serve import JSON_TYPE
from mirrorctl.inside.serve import StoreContent, create_app
from mirrorctl.inside.store import Store

from .fixtures.store_content import closure_store, publish_view, wheel_artifact
from .fixtures.wheels import Dist

BASE = "http://mirror.test"


def client_for(store: Store) -> httpx.AsyncClient:
    app = create_app(store, {"pypi": PypiEcosystem()})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def test_status_and_healthz(tmp_path: Path) -> None:
    empty = Store(tmp_path / "empty")
    async with client_for(empty) as c:
        assert (await c.get("/healthz")).text == "ok\n"
        assert (await c.get("/")).json() == {"serving": False, "ecosystems": ["pypi"], "view-id": None}
    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    async with client_for(store) as c:
        doc = (await c.get("/")).json()
        assert doc["serving"] is True
        assert doc["view-id"] == store.current_view_id()
        assert doc["sequence"] == 1 and doc["bundle-id"] == "test-bundle-1"
        assert doc["artifacts"] == {"pypi": len(arts)}


def test_store_content_caches_by_view_id_and_follows_current(tmp_path: Path) -> None:
    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    content = StoreContent(store)
    first = content.current()
    assert first is not None and content.current() is first  # parsed once per view
    held = list(first.artifacts("pypi"))
    publish_view(store, arts[:1], sequence=2)
    second = content.current()
    assert second is not None and second.view_id != first.view_id
    assert len(second.artifacts("pypi")) == 1
    # A reader that took the old view before the switch keeps all of it: old or new, never a mix.
    assert list(first.artifacts("pypi")) == held
    assert second.artifacts("npm") == ()


async def test_readers_see_old_or_new_never_a_mix(tmp_path: Path) -> None:
    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    extra = wheel_artifact(store, Dist("mctl-demo-extra", "1.0"), tmp_path / "build")
    old_names = {"Mctl-Demo.App", "mctl-demo-base", "mctl_demo_fast", "mctl-demo-lib"}
    new_names = old_names | {"mctl-demo-extra"}
    seen: set[frozenset[str]] = set()
    async with client_for(store) as c:

        async def reader() -> None:
            for _ in range(40):
                r = await c.get("/pypi/simple/", headers={"Accept": JSON_TYPE})
                seen.add(frozenset(p["name"] for p in r.json()["projects"]))
                await asyncio.sleep(0)

        async def switcher() -> None:
            for i in range(10):
                publish_view(store, [*arts, extra] if i % 2 == 0 else arts, sequence=i + 2)
                await asyncio.sleep(0)

        await asyncio.gather(reader(), reader(), switcher())
    assert seen <= {frozenset(old_names), frozenset(new_names)}


async def test_damaged_current_view_is_a_503_naming_it(tmp_path: Path) -> None:
    store, _ = closure_store(tmp_path / "store", tmp_path / "build")
    view_json = store.root / "views" / str(store.current_view_id()) / "view.json"
    view_json.unlink()
    async with client_for(store) as c:
        r = await c.get("/pypi/simple/")
        assert r.status_code == 503
        assert "view not found" in r.text and str(view_json) in r.text
        assert (await c.get("/healthz")).status_code == 200


# --- `mirrorctl serve` as a process, on loopback ------------------------------------------------------------

# The console script of the venv running the tests: the command as users run it.
MIRRORCTL = [str(Path(sys.executable).parent / "mirrorctl")]


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    return subprocess.Popen(
        [*MIRRORCTL, "--config", str(tmp_path / "mirrorctl.toml"), "serve", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_serve_logs_its_url_and_serves(tmp_path: Path) -> None:
    closure_store(tmp_path / "store", tmp_path / "build")
    proc = _serve(tmp_path, "--port", "0", "--no-access-log")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving view" in line, line
        m = re.search(r"(http://127\.0\.0\.1:\d+)/ ", line)
        assert m, line
        url = m.group(1)
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        assert r.status_code == 200
        assert httpx.get(f"{url}/pypi/simple/mctl-demo-lib/", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_cli_serve_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _serve(tmp_path, "--port", str(port))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"cannot listen on http://127.0.0.1:{port}" in err and "hint:" in err
    assert not (tmp_path / "store" / "current").exists()


def test_cli_serve_empty_store_says_so(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--port", "0")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "nothing imported yet" in line, line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_cli_serve_help_has_an_example() -> None:
    out = subprocess.run([*MIRRORCTL, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    assert "Example: mirrorctl serve" in out
