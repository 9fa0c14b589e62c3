"""The one retry helper (mirrorctl.net.retrying, RetryPolicy) against a scripted server on 127.0.0.1: Retry-After
in both forms and capped, a bounded attempt count carried on the error, bounded jitter, final statuses at once;
and the same behaviour through every upstream client that uses it (fetch, PyPI index, npm registry, apt)."""

from __future__ import annotations

import email.utils
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.ecosystems.apt.lock import _Bounded, _get
from mirrorctl.ecosystems.base import FetchItem
from mirrorctl.ecosystems.npm.registry import RegistryClient
from mirrorctl.ecosystems.pypi.index import IndexClient
from mirrorctl.errors import DigestMismatch, IntegrityError, NetworkError
from mirrorctl.inside.store import Store
from mirrorctl.net import MAX_RETRIES, RetryPolicy, retry_after, retrying
from mirrorctl.outside.fetch import fetch_all
from mirrorctl.progress import SILENT
from tests.fixtures.fixture_server import FixtureServer, Request, Response


@dataclass
class Script:
    """Answers for one path, in order; the last one repeats. Each is (status, headers)."""

    answers: list[tuple[int, dict[str, str]]]
    body: bytes = b"ok\n"


@dataclass
class ScriptedServer:
    """Paths of a fixture server that answer scripted statuses and headers (Retry-After), with the time of
    each request."""

    server: FixtureServer
    scripts: dict[str, Script] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> Counter[str]:
        return self.server.requests

    def script(self, path: str, *answers: tuple[int, dict[str, str]], body: bytes = b"ok\n") -> str:
        self.scripts[path] = Script(list(answers), body)
        return self.url + path

    def answer(self, req: Request) -> Response:
        seen = self.times.setdefault(req.path, [])
        seen.append(time.monotonic())
        script = self.scripts.get(req.path)
        if script is None:
            return Response(404, b"no such path\n")
        status, headers = script.answers[min(len(seen) - 1, len(script.answers) - 1)]
        body = script.body if status == 200 else b"scripted failure\n"
        return Response(status, body, content_type="application/octet-stream", headers=dict(headers))


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer(FixtureServer(name="scripted server"))
    scripted.server.route("/", scripted.answer, prefix=True)
    with scripted.server:
        yield scripted


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


