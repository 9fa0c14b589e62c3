"""The fixture server every fixture upstream runs on: its knobs must do what they say, or the fault tests built on
them prove nothing."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.fixture_server import FixtureServer, Request, Response, parse_range

BODY = bytes(range(256)) * 1024  # 256 KiB: several chunks


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    srv = FixtureServer(name="test server")
    srv.route("/f/", lambda req: Response(body=BODY, content_type="application/octet-stream", ranges=True),
              prefix=True)
    srv.route("/f/exact", lambda req: Response(body=b"exact"))
    srv.route("/echo", lambda req: Response(body=f"{req.method} {req.raw_path} {req.path} {dict(req.query)}".encode()))
    with srv:
        yield srv


def test_routes_exact_before_prefix_and_404(server: FixtureServer) -> None:
    assert httpx.get(server.url + "/f/exact").content == b"exact"
    assert httpx.get(server.url + "/f/other").content == BODY
    assert httpx.get(server.url + "/nothing").status_code == 404
    r = httpx.get(server.url + "/echo?a=1&a=2")
    assert r.text == "GET /echo /echo {'a': ['1', '2']}"
    head = httpx.head(server.url + "/f/x")
    assert head.headers["content-length"] == str(len(BODY)) and head.content == b""


def test_fail_counts_down_and_logs(server: FixtureServer) -> None:
    server.fail("/f/a", status=502, times=2)
    assert [httpx.get(server.url + "/f/a").status_code for _ in range(3)] == [502, 502, 200]
    assert server.requests["/f/a"] == 3 and [m for m, p, _ in server.log if p == "/f/a"] == ["GET"] * 3


def test_knobs_match_raw_or_decoded_path_and_log_as_configured() -> None:
    raw = FixtureServer(raw_paths=True)
    raw.route("/", lambda req: Response(body=req.path.encode()), prefix=True)
    raw.fail("/@a/b")  # the decoded form matches every spelling
    with raw:
        assert httpx.get(raw.url + "/@a%2fb").status_code == 503
        assert httpx.get(raw.url + "/@a%2Fb").text == "/@a/b"
    assert raw.requests == {"/@a%2fb": 1, "/@a%2Fb": 1}


def test_drop_sends_some_bytes_then_closes(server: FixtureServer) -> None:
    server.drop("/f/a", after=1000)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/f/a")
    assert httpx.get(server.url + "/f/a").content == BODY  # once only


def test_delay_waits_before_answering(server: FixtureServer) -> None:
    server.delay("/f/a", 0.3, times=1)
    started = time.monotonic()
    assert httpx.get(server.url + "/f/a").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    httpx.get(server.url + "/f/a")
    assert time.monotonic() - started < 0.3
    server.delay("/f/a", 2)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.url + "/f/a", timeout=0.2)


def test_tamper_same_size_other_bytes_then_untamper(server: FixtureServer) -> None:
    server.tamper("/f/a")
    body = httpx.get(server.url + "/f/a").content
    assert len(body) == len(BODY) and body != BODY and body[1:] == BODY[1:]
    assert httpx.get(server.url + "/f/b").content == BODY
    server.untamper("/f/a")
    assert hashlib.sha256(httpx.get(server.url + "/f/a").content).digest() == hashlib.sha256(BODY).digest()


def test_ranges_answered_or_ignored(server: FixtureServer) -> None:
    r = httpx.get(server.url + "/f/a", headers={"Range": "bytes=100-"})
    assert r.status_code == 206 and r.content == BODY[100:]
    assert r.headers["content-range"] == f"bytes 100-{len(BODY) - 1}/{len(BODY)}"
    assert httpx.get(server.url + "/f/a", headers={"Range": f"bytes={len(BODY)}-"}).status_code == 416
    assert httpx.get(server.url + "/f/exact", headers={"Range": "bytes=1-"}).status_code == 200  # not a ranged route
    server.ranges = False
    r = httpx.get(server.url + "/f/a", headers={"Range": "bytes=100-"})
    assert r.status_code == 200 and r.content == BODY
    assert parse_range("bytes=-10", 100) == (90, 100) and parse_range("bytes=5-9", 100) == (5, 10)
    assert parse_range("bytes=200-", 100) is None


def test_unknown_length_body_ends_with_the_connection() -> None:
    srv = FixtureServer()
    srv.route("/s", lambda req: Response(stream=lambda start, end: iter([b"a" * 10, b"b" * 10]), size=None))
    with srv:
        r = httpx.get(srv.url + "/s")
    assert r.content == b"a" * 10 + b"b" * 10 and "content-length" not in r.headers


def test_stop_ends_keep_alive_connections() -> None:
    srv = FixtureServer()
    srv.route("/x", lambda req: Response(body=b"x"))
    srv.start()
    with httpx.Client() as client:
        assert client.get(srv.url + "/x").content == b"x"  # the connection stays open in the pool
        srv.stop()
        with pytest.raises(httpx.TransportError):
            client.get(srv.url + "/x")
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1])), 1):
        pass


def test_request_shape() -> None:
    seen: list[Request] = []
    srv = FixtureServer()
    srv.route("/p", lambda req: (seen.append(req), Response(status=204))[1])
    with srv:
        assert httpx.post(srv.url + "/p?q=1", content=b"body", headers={"X-Thing": "v"}).status_code == 204
    (req,) = seen
    assert (req.method, req.path, req.query["q"], req.headers["x-thing"]) == ("POST", "/p", ["1"], "v")
