"""Index pages rendered once per view: a switch re-renders at the next request, and the cache stays bounded."""

from __future__ import annotations

from pathlib import Path

import httpx

from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.ecosystems.pypi.serve import JSON_TYPE
from mirrorctl.ecosystems.rendered import RenderCache, Rendered
from mirrorctl.inside.serve import create_app

from .fixtures.npm_registry import PkgSpec
from .fixtures.npm_store import npm_artifact
from .fixtures.store_content import closure_store, publish_view


def test_render_cache_is_per_view_and_bounded() -> None:
    pages = RenderCache(max_bytes=100)
    pages.put("v1", "a", Rendered(b"x" * 20, "text/plain"))
    assert pages.get("v1", "a") == Rendered(b"x" * 20, "text/plain")
    assert pages.get("v2", "a") is None  # another view never sees v1's pages
    pages.put("v2", "b", Rendered(b"y" * 20, "text/plain"))
    assert pages.get("v1", "a") is None and len(pages) == 1  # the switch dropped v1's
    for i in range(10):
        pages.put("v2", i, Rendered(b"z" * 20, "text/plain"))
    assert len(pages) == 5 and pages.get("v2", 9) is not None and pages.get("v2", "b") is None  # oldest out
    huge = Rendered(b"h" * 60, "text/plain")
    assert pages.put("v2", "huge", huge) is huge and pages.get("v2", "huge") is None  # served, not kept
    assert len(pages) == 5


async def test_a_cached_project_page_follows_a_switch_at_the_next_request(tmp_path: Path) -> None:
    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    lib = [a for a in arts if a.name == "mctl-demo-lib"]
    others = [a for a in arts if a.name != "mctl-demo-lib"]
    app = create_app(store, {"pypi": PypiEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:

        async def versions() -> set[str]:
            r = await c.get("/pypi/simple/mctl-demo-lib/", headers={"Accept": JSON_TYPE})
            assert r.status_code == 200, r.text
            return set(r.json()["versions"])

        assert await versions() == {"1.0.0", "2.1.0"}
        assert await versions() == {"1.0.0", "2.1.0"}  # the second from the cache: the same page
        html = (await c.get("/pypi/simple/mctl-demo-lib/")).text
        assert "mctl_demo_lib-2.1.0" in html
        publish_view(store, [*others, *[a for a in lib if a.version == "1.0.0"]], sequence=2)
        assert await versions() == {"1.0.0"}
        assert "mctl_demo_lib-2.1.0" not in (await c.get("/pypi/simple/mctl-demo-lib/")).text


async def test_a_cached_packument_follows_a_switch_and_keeps_etags(tmp_path: Path) -> None:
    from mirrorctl.inside.store import Store

    store = Store(tmp_path / "store")
    one = npm_artifact(store, PkgSpec("mctl-pad", "1.0.0"))
    two = npm_artifact(store, PkgSpec("mctl-pad", "2.0.0"))
    publish_view(store, [one])
    app = create_app(store, {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        first = await c.get("/npm/mctl-pad")
        again = await c.get("/npm/mctl-pad")
        assert first.status_code == again.status_code == 200
        assert first.content == again.content and first.headers["etag"] == again.headers["etag"]
        assert (await c.get("/npm/mctl-pad", headers={"If-None-Match": first.headers["etag"]})).status_code == 304
        other_host = await c.get("http://other.test/npm/mctl-pad")
        assert "http://other.test/npm/mctl-pad/-/" in other_host.text  # keyed by the registry URL too
        publish_view(store, [one, two], sequence=2)
        after = await c.get("/npm/mctl-pad")
        assert set(after.json()["versions"]) == {"1.0.0", "2.0.0"}
        assert after.headers["etag"] != first.headers["etag"]
