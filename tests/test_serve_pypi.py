"""The PyPI simple API of the embedded mirror, over ASGI (no sockets): what pip and uv rely on."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.ecosystems.pypi.serve import HTML_TYPE, JSON_TYPE, negotiate
from mirrorctl.inside.serve import create_app
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact

from .fixtures.store_content import CLOSURE, closure_store, publish_view, wheel_artifact
from .fixtures.wheels import Dist

PIP_ACCEPT = f"{JSON_TYPE}, {HTML_TYPE}; q=0.1, text/html; q=0.01"
BASE = "http://mirror.test"


@pytest.fixture
def served(tmp_path: Path) -> tuple[Store, list[Artifact]]:
    return closure_store(tmp_path / "store", tmp_path / "build")


@pytest.fixture
async def client(served: tuple[Store, list[Artifact]]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(served[0], {"pypi": PypiEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def by_file(arts: list[Artifact], prefix: str) -> Artifact:
    return next(a for a in arts if a.filename.startswith(prefix))


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.anchors.append((self._current, data))
            self._current = None


def anchors(text: str) -> list[tuple[dict[str, str | None], str]]:
    p = Anchors()
    p.feed(text)
    return p.anchors


# --- content negotiation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        (PIP_ACCEPT, JSON_TYPE),
        (f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01", JSON_TYPE),  # uv
        ("text/html", "text/html"),
        (HTML_TYPE, HTML_TYPE),
        (f"{JSON_TYPE};q=0.5, text/html;q=0.9", "text/html"),
        (f"{JSON_TYPE}, text/html", JSON_TYPE),
        ("application/*", JSON_TYPE),
        ("text/*;q=0.3, */*;q=0.1", "text/html"),
        (f"{JSON_TYPE};q=0, */*", "text/html"),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert negotiate(accept, None) == expected


async def test_json_and_html_by_accept_and_format(client: httpx.AsyncClient) -> None:
    r = await client.get("/pypi/simple/mctl-demo-lib/", headers={"Accept": PIP_ACCEPT})
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE
    assert r.headers["vary"] == "Accept"
    r = await client.get("/pypi/simple/mctl-demo-lib/")  # no Accept: */*
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    r = await client.get("/pypi/simple/mctl-demo-lib/", headers={"Accept": HTML_TYPE})
    assert r.headers["content-type"] == HTML_TYPE
    r = await client.get(
        "/pypi/simple/mctl-demo-lib/", params={"format": JSON_TYPE}, headers={"Accept": "text/html"}
    )
    assert r.headers["content-type"] == JSON_TYPE


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/pypi/simple/mctl-demo-lib/", {"Accept": "application/json"}),
        ("/pypi/simple/mctl-demo-lib/", {"Accept": "text/html;q=0, application/xml"}),
        ("/pypi/simple/", {"Accept": "image/png"}),
        ("/pypi/simple/mctl-demo-lib/?format=application/json", {}),
    ],
)
async def test_unsupported_types_get_406(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    r = await client.get(path, headers=headers)
    assert r.status_code == 406
    assert "406 Not Acceptable" in r.text and JSON_TYPE in r.text and "text/html" in r.text


# --- project list and detail --------------------------------------------------------------------------------


async def test_project_list(client: httpx.AsyncClient) -> None:
    r = await client.get("/pypi/simple/", headers={"Accept": JSON_TYPE})
    doc = r.json()
    assert doc["meta"] == {"api-version": "1.1"}
    assert [p["name"] for p in doc["projects"]] == [
        "Mctl-Demo.App",
        "mctl-demo-base",
        "mctl_demo_fast",
        "mctl-demo-lib",
    ]
    r = await client.get("/pypi/simple/")
    links = anchors(r.text)
    assert [(a["href"], text) for a, text in links] == [
        ("mctl-demo-app/", "Mctl-Demo.App"),
        ("mctl-demo-base/", "mctl-demo-base"),
        ("mctl-demo-fast/", "mctl_demo_fast"),
        ("mctl-demo-lib/", "mctl-demo-lib"),
    ]
    assert '<meta name="pypi:repository-version" content="1.1">' in r.text


async def test_project_json_carries_hashes_sizes_versions_and_metadata(
    client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]
) -> None:
    _, arts = served
    url = "/pypi/simple/mctl-demo-lib/"
    doc = (await client.get(url, headers={"Accept": JSON_TYPE})).json()
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "mctl-demo-lib"
    assert doc["versions"] == ["1.0.0", "2.1.0"]
    assert [f["filename"] for f in doc["files"]] == [
        "mctl_demo_lib-1.0.0-py3-none-any.whl",
        "mctl_demo_lib-2.1.0-py3-none-any.whl",
    ]
    newest = doc["files"][1]
    art = by_file(arts, "mctl_demo_lib-2.1.0")
    meta = art.companions[0]
    assert newest["hashes"] == {"sha256": art.sha256}
    assert newest["size"] == art.size
    assert newest["requires-python"] == ">=3.8, <4"
    assert newest["core-metadata"] == {"sha256": meta.sha256}
    assert newest["dist-info-metadata"] == {"sha256": meta.sha256}
    assert "yanked" not in newest
    # The relative URL resolves to the file, whose bytes have the advertised digest; and so does its metadata.
    file_url = urljoin(BASE + url, newest["url"])
    body = (await client.get(file_url)).content
    assert hashlib.sha256(body).hexdigest() == art.sha256 and len(body) == art.size
    metadata = await client.get(file_url + ".metadata")
    assert metadata.status_code == 200
    assert hashlib.sha256(metadata.content).hexdigest() == meta.sha256
    assert b"Requires-Dist: mctl-demo-base<2" in metadata.content


async def test_project_html_anchors(client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]) -> None:
    _, arts = served
    r = await client.get("/pypi/simple/mctl-demo-lib/", headers={"Accept": "text/html"})
    # data-requires-python is HTML-escaped in the raw text, and the parser gives the real value back.
    assert 'data-requires-python="&gt;=3.8, &lt;4"' in r.text
    links = anchors(r.text)
    assert [text for _, text in links] == [
        "mctl_demo_lib-1.0.0-py3-none-any.whl",
        "mctl_demo_lib-2.1.0-py3-none-any.whl",
    ]
    attrs, text = links[1]
    art = by_file(arts, "mctl_demo_lib-2.1.0")
    assert attrs["href"] == f"../../files/{art.sha256}/{text}#sha256={art.sha256}"
    assert attrs["data-requires-python"] == ">=3.8, <4"
    assert attrs["data-core-metadata"] == f"sha256={art.companions[0].sha256}"
    assert attrs["data-dist-info-metadata"] == f"sha256={art.companions[0].sha256}"
    page = (await client.get("/pypi/simple/mctl-demo-base/")).text
    sdist = next(a for a, _ in anchors(page) if ".tar.gz" in str(a["href"]))
    assert "data-core-metadata" not in sdist and "data-requires-python" not in sdist  # no companion, no rp


async def test_yanked_files_are_marked(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    art = wheel_artifact(store, Dist("oldthing", "1.0"), tmp_path / "b")
    yanked = Artifact(
        art.ecosystem,
        art.name,
        art.version,
        art.filename,
        art.size,
        art.sha256,
        attrs={**art.attrs, "yanked": "broken <build>"},
        companions=art.companions,
    )
    publish_view(store, [yanked])
    app = create_app(store, {"pypi": PypiEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        doc = (await c.get("/pypi/simple/oldthing/", headers={"Accept": JSON_TYPE})).json()
        assert doc["files"][0]["yanked"] == "broken <build>"
        html = (await c.get("/pypi/simple/oldthing/")).text
        assert 'data-yanked="broken &lt;build&gt;"' in html


# --- names, redirects, 404 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/pypi/simple", "/pypi/simple/"),
        ("/pypi/simple/mctl-demo-app", "/pypi/simple/mctl-demo-app/"),
        ("/pypi/simple/Mctl_Demo.App/", "/pypi/simple/mctl-demo-app/"),
        ("/pypi/simple/MCTL--DEMO__APP", "/pypi/simple/mctl-demo-app/"),
        ("/pypi/simple/Mctl.Demo.App/?format=text/html", "/pypi/simple/mctl-demo-app/?format=text/html"),
    ],
)
async def test_non_normalized_urls_redirect(client: httpx.AsyncClient, path: str, location: str) -> None:
    r = await client.get(path)
    assert r.status_code == 301
    assert r.headers["location"] == location  # a path on this server: never built from the Host header
    followed = await client.get(path, follow_redirects=True)
    assert followed.status_code == 200


@pytest.mark.parametrize("name", ["requests", "not-mirrored", "Not_Mirrored"])
async def test_unknown_projects_are_404_never_upstream(client: httpx.AsyncClient, name: str) -> None:
    r = await client.get(f"/pypi/simple/{name}/", follow_redirects=True)
    assert r.status_code == 404
    assert "is not in this mirror" in r.text


@pytest.mark.parametrize(
    "path", ["/pypi/simple/..%2F..%2Fetc/", "/pypi/simple/-bad-/", "/pypi/simple/a%00b/"]
)
async def test_names_outside_pep508_are_404_without_redirect(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404


# --- files --------------------------------------------------------------------------------------------------


async def test_file_headers_etag_and_conditional_get(
    client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]
) -> None:
    _, arts = served
    wheel = by_file(arts, "mctl_demo_base-1.5.0-py3")
    sdist = by_file(arts, "mctl_demo_base-1.5.0.tar.gz")
    r = await client.get(f"/pypi/files/{wheel.sha256}/{wheel.filename}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["etag"] == f'"{wheel.sha256}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert "immutable" in r.headers["cache-control"]
    assert int(r.headers["content-length"]) == wheel.size
    r = await client.get(f"/pypi/files/{sdist.sha256}/{sdist.filename}")
    assert r.headers["content-type"] == "application/gzip" and "content-encoding" not in r.headers
    assert hashlib.sha256(r.content).hexdigest() == sdist.sha256
    r = await client.get(
        f"/pypi/files/{wheel.sha256}/{wheel.filename}", headers={"If-None-Match": f'"{wheel.sha256}"'}
    )
    assert r.status_code == 304 and r.content == b""
    r = await client.head(f"/pypi/files/{wheel.sha256}/{wheel.filename}")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) == wheel.size


async def test_range_requests(client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]) -> None:
    store, arts = served
    wheel = by_file(arts, "mctl_demo_app-")
    data = store.blob_path(wheel.sha256).read_bytes()
    url = f"/pypi/files/{wheel.sha256}/{wheel.filename}"
    r = await client.get(url, headers={"Range": "bytes=10-99"})
    assert r.status_code == 206
    assert r.content == data[10:100]
    assert r.headers["content-range"] == f"bytes 10-99/{wheel.size}"
    r = await client.get(url, headers={"Range": "bytes=-16"})
    assert r.status_code == 206 and r.content == data[-16:]
    r = await client.get(url, headers={"Range": f"bytes={wheel.size - 5}-"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = await client.get(url, headers={"Range": f"bytes={wheel.size}-{wheel.size + 10}"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{wheel.size}"
    # If-Range with the ETag resumes; with a stale validator the whole file comes back.
    r = await client.get(url, headers={"Range": "bytes=0-3", "If-Range": f'"{wheel.sha256}"'})
    assert r.status_code == 206 and r.content == data[:4]
    r = await client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"something-else"'})
    assert r.status_code == 200 and r.content == data


@pytest.mark.parametrize(
    "variant",
    ["wrong-name", "other-sha", "bad-sha", "metadata-of-sdist", "unknown-companion", "traversal"],
)
async def test_file_refusals(
    client: httpx.AsyncClient, served: tuple[Store, list[Artifact]], variant: str
) -> None:
    _, arts = served
    wheel = by_file(arts, "mctl_demo_app-")
    other = by_file(arts, "mctl_demo_lib-2")
    sdist = by_file(arts, "mctl_demo_base-1.5.0.tar.gz")
    path = {
        "wrong-name": f"/pypi/files/{wheel.sha256}/{other.filename}",
        "other-sha": f"/pypi/files/{'0' * 64}/{wheel.filename}",
        "bad-sha": f"/pypi/files/{wheel.sha256.upper()}/{wheel.filename}",
        "metadata-of-sdist": f"/pypi/files/{sdist.sha256}/{sdist.filename}.metadata",
        "unknown-companion": f"/pypi/files/{wheel.sha256}/{wheel.filename}.asc",
        "traversal": f"/pypi/files/{wheel.sha256}/..%2F..%2Fviews",
    }[variant]
    r = await client.get(path)
    assert r.status_code == 404


async def test_missing_blob_is_a_503_that_names_it(
    client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]
) -> None:
    store, arts = served
    wheel = by_file(arts, "mctl_demo_app-")
    store.blob_path(wheel.sha256).unlink()
    r = await client.get(f"/pypi/files/{wheel.sha256}/{wheel.filename}")
    assert r.status_code == 503
    assert wheel.sha256 in r.text and wheel.filename in r.text


# --- the served view follows `current` ----------------------------------------------------------------------


async def test_view_switch_is_seen_by_the_next_request(
    client: httpx.AsyncClient, served: tuple[Store, list[Artifact]], tmp_path: Path
) -> None:
    store, arts = served
    old_app = by_file(arts, "mctl_demo_app-")
    assert (await client.get("/pypi/simple/mctl-demo-new/")).status_code == 404
    new = wheel_artifact(store, Dist("mctl-demo-new", "0.1"), tmp_path / "build2")
    keep = [a for a in arts if a.name != CLOSURE[0].name]
    publish_view(store, [*keep, new], sequence=2)

    r = await client.get("/pypi/simple/mctl-demo-new/", headers={"Accept": JSON_TYPE})
    assert r.status_code == 200 and r.json()["files"][0]["filename"] == new.filename
    assert (await client.get("/pypi/simple/mctl-demo-app/")).status_code == 404
    # A file that left the view is no longer served, though its blob is still in the store.
    assert (await client.get(f"/pypi/files/{old_app.sha256}/{old_app.filename}")).status_code == 404
    assert store.has_blob(old_app.sha256)


async def test_empty_store_serves_empty_indexes(tmp_path: Path) -> None:
    app = create_app(Store(tmp_path / "nothing"), {"pypi": PypiEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/pypi/simple/", headers={"Accept": JSON_TYPE})
        assert r.status_code == 200 and r.json()["projects"] == []
        assert (await c.get("/pypi/simple/anything/")).status_code == 404
        assert (await c.get(f"/pypi/files/{'a' * 64}/x-1.0-py3-none-any.whl")).status_code == 404
