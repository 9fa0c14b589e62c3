"""The fixture upstream itself: it must speak the simple API faithfully, or every test built on it lies."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    JSON_TYPE,
    FixtureUpstream,
    negotiate,
    pypi_upstream_factory_fixture,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


def test_json_project_page(pypi_upstream: FixtureUpstream) -> None:
    pypi_upstream.add(Dist("Foo_Bar", "1.0", requires_python=">=3.9"), sdist=True)
    r = httpx.get(pypi_upstream.url + "foo-bar/", headers={"Accept": PIP_ACCEPT})
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE
    doc = r.json()
    assert doc["meta"]["api-version"] == "1.1" and doc["name"] == "foo-bar" and doc["versions"] == ["1.0"]
    whl = next(f for f in doc["files"] if f["filename"].endswith(".whl"))
    body = httpx.get(whl["url"]).content
    assert hashlib.sha256(body).hexdigest() == whl["hashes"]["sha256"] and len(body) == whl["size"]
    assert whl["requires-python"] == ">=3.9"
    meta = httpx.get(whl["url"] + ".metadata").content
    assert hashlib.sha256(meta).hexdigest() == whl["core-metadata"]["sha256"]
    assert b"Name: Foo_Bar" in meta


def test_html_page_and_redirect(pypi_upstream: FixtureUpstream) -> None:
    pypi_upstream.add(Dist("Foo_Bar", "1.0", requires_python=">=3.9"), yanked="broken")
    r = httpx.get(pypi_upstream.url + "Foo_Bar", headers={"Accept": "text/html"}, follow_redirects=True)
    assert r.url.path == "/simple/foo-bar/" and r.headers["content-type"].startswith("text/html")
    assert "#sha256=" in r.text and 'data-requires-python="&gt;=3.9"' in r.text
    assert 'data-core-metadata="sha256=' in r.text and 'data-yanked="broken"' in r.text
    assert httpx.get(pypi_upstream.url, headers={"Accept": JSON_TYPE}).json()["projects"] == [
        {"name": "Foo_Bar"}
    ]


def test_406_and_format_restrictions(pypi_upstream_factory: Callable[..., FixtureUpstream]) -> None:
    up = pypi_upstream_factory(formats=("html",), pep658=False)
    up.add(Dist("a", "1.0"))
    assert httpx.get(up.url + "a/", headers={"Accept": JSON_TYPE}).status_code == 406
    page = httpx.get(up.url + "a/", headers={"Accept": PIP_ACCEPT})
    assert page.headers["content-type"].startswith("application/vnd.pypi.simple.v1+html")
    assert "data-core-metadata" not in page.text
    assert httpx.get(up.file_url("a-1.0-py3-none-any.whl") + ".metadata").status_code == 404
    assert negotiate("image/png", ("json", "html")) is None
    assert negotiate(None, ("json",)) == ("json", JSON_TYPE)


def test_tamper_fail_drop_range(pypi_upstream: FixtureUpstream) -> None:
    (entry,) = pypi_upstream.add(Dist("a", "1.0"))
    path = "/files/" + entry.filename
    url = pypi_upstream.file_url(entry.filename)
    pypi_upstream.fail(path, times=2)
    assert [httpx.get(url).status_code for _ in range(3)] == [503, 503, 200]
    r = httpx.get(url, headers={"Range": "bytes=10-"})
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 10-{entry.size - 1}/{entry.size}"
    assert r.content == entry.data[10:]  # type: ignore[index]
    pypi_upstream.drop(path, after=100)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    pypi_upstream.tamper(entry.filename)
    body = httpx.get(url).content
    assert len(body) == entry.size and hashlib.sha256(body).hexdigest() != entry.sha256
    assert pypi_upstream.count_files(".whl") == 6 and pypi_upstream.range_requests(path) == ["bytes=10-"]


def test_large_wheel_is_valid_and_streamed(pypi_upstream: FixtureUpstream) -> None:
    entry = pypi_upstream.add_large("big", "1.0", 8 * 1024 * 1024)
    h, data = hashlib.sha256(), io.BytesIO()
    rss_before = psutil.Process().memory_info().rss
    with httpx.stream("GET", pypi_upstream.file_url(entry.filename)) as r:
        for chunk in r.iter_bytes():
            h.update(chunk)
            data.write(chunk)
    assert h.hexdigest() == entry.sha256 and data.tell() == entry.size
    assert psutil.Process().memory_info().rss - rss_before < 200 * 1024 * 1024
    with zipfile.ZipFile(data) as zf:
        assert zf.testzip() is None
        assert b"Name: big" in zf.read("big-1.0.dist-info/METADATA")