class Sleeps:
    """An injected sleep that records what the helper asked for and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def getter(client: httpx.AsyncClient, url: str) -> Any:
    async def get() -> bytes:
        resp = await client.get(url)
        resp.raise_for_status()
        return resp.content

    return get


OK: tuple[int, dict[str, str]] = (200, {})


def unavailable(after: str | None = None) -> tuple[int, dict[str, str]]:
    return (503, {"Retry-After": after} if after is not None else {})


# --- the policy --------------------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("7", now=now) == 7.0
    assert retry_after(" 0 ", now=now) == 0.0
    assert retry_after("Tue, 01 Dec 2026 12:00:30 GMT", now=now) == 30.0
    assert retry_after("Tue, 01 Dec 2026 11:00:00 GMT", now=now) == 0.0  # in the past: at once
    for unreadable in (None, "", "soon", "-5", "1.5", "Tue, 99 Foo 2026"):
        assert retry_after(unreadable, now=now) is None, unreadable


def test_jitter_stays_within_half_and_all_of_the_backoff() -> None:
    policy = RetryPolicy(retries=8, base=0.5, cap=4.0)
    rng = random.Random(11)
    for attempt in range(1, 9):
        backoff = min(4.0, 0.5 * 2 ** (attempt - 1))
        waits = [policy.delay(attempt, rng=rng) for _ in range(500)]
        assert all(backoff / 2 <= w <= backoff for w in waits), attempt
        assert max(waits) - min(waits) > backoff / 4, "the waits are spread, not one fixed value"


def test_retry_after_wins_over_a_shorter_backoff_and_is_capped() -> None:
    def answer(after: str) -> httpx.HTTPStatusError:
        request = httpx.Request("GET", "http://127.0.0.1:9/x")
        response = httpx.Response(503, headers={"Retry-After": after}, request=request)
        return httpx.HTTPStatusError("503", request=request, response=response)

    policy = RetryPolicy(retries=3, base=0.01, cap=5.0)
    assert policy.delay(1, answer("3")) == 3.0
    assert policy.delay(1, answer("3600")) == 5.0  # a server asking for an hour waits only the cap
    now = datetime.now(UTC)
    date = email.utils.format_datetime(now + timedelta(seconds=4), usegmt=True)
    assert 2.5 <= policy.delay(1, answer(date), now=now) <= 4.0


def test_the_attempt_count_is_bounded_whatever_is_configured() -> None:
    assert RetryPolicy(retries=0).attempts == 1
    assert RetryPolicy(retries=3).attempts == 4
    assert RetryPolicy(retries=10_000).attempts == MAX_RETRIES + 1


# --- the helper against a server ---------------------------------------------------------------------------


async def test_retry_after_seconds_is_honoured(server: ScriptedServer, client: httpx.AsyncClient) -> None:
    url = server.script("/page", unavailable("1"), OK)
    started = time.monotonic()
    body = await retrying(getter(client, url), "page", RetryPolicy(retries=2, base=0.01))
    assert body == b"ok\n"
    first, second = server.times["/page"]
    assert second - first >= 1.0, "the second request came before the server's Retry-After"
    assert time.monotonic() - started < 5


async def test_retry_after_http_date_is_honoured_and_capped(
    server: ScriptedServer, client: httpx.AsyncClient
) -> None:
    soon = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    late = email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    url = server.script("/dated", unavailable(soon), unavailable(late), OK)
    sleeps = Sleeps()
    await retrying(getter(client, url), "dated", RetryPolicy(retries=3, base=0.01, cap=60.0), sleep=sleeps)
    assert len(sleeps.asked) == 2
    assert 1.0 <= sleeps.asked[0] <= 3.0
    assert sleeps.asked[1] == 60.0  # two hours asked, the cap given
    assert server.requests["/dated"] == 3


async def test_gives_up_after_the_bound_with_the_attempts_on_the_error(
    server: ScriptedServer, client: httpx.AsyncClient
) -> None:
    url = server.script("/down", unavailable("0"))
    sleeps = Sleeps()
    with pytest.raises(NetworkError) as info:
        await retrying(getter(client, url), "pypi project page down", RetryPolicy(retries=3), sleep=sleeps)
    err = info.value
    assert (err.attempts, err.status, err.url, err.what) == (4, 503, url, "pypi project page down")
    assert err.reason is None
    assert str(err) == f"pypi project page down (after 4 attempts): HTTP 503 from {url}"
    assert err.hint and "try again later" in err.hint
    assert server.requests["/down"] == 4 and len(sleeps.asked) == 3


@pytest.mark.parametrize("status", [404, 401, 403, 400])
async def test_final_statuses_fail_at_once(server: ScriptedServer, client: httpx.AsyncClient, status: int) -> None:
    url = server.script("/final", (status, {"Retry-After": "1"}))
    sleeps = Sleeps()
    with pytest.raises(NetworkError) as info:
        await retrying(getter(client, url), "thing", RetryPolicy(retries=5), sleep=sleeps)
    assert (info.value.attempts, info.value.status) == (1, status)
    assert "attempts" not in str(info.value)
    assert server.requests["/final"] == 1 and sleeps.asked == []


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
async def test_transient_statuses_are_retried(server: ScriptedServer, client: httpx.AsyncClient, status: int) -> None:
    url = server.script("/flaky", (status, {}), OK)
    sleeps = Sleeps()
    assert await retrying(getter(client, url), "flaky", RetryPolicy(retries=1), sleep=sleeps) == b"ok\n"
    assert server.requests["/flaky"] == 2 and len(sleeps.asked) == 1


async def test_an_unreachable_upstream_carries_the_transport_failure(client: httpx.AsyncClient) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    sleeps = Sleeps()
    with pytest.raises(NetworkError) as info:
        await retrying(getter(client, url), "x", RetryPolicy(retries=2), sleep=sleeps)
    err = info.value
    assert (err.attempts, err.status, err.reason, err.url) == (3, None, "ConnectError", url)
    assert str(err).startswith(f"x (after 3 attempts): ConnectError talking to {url}")


async def test_other_exceptions_pass_through_untouched() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise IntegrityError("bad bytes")

    with pytest.raises(IntegrityError, match="bad bytes"):
        await retrying(broken, "x", RetryPolicy(retries=5), sleep=Sleeps())
    assert calls == 1


# --- every upstream client uses it -------------------------------------------------------------------------


async def test_fetch_honours_retry_after_and_counts_attempts(
    server: ScriptedServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    import hashlib

    body = b"payload bytes\n"
    store = Store(tmp_path / "store")
    url = server.script("/f.bin", unavailable("1"), OK, body=body)
    item = FetchItem(url, "f.bin", len(body), hashlib.sha256(body).hexdigest(), "test f 1.0 (f.bin)")
    await fetch_all([item], store, client, concurrency=1, retries=2, progress=SILENT, backoff_base=0.01)
    first, second = server.times["/f.bin"]
    assert second - first >= 1.0
    assert store.has_blob(item.sha256, item.size)

    down = server.script("/g.bin", unavailable("0"))
    gone = FetchItem(down, "g.bin", 10, "c" * 64, "test g 1.0 (g.bin)")
    with pytest.raises(NetworkError) as info:
        await fetch_all([gone], store, client, concurrency=1, retries=2, progress=SILENT, backoff_base=0.01)
    assert (info.value.attempts, info.value.status, info.value.what) == (3, 503, "test g 1.0 (g.bin)")
    assert server.requests["/g.bin"] == 3
    assert not store.has_blob("c" * 64, 10) and list(store.tmp_dir.iterdir()) == []


async def test_fetch_digest_mismatch_carries_expected_and_actual(
    server: ScriptedServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    import hashlib

    body = b"other bytes!\n"
    store = Store(tmp_path / "store")
    url = server.script("/t.bin", OK, body=body)
    item = FetchItem(url, "t.bin", len(body), "d" * 64, "test t 1.0 (t.bin)")
    with pytest.raises(DigestMismatch) as info:
        await fetch_all([item], store, client, concurrency=1, retries=0, progress=SILENT)
    err = info.value
    assert err.artifact == "test t 1.0 (t.bin)" and err.url == url
    assert dict(err.expected) == {"sha256": "d" * 64}
    assert dict(err.actual) == {"sha256": hashlib.sha256(body).hexdigest()}
    assert (err.expected_size, err.actual_size) == (len(body), len(body))
    assert str(err) == (
        f"test t 1.0 (t.bin): the file from {url} does not match the lock: "
        f"sha256 {hashlib.sha256(body).hexdigest()} (expected {'d' * 64})"
    )
    assert list(store.tmp_dir.iterdir()) == [] and not store.has_blob("d" * 64, len(body))


async def test_pypi_index_client_retries_through_the_helper(
    server: ScriptedServer, client: httpx.AsyncClient
) -> None:
    server.script("/simple/down/", unavailable("0"))
    index = IndexClient(client, server.url + "/simple/", retries=2)
    try:
        with pytest.raises(NetworkError) as info:
            await index.project("down")
    finally:
        await index.close()
    assert (info.value.attempts, info.value.status) == (3, 503)
    assert server.requests["/simple/down/"] == 3

    server.script("/simple/private/", (401, {}))
    index = IndexClient(client, server.url + "/simple/", retries=2)
    try:
        with pytest.raises(NetworkError) as info:
            await index.project("private")
    finally:
        await index.close()
    assert (info.value.attempts, info.value.status) == (1, 401)
    assert server.requests["/simple/private/"] == 1


async def test_npm_registry_client_retries_through_the_helper(
    server: ScriptedServer, client: httpx.AsyncClient
) -> None:
    server.script("/down", unavailable("0"))
    registry = RegistryClient(client, server.url + "/", retries=1, abbreviated=False)
    try:
        with pytest.raises(NetworkError) as info:
            await registry.packument("down")
    finally:
        await registry.close()
    assert (info.value.attempts, info.value.status) == (2, 503)
    assert str(info.value).startswith("npm down (packument) (after 2 attempts): HTTP 503")
    assert server.requests["/down"] == 2


async def test_apt_index_get_retries_through_the_helper(server: ScriptedServer, client: httpx.AsyncClient) -> None:
    url = server.script("/dists/stable/InRelease", unavailable("0"), unavailable("0"), OK)
    got = await _get(client, url, "apt suite stable InRelease", 2, lambda: _Bounded("InRelease", url, 1000))
    assert got == b"ok\n" and server.requests["/dists/stable/InRelease"] == 3

    gone = server.script("/dists/gone/InRelease", (404, {}))
    with pytest.raises(NetworkError) as info:
        await _get(client, gone, "apt suite gone InRelease", 4, lambda: _Bounded("InRelease", gone, 1000))
    assert (info.value.attempts, info.value.status) == (1, 404)
    assert server.requests["/dists/gone/InRelease"] == 1
