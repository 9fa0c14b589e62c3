"""The download engine against real sockets on 127.0.0.1: the fixture PyPI upstream (tamper, 503s, drops,
ranges, a large generated wheel) and a raw fault server (endless bodies, ignored ranges, slow bodies)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mirrorctl.ecosystems.base import FetchItem
from mirrorctl.errors import IntegrityError, NetworkError
from mirrorctl.inside.store import Store
from mirrorctl.outside.fetch import FetchReport, fetch_all
from mirrorctl.progress import SILENT
from tests.fixtures.fault_server import FaultServer, Route
from tests.fixtures.upstream import FileEntry, FixtureUpstream, start_upstream
from tests.fixtures.wheels import Dist

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FixtureUpstream]:
    up, server = start_upstream(tmp_path / "upstream")
    try:
        yield up
    finally:
        server.stop()


@pytest.fixture
def faults() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
async def client() -> Iterator[httpx.AsyncClient]:  # type: ignore[misc]
    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as c:
        yield c


def item_for(up: FixtureUpstream, entry: FileEntry, **extra_hashes: str) -> FetchItem:
    return FetchItem(
        url=up.file_url(entry.filename),
        filename=entry.filename,
        size=entry.size,
        sha256=entry.sha256,
        label=f"pypi {entry.project} {entry.version} ({entry.filename})",
        extra_hashes=extra_hashes,
    )


def route_item(srv: FaultServer, route: Route, size: int | None = None) -> FetchItem:
    name = route.path.strip("/")
    declared = route.size if size is None else size
    return FetchItem(srv.url(route.path), name, declared, route.sha256, f"test {name}")


def stored_files(store: Store) -> list[Path]:
    return sorted(p for p in (store.root / "blobs").rglob("*") if p.is_file())


def tmp_files(store: Store) -> list[Path]:
    return sorted(p for p in (store.root / "tmp").rglob("*") if p.is_file())


async def fetch(
    items: list[FetchItem], store: Store, client: httpx.AsyncClient, retries: int = 3
) -> FetchReport:
    return await fetch_all(
        items, store, client, concurrency=4, retries=retries, progress=SILENT, backoff_base=0.01
    )


def add_dists(up: FixtureUpstream, n: int) -> list[FileEntry]:
    return [up.add(Dist(f"pkg{i}", "1.0", code="x = 1\n" * (i + 1) * 500))[0] for i in range(n)]


class RecordingProgress:
    def __init__(self) -> None:
        self.advanced = 0.0
        self.totals: list[float | None] = []
        self.notes: list[str] = []

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> RecordingProgress:
        self.totals.append(total)
        return self

    def advance(self, amount: float = 1) -> None:
        self.advanced += amount

    def close(self) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)


# --- the happy path and the warm re-run ---------------------------------------------------------------------


async def test_concurrent_fetch_stores_blobs_under_sha256(upstream, store, client) -> None:
    entries = add_dists(upstream, 6)
    items = [item_for(upstream, e) for e in entries]
    progress = RecordingProgress()
    report = await fetch_all(items, store, client, concurrency=3, retries=0, progress=progress)
    assert (report.downloaded, report.present) == (6, 0)
    assert report.downloaded_bytes == sum(e.size for e in entries)
    for e in entries:
        path = store.blob_path(e.sha256)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e.sha256
    assert tmp_files(store) == []
    assert progress.totals == [sum(e.size for e in entries)]
    assert progress.advanced == sum(e.size for e in entries)


async def test_warm_rerun_makes_no_requests(upstream, store, client) -> None:
    items = [item_for(upstream, e) for e in add_dists(upstream, 4)]
    await fetch(items, store, client)
    upstream.requests.clear()
    upstream.log.clear()
    started = time.monotonic()
    report = await fetch(items, store, client)
    assert upstream.log == []  # not even a HEAD
    assert (report.downloaded, report.present) == (0, 4)
    assert time.monotonic() - started < 1


async def test_extra_hashes_are_checked(upstream, store, client) -> None:
    (entry,) = add_dists(upstream, 1)
    data = entry.data or b""
    good = item_for(upstream, entry, sha512=hashlib.sha512(data).hexdigest())
    await fetch([good], store, client)
    assert store.has_blob(entry.sha256, entry.size)

    other = Store(store.root.parent / "other")
    bad = item_for(upstream, entry, sha1="0" * 40)
    with pytest.raises(IntegrityError, match=r"sha1 .*expected 0000") as exc:
        await fetch([bad], other, client)
    assert entry.filename in str(exc.value)
    assert stored_files(other) == [] and tmp_files(other) == []


# --- integrity ----------------------------------------------------------------------------------------------


async def test_tampered_file_is_refused_and_nothing_stored(upstream, store, client) -> None:
    good, bad = add_dists(upstream, 2)
    upstream.tamper(bad.filename)
    with pytest.raises(IntegrityError) as exc:
        await fetch([item_for(upstream, good), item_for(upstream, bad)], store, client)
    msg = str(exc.value)
    assert bad.filename in msg and bad.sha256 in msg
    assert not store.has_blob(bad.sha256)
    assert store.has_blob(good.sha256, good.size)  # the other download still finished
    assert stored_files(store) == [store.blob_path(good.sha256)]
    assert tmp_files(store) == []  # no leftover temp file
    assert upstream.count_files() == 2  # an integrity failure is not retried


async def test_announced_oversize_is_refused_before_reading(upstream, store, client) -> None:
    entry = upstream.add_large("big", "1.0", 8 << 20)
    item = FetchItem(upstream.file_url(entry.filename), entry.filename, 1000, entry.sha256, "pypi big 1.0")
    with pytest.raises(
        IntegrityError, match=r"pypi big 1.0: upstream announces \d+ bytes, the lock declares 1000"
    ):
        await fetch([item], store, client)
    assert stored_files(store) == [] and tmp_files(store) == []


async def test_endless_body_stops_reading_early(faults, store, client) -> None:
    route = faults.add("/endless.bin", size=1 << 20, mode="endless")
    with pytest.raises(IntegrityError, match=r"test endless.bin: upstream sent at least \d+ bytes.*stopped"):
        await fetch([route_item(faults, route)], store, client)
    await asyncio.sleep(0.2)  # let the server notice the closed connection
    assert route.sent < 16 << 20  # the client hung up after about the declared size, not 1 TiB later
    assert stored_files(store) == [] and tmp_files(store) == []


# --- retries and failures -----------------------------------------------------------------------------------


async def test_503_then_success_is_retried(upstream, store, client) -> None:
    (entry,) = add_dists(upstream, 1)
    path = f"/files/{entry.filename}"
    upstream.fail(path, times=2, status=503)
    report = await fetch([item_for(upstream, entry)], store, client, retries=3)
    assert report.downloaded == 1
    assert upstream.requests[path] == 3
    assert store.has_blob(entry.sha256, entry.size)


async def test_retries_exhausted_names_artifact_and_attempts(upstream, store, client) -> None:
    (entry,) = add_dists(upstream, 1)
    path = f"/files/{entry.filename}"
    upstream.fail(path, times=10, status=503)
    progress = RecordingProgress()
    with pytest.raises(NetworkError, match=r"pypi pkg0 1.0 \(.*\) \(after 3 attempts\): HTTP 503"):
        await fetch_all(
            [item_for(upstream, entry)], store, client,
            concurrency=2, retries=2, progress=progress, backoff_base=0.01,
        )
    assert upstream.requests[path] == 3
    assert len(progress.notes) == 1 and entry.filename in progress.notes[0]
    assert stored_files(store) == []


async def test_404_fails_fast(upstream, store, client) -> None:
    name = "gone-1.0-py3-none-any.whl"
    item = FetchItem(upstream.file_url(name), name, 10, "a" * 64, "pypi gone 1.0")
    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"pypi gone 1.0: HTTP 404") as exc:
        await fetch([item], store, client, retries=5)
    assert "attempts" not in str(exc.value)
    assert exc.value.hint and "upstream does not have it" in exc.value.hint
    assert upstream.requests["/files/gone-1.0-py3-none-any.whl"] == 1
    assert time.monotonic() - started < 2


async def test_every_failure_is_listed_after_the_rest_finish(upstream, store, client) -> None:
    good, bad, _ = add_dists(upstream, 3)
    upstream.tamper(bad.filename)
    missing = FetchItem(upstream.file_url("gone-1.0.whl"), "gone-1.0.whl", 10, "b" * 64, "pypi gone 1.0")
    with pytest.raises(IntegrityError) as exc:
        await fetch([missing, item_for(upstream, good), item_for(upstream, bad)], store, client)
    msg = str(exc.value)
    assert msg.startswith("2 of 3 downloads failed")
    assert "pypi gone 1.0: HTTP 404" in msg and bad.filename in msg
    assert stored_files(store) == [store.blob_path(good.sha256)]


async def test_network_failures_alone_raise_network_error(upstream, store, client) -> None:
    items = [FetchItem(upstream.file_url(f"gone{i}.whl"), f"gone{i}.whl", 10, f"{i}" * 64, f"pypi gone{i}")
             for i in range(2)]
    expected = r"2 of 2 downloads failed:\n  - pypi gone0: HTTP 404.*\n  - pypi gone1"
    with pytest.raises(NetworkError, match=expected):
        await fetch(items, store, client)


# --- resume -------------------------------------------------------------------------------------------------


async def test_dropped_connection_resumes_with_range(upstream, store, client) -> None:
    entry = upstream.add_large("big", "1.0", 6 << 20)
    path = f"/files/{entry.filename}"
    upstream.drop(path, after=2_500_000)
    progress = RecordingProgress()
    await fetch_all([item_for(upstream, entry)], store, client, concurrency=1, retries=2, progress=progress,
                    backoff_base=0.01)
    assert upstream.range_requests(path) == ["bytes=2500000-"]
    assert store.verify_blob(entry.sha256, entry.size) is None
    assert progress.advanced == entry.size  # resumed bytes are not counted twice
    assert tmp_files(store) == []


async def test_interrupted_download_is_resumed_next_run(upstream, store, client) -> None:
    entry = upstream.add_large("big", "1.0", 4 << 20)
    path = f"/files/{entry.filename}"
    upstream.drop(path, after=1_000_000)
    with pytest.raises(NetworkError, match="RemoteProtocolError"):
        await fetch([item_for(upstream, entry)], store, client, retries=0)
    part = store.tmp_dir / f"{entry.sha256}.part"
    assert part.stat().st_size == 1_000_000
    assert stored_files(store) == []  # nothing under a real name yet

    await fetch([item_for(upstream, entry)], store, client, retries=0)
    assert upstream.range_requests(path) == ["bytes=1000000-"]
    assert store.verify_blob(entry.sha256, entry.size) is None
    assert not part.exists()


async def test_leftover_part_with_foreign_bytes_restarts_from_zero(upstream, store, client) -> None:
    entry = upstream.add_large("big", "1.0", 3 << 20)
    (store.tmp_dir / f"{entry.sha256}.part").write_bytes(b"\0" * 100_000)  # not this file's prefix
    await fetch([item_for(upstream, entry)], store, client)
    ranges = [h.get("range") for _, p, h in upstream.log if p == f"/files/{entry.filename}"]
    assert ranges == ["bytes=100000-", None]  # resumed, found wrong, then one clean download
    assert store.verify_blob(entry.sha256, entry.size) is None


async def test_server_ignoring_range_restarts_from_zero(faults, store, client) -> None:
    route = faults.add("/plain.bin", size=3 << 20, mode="ignore_range")
    (store.tmp_dir / f"{route.sha256}.part").write_bytes(route.body(0, 500_000))
    await fetch([route_item(faults, route)], store, client)
    assert route.ranges == ["bytes=500000-"]  # answered 200 with the whole file, written from zero
    assert store.verify_blob(route.sha256, route.size) is None


async def test_part_longer_than_the_file_is_discarded(faults, store, client) -> None:
    route = faults.add("/f.bin", size=200_000)
    (store.tmp_dir / f"{route.sha256}.part").write_bytes(b"x" * 300_000)
    await fetch([route_item(faults, route)], store, client)
    assert route.ranges == [None]
    assert store.verify_blob(route.sha256, route.size) is None


async def test_complete_part_is_committed_without_a_request(faults, store, client) -> None:
    route = faults.add("/f.bin", size=200_000)
    # a run that crashed after the download, before the rename
    (store.tmp_dir / f"{route.sha256}.part").write_bytes(route.body())
    await fetch([route_item(faults, route)], store, client)
    assert route.ranges == []
    assert store.verify_blob(route.sha256, route.size) is None


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from mirrorctl.ecosystems.base import FetchItem
    from mirrorctl.outside.fetch import FetchReport, fetch_all
    from mirrorctl.progress import SILENT
    from mirrorctl.inside.store import Store

    async def main():
        root, url, size, sha = sys.argv[1:]
        async with httpx.AsyncClient() as client:
            item = FetchItem(url, "slow.bin", int(size), sha, "test slow.bin")
            await fetch_all([item], Store(__import__("pathlib").Path(root)), client,
                            concurrency=1, retries=0, progress=SILENT)

    asyncio.run(main())
    """
)


