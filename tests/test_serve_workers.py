"""`mirrorctl serve --workers N`: worker processes over one port, each following every switch at its next request,
and the fast file path serving the same bytes and headers as a streamed file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from mirrorctl.ecosystems.pypi.serve import JSON_TYPE
from mirrorctl.inside.channels import promote, rollback
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import fingerprint
from tests.fixtures.snapshots import Snapshots, two_snapshots

MIRRORCTL = [str(Path(sys.executable).parent / "mirrorctl")]
FULL = {"alpha", "beta", "gamma"}
DROPPED = {"alpha", "beta"}
REQUESTS = 40  # each on its own connection, so the kernel hands them to both workers


def _start(tmp_path: Path, store_root: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store_root}"\n')
    proc = subprocess.Popen(
        [*MIRRORCTL, "--config", str(config), "serve", "--port", "0", "--no-access-log", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/ ", line)
    assert m, line
    url = m.group(1)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "server did not come up"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return err


def _names(url: str) -> set[str]:
    r = httpx.get(f"{url}/pypi/simple/", headers={"Accept": JSON_TYPE}, timeout=10)
    assert r.status_code == 200, r.text
    return {p["name"] for p in r.json()["projects"]}


def _worker_pids(proc: subprocess.Popen[str]) -> set[int]:
    children = psutil.Process(proc.pid).children(recursive=True)
    return {c.pid for c in children if "multiprocessing" in " ".join(c.cmdline()) and "resource_tracker" not in
            " ".join(c.cmdline())}


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path / "world")


def test_two_workers_see_a_promote_and_a_rollback_at_the_next_request(tmp_path: Path, snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    proc, url = _start(tmp_path, store.root, "--workers", "2", "--channel", "prod")
    try:
        workers = _worker_pids(proc)
        assert len(workers) == 2, workers
        assert all(_names(url) == FULL for _ in range(REQUESTS))
        promote(store, snaps.second, "prod", SILENT)
        assert [_names(url) for _ in range(REQUESTS)] == [DROPPED] * REQUESTS
        rollback(store, "prod", SILENT)
        assert [_names(url) for _ in range(REQUESTS)] == [FULL] * REQUESTS
        assert _worker_pids(proc) == workers  # the same workers all along: none restarted to catch up
    finally:
        _stop(proc)
    assert proc.returncode in (0, 130)
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in workers)


def test_workers_out_of_range_is_a_usage_error_that_serves_nothing(tmp_path: Path, snaps: Snapshots) -> None:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{snaps.store.root}"\n')
    before = fingerprint(snaps.store)
    for bad in ("0", "65"):
        done = subprocess.run(
            [*MIRRORCTL, "--config", str(config), "serve", "--port", "0", "--workers", bad],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert f"--workers {bad}: must be between 1 and 64" in done.stderr and "hint:" in done.stderr
        assert "Traceback" not in done.stderr
    assert fingerprint(snaps.store) == before


def test_a_worker_that_dies_stops_serve_with_an_error(tmp_path: Path, snaps: Snapshots) -> None:
    proc, _ = _start(tmp_path, snaps.store.root, "--workers", "2")
    try:
        victim = sorted(_worker_pids(proc))[0]
        psutil.Process(victim).kill()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            _stop(proc)
    assert proc.returncode == 1
    assert "exited with code -9; stopping the others" in err and "Traceback" not in err


# --- the file path: one trip to the thread pool, the same response as a streamed file ---------------------------


async def test_a_small_file_read_whole_answers_like_a_streamed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirrorctl.ecosystems import blobfile
    from mirrorctl.ecosystems.pypi import PypiEcosystem
    from mirrorctl.inside.serve import create_app
    from tests.fixtures.store_content import closure_store

    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    wheel = arts[0]
    url = f"/pypi/files/{wheel.sha256}/{Path(wheel.path).name}"
    blob = store.blob_path(wheel.sha256).read_bytes()
    app = create_app(store, {"pypi": PypiEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        whole = await c.get(url)
        monkeypatch.setattr(blobfile, "SMALL", 16)  # now every blob streams through FileResponse
        streamed = await c.get(url)
        head = await c.head(url)
        ranged = await c.get(url, headers={"Range": "bytes=0-9"})
        store.blob_path(wheel.sha256).unlink()
        monkeypatch.setattr(blobfile, "SMALL", 1 << 20)
        missing = await c.get(url)
    assert whole.status_code == streamed.status_code == head.status_code == 200
    assert whole.content == streamed.content == blob and head.content == b""
    keys = ("content-length", "content-type", "etag", "cache-control", "accept-ranges", "last-modified")
    assert {k: whole.headers[k] for k in keys} == {k: streamed.headers[k] for k in keys} == {
        k: head.headers[k] for k in keys
    }
    assert whole.headers["etag"] == f'"{wheel.sha256}"' and whole.headers["content-length"] == str(len(blob))
    assert ranged.status_code == 206 and ranged.content == blob[:10]
    assert missing.status_code == 503 and f"blob {wheel.sha256}" in missing.text
