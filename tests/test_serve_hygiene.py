"""Issue 12, item 5: what a request can make the mirror say. A redirect's Location is a path on this server,
never built from the request's Host header; a 404 echoes at most a few hundred characters of the request path,
escaped. The store is only read. And two files with the same bytes are both served."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.ecosystems.apt import AptEcosystem
from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.ecosystems.pypi.spec import artifact_path
from mirrorctl.inside.serve import create_app
from mirrorctl.inside.store import Store

from .fixtures.bundles import ECOSYSTEMS, NOW, Dist, fingerprint, make_lock, make_world
from .fixtures.store_content import closure_store

HOSTILE = "evil.example"


def client(store: Store, channels: list[str] | None = None) -> httpx.AsyncClient:
    ecosystems = {"pypi": PypiEcosystem(), "npm": NpmEcosystem(), "apt": AptEcosystem()}
    app = create_app(store, ecosystems, channels=channels)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test")


@pytest.mark.parametrize("channels", [None, ["current", "stable"]])
@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/pypi/simple", "/pypi/simple/"),
        ("/pypi/simple/Mctl_Demo.App", "/pypi/simple/mctl-demo-app/"),
        ("/pypi/simple/Mctl.Demo.App/?format=text/html", "/pypi/simple/mctl-demo-app/?format=text/html"),
        ("/healthz/", "/healthz"),  # Starlette's own slash redirect, absolute by itself
    ],
)
async def test_redirects_never_carry_the_host_header(
    tmp_path: Path, channels: list[str] | None, path: str, location: str
) -> None:
    store, _ = closure_store(tmp_path / "store", tmp_path / "build")
    prefix = "/current" if channels and not path.startswith("/healthz") else ""
    before = fingerprint(store)
    async with client(store, channels) as c:
        r = await c.get(prefix + path, headers={"Host": HOSTILE})
    assert r.status_code in (301, 307), r.text
    assert r.headers["location"] == prefix + location
    assert HOSTILE not in r.headers["location"] and HOSTILE not in r.text
    assert fingerprint(store) == before


async def test_a_redirect_is_never_to_another_host(tmp_path: Path) -> None:
    store, _ = closure_store(tmp_path / "store", tmp_path / "build")
    async with client(store) as c:
        r = await c.get("/pypi/simple", headers={"Host": f"{HOSTILE}:443"})
        slash = await c.get("//pypi/simple", headers={"Host": HOSTILE})
    assert r.headers["location"] == "/pypi/simple/"
    assert not slash.headers.get("location", "/").startswith("//")


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/pypi/simple/" + "a" * 60_000 + "/", "project 'aaaa"),
        ("/pypi/files/" + "0" * 64 + "/" + "b" * 60_000, "file 'bbbb"),
        ("/apt/dists/" + "c" * 60_000, "not found: dists/cccc"),
        ("/apt/dists/x%07%1b[2J" + "d" * 60_000, "not found: dists/x\\x07\\x1b[2J"),
        ("/npm/" + "e" * 60_000, '{"error":"Not found"}'),
    ],
)
async def test_a_404_echoes_a_bounded_escaped_path(tmp_path: Path, path: str, said: str) -> None:
    store, _ = closure_store(tmp_path / "store", tmp_path / "build")
    before = fingerprint(store)
    async with client(store) as c:
        r = await c.get(path)
    assert r.status_code == 404
    assert len(r.content) < 500, len(r.content)
    assert r.text.startswith(said), r.text[:80]
    assert "\x1b" not in r.text and "\x07" not in r.text  # no terminal control characters echoed raw
    if not said.startswith("{"):
        assert "(600" in r.text  # the cut echo says how long the path was
    assert fingerprint(store) == before


async def test_equal_bytes_at_two_paths_are_both_served_after_export_and_import(tmp_path: Path) -> None:
    """Two files of one profile with the same sha256 (a wheel published twice under two names): both cross the
    gap, both stay in the view, and the mirror serves each under its own name (the file route looked them up by
    sha256 alone, so one of them was a 404)."""
    world = make_world(tmp_path, dists=(Dist("alpha", "1.0"),))
    wheel = world.artifacts[0]
    twin_name = wheel.filename.replace("alpha-1.0", "alpha_twin-1.0")
    twin = replace(wheel, name="alpha-twin", path=artifact_path("alpha-twin", twin_name), companions=())
    world.locks = [make_lock("web", [wheel, twin])]
    import_bundle(world.export(), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    view = world.inside.current_view()
    assert view is not None and sorted(a.filename for a in view.artifacts) == sorted([wheel.filename, twin_name])

    data = world.outside.blob_path(wheel.sha256).read_bytes()
    async with client(world.inside) as c:
        for project, filename in (("alpha", wheel.filename), ("alpha-twin", twin_name)):
            page = await c.get(f"/pypi/simple/{project}/")
            assert page.status_code == 200 and filename in page.text
            r = await c.get(f"/pypi/files/{wheel.sha256}/{filename}")
            assert r.status_code == 200, (filename, r.text)
            assert r.content == data
        meta = await c.get(f"/pypi/files/{wheel.sha256}/{wheel.filename}.metadata")
        assert meta.status_code == 200  # the companion of the one that has it
        assert (await c.get(f"/pypi/files/{wheel.sha256}/{twin_name}.metadata")).status_code == 404


@pytest.mark.parametrize("channels", [None, ["current", "stable"]])
async def test_npm_tarball_urls_come_from_the_configured_base_url_not_the_host(
    tmp_path: Path, channels: list[str] | None
) -> None:
    from mirrorctl.config import ConfigRef
    from mirrorctl.ecosystems.npm.serve import parse_serve_options

    from .fixtures.npm_registry import PkgSpec
    from .fixtures.npm_store import npm_artifact
    from .fixtures.store_content import publish_view

    store = Store(tmp_path / "store")
    publish_view(store, [npm_artifact(store, PkgSpec("left-pad", "1.3.0"))])
    if channels:
        store.switch_channel("stable", store.current_view_id() or "")
    ref = ConfigRef(tmp_path / "mirrorctl.toml", "serve.npm")
    options = {"npm": parse_serve_options({"base-url": "https://mirror.internal/proxy/"}, ref)}
    app = create_app(store, {"npm": NpmEcosystem()}, channels=channels, options=options)
    prefix = "/stable" if channels else ""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        doc = (await c.get(f"{prefix}/npm/left-pad", headers={"Host": HOSTILE})).json()
    tarball = doc["versions"]["1.3.0"]["dist"]["tarball"]
    assert tarball.startswith(f"https://mirror.internal/proxy{prefix}/npm/left-pad/-/left-pad-1.3.0.tgz"), tarball
    assert HOSTILE not in json.dumps(doc)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("ftp://mirror.internal", "must be an http"),
        ("https://mirror.internal/?a=b", "must be an http.s. URL with a host and no query"),
        ("https://user:pw@mirror.internal", "must not carry a user"),
        (8080, "must be a string"),
    ],
)
def test_a_bad_npm_base_url_is_refused_naming_the_field(tmp_path: Path, value: object, match: str) -> None:
    from mirrorctl.config import ConfigRef
    from mirrorctl.ecosystems.npm.serve import parse_serve_options
    from mirrorctl.errors import UserError

    with pytest.raises(UserError, match=rf"mirrorctl.toml: serve.npm.base-url {match}"):
        parse_serve_options({"base-url": value}, ConfigRef(tmp_path / "mirrorctl.toml", "serve.npm"))
    with pytest.raises(UserError, match=r"serve\.npm"):
        parse_serve_options({"url": "https://x.internal"}, ConfigRef(tmp_path / "mirrorctl.toml", "serve.npm"))