def test_killed_download_leaves_no_partial_blob_and_resumes(faults, store) -> None:
    # A sync test: it blocks on a child process, then runs the resume in its own event loop.
    route = faults.add("/slow.bin", size=8 << 20, mode="slow", delay=0.01)
    part = store.tmp_dir / f"{route.sha256}.part"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(store.root), faults.url(route.path), str(route.size),
         route.sha256],
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size >= 1 << 20):
            assert child.poll() is None, "the download finished or failed before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert stored_files(store) == []  # killed mid-download: nothing under a real name
    left = part.stat().st_size
    assert 0 < left < route.size

    route.mode = "normal"

    async def resume() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await fetch([route_item(faults, route)], store, client)

    asyncio.run(resume())
    assert route.ranges[-1] == f"bytes={left}-"
    assert store.verify_blob(route.sha256, route.size) is None
    assert tmp_files(store) == []


async def test_waits_for_another_process_working_on_the_same_file(faults, store, client) -> None:
    route = faults.add("/f.bin", size=300_000)
    part = store.tmp_dir / f"{route.sha256}.part"
    fd = os.open(part, os.O_RDWR | os.O_CREAT)  # another process's download of the same blob
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        task = asyncio.create_task(fetch([route_item(faults, route)], store, client))
        await asyncio.sleep(0.5)
        assert not task.done() and route.ranges == []  # waits instead of writing into the same temp file
        os.write(fd, route.body())
        store.commit_blob(part, route.sha256)
    finally:
        os.close(fd)
    await task
    assert route.ranges == []  # the other process finished it: nothing downloaded twice
    assert store.verify_blob(route.sha256, route.size) is None
    assert tmp_files(store) == []


# --- resources ----------------------------------------------------------------------------------------------


async def test_memory_stays_flat_for_a_large_file(upstream, store, client) -> None:
    entry = upstream.add_large("huge", "1.0", 200 << 20)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        await fetch([item_for(upstream, entry)], store, client)
    finally:
        stop.set()
        sampler.join()
    assert store.verify_blob(entry.sha256, entry.size) is None
    growth = (peak - baseline) / 2**20
    assert growth < 50, f"peak RSS grew by {growth:.1f} MiB while fetching a {entry.size >> 20} MiB file"
