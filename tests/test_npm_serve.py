"""The npm registry API of the embedded mirror, over ASGI (no sockets): what npm install and npm ci rely on."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import pytest

from mirrorctl.config import FetchSettings, Upstream
from mirrorctl.ecosystems.base import ResolveContext
from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.npm.manifest import ManifestCache, read_tarball_info
from mirrorctl.ecosystems.npm.resolver import resolve_spec
from mirrorctl.ecosystems.npm.serve import CORGI_TYPE, dist_tags, latest_version, wants_corgi
from mirrorctl.errors import IntegrityError
from mirrorctl.inside.serve import create_app
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.outside.profiles import load_profile
from mirrorctl.progress import SILENT

from .fixtures.npm_registry import FixtureNpmRegistry, PkgSpec, npm_registry_fixture  # noqa: F401
from .fixtures.npm_store import npm_artifact
from .fixtures.store_content import publish_view

BASE = "http://mirror.test"
PACOTE_CORGI_ACCEPT = f"{CORGI_TYPE}; q=1.0, application/json; q=0.8, */*"


PACKAGES = (
    PkgSpec("@acme/liba", "1.0.0", dependencies={"left-pad": "^1.0.0"}, description="scoped lib"),
    PkgSpec("@acme/liba", "1.1.0", dependencies={"left-pad": "^1.3.0"}, bin={"liba": "bin/liba.js"}),
    PkgSpec("@acme/liba", "2.0.0-beta.1"),
    PkgSpec("left-pad", "1.3.0", extra={"scripts": {"postinstall": "node x.js", "test": "t"}, "_secret": "x"}),
    PkgSpec("mctl-native-linux-x64", "0.5.0", os=("linux",), cpu=("x64",), extra={"libc": ["glibc"]}),
    PkgSpec("mctl-pre", "1.0.0-rc.1"),
    PkgSpec("mctl-pre", "1.0.0-rc.2"),
)


def build_store(root: Path, specs: Sequence[PkgSpec] = PACKAGES) -> tuple[Store, list[Artifact]]:
    store = Store(root)
    arts = [npm_artifact(store, s, deprecated="use padStart" if s.name == "left-pad" else None) for s in specs]
    publish_view(store, arts)
    return store, arts


@pytest.fixture
def served(tmp_path: Path) -> tuple[Store, list[Artifact]]:
    return build_store(tmp_path / "store")


@pytest.fixture
async def client(served: tuple[Store, list[Artifact]]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(served[0], {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def art(arts: list[Artifact], name: str, version: str) -> Artifact:
    return next(a for a in arts if a.name == name and a.version == version)


# --- packuments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/npm/@acme%2fliba", "/npm/@acme%2Fliba", "/npm/@acme/liba"])
async def test_scoped_packument_under_every_spelling(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["_id"] == doc["name"] == "@acme/liba"
    assert sorted(doc["versions"]) == ["1.0.0", "1.1.0", "2.0.0-beta.1"]
    assert doc["dist-tags"] == {"latest": "1.1.0"}  # the prerelease is higher but not a release
    assert "description" not in doc  # hoisted from latest (1.1.0), which has none


async def test_full_version_document(client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]) -> None:
    doc = (await client.get("/npm/@acme%2fliba")).json()
    v = doc["versions"]["1.1.0"]
    a = art(served[1], "@acme/liba", "1.1.0")
    assert v["name"] == "@acme/liba" and v["version"] == "1.1.0" and v["_id"] == "@acme/liba@1.1.0"
    assert v["dependencies"] == {"left-pad": "^1.3.0"}
    assert v["bin"] == {"liba": "bin/liba.js"}
    assert v["_hasShrinkwrap"] is False
    assert v["dist"]["tarball"] == f"{BASE}/npm/@acme/liba/-/liba-1.1.0.tgz"
    assert v["dist"]["integrity"] == a.attrs["integrity"]
    assert v["dist"]["shasum"] == a.attrs["shasum"]
    assert v["dist"]["fileCount"] == 3  # package.json, index.js, bin/liba.js
    assert set(doc["time"]) == {"created", "modified", "1.0.0", "1.1.0", "2.0.0-beta.1"}
    assert doc["time"]["1.0.0"] == "2024-01-01T00:00:00Z"  # the view's creation time: deterministic
    assert doc["versions"]["1.0.0"]["description"] == "scoped lib"


async def test_manifest_fields_npm_needs(client: httpx.AsyncClient) -> None:
    native = (await client.get("/npm/mctl-native-linux-x64")).json()["versions"]["0.5.0"]
    assert native["os"] == ["linux"] and native["cpu"] == ["x64"] and native["libc"] == ["glibc"]
    pad = (await client.get("/npm/left-pad")).json()
    v = pad["versions"]["1.3.0"]
    assert v["deprecated"] == "use padStart"  # from the lock's attrs
    assert v["hasInstallScript"] is True and v["scripts"]["postinstall"] == "node x.js"
    assert "_secret" not in v  # underscore fields are the registry's own, never copied from package.json


async def test_corgi_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/npm/left-pad", headers={"Accept": PACOTE_CORGI_ACCEPT})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(CORGI_TYPE)
    assert r.headers["vary"] == "Accept"
    doc = r.json()
    assert set(doc) == {"name", "modified", "dist-tags", "versions"}
    v = doc["versions"]["1.3.0"]
    assert set(v) <= {"name", "version", "dist", "deprecated", "hasInstallScript", "_hasShrinkwrap", "scripts"}
    assert "scripts" not in v and v["hasInstallScript"] is True and v["deprecated"] == "use padStart"
    assert v["dist"]["tarball"] == f"{BASE}/npm/left-pad/-/left-pad-1.3.0.tgz"


@pytest.mark.parametrize(
    ("accept", "corgi"),
    [
        (PACOTE_CORGI_ACCEPT, True),
        (CORGI_TYPE, True),
        (f"{CORGI_TYPE};q=0, application/json", False),
        ("application/json", False),
        (None, False),
        ("*/*", False),
    ],
)
def test_accept_negotiation(accept: str | None, corgi: bool) -> None:
    assert wants_corgi(accept) is corgi


def test_latest_is_highest_release_else_highest() -> None:
    assert latest_version(["1.0.0", "1.10.0", "2.0.0-rc.1"]) == "1.10.0"
    assert latest_version(["1.0.0-rc.1", "1.0.0-rc.2"]) == "1.0.0-rc.2"


async def test_prerelease_only_package_gets_latest(client: httpx.AsyncClient) -> None:
    assert (await client.get("/npm/mctl-pre")).json()["dist-tags"] == {"latest": "1.0.0-rc.2"}


async def test_version_and_tag_documents(client: httpx.AsyncClient) -> None:
    assert (await client.get("/npm/@acme%2fliba/latest")).json()["version"] == "1.1.0"
    assert (await client.get("/npm/left-pad/1.3.0")).json()["dist"]["shasum"]
    assert (await client.get("/npm/left-pad/9.9.9")).status_code == 404


async def test_packument_etag_revalidation(client: httpx.AsyncClient) -> None:
    r = await client.get("/npm/left-pad")
    again = await client.get("/npm/left-pad", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_tarball_url_follows_the_host_the_client_used(served: tuple[Store, list[Artifact]]) -> None:
    app = create_app(served[0], {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://other:9000") as c:
        doc = (await c.get("/npm/left-pad")).json()
    assert doc["versions"]["1.3.0"]["dist"]["tarball"] == "http://other:9000/npm/left-pad/-/left-pad-1.3.0.tgz"


# --- what is not mirrored -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/npm/not-mirrored",
        "/npm/@acme%2fnope",
        "/npm/@acme",
        "/npm/..%2f..%2fetc%2fpasswd",
        "/npm/%2e%2e/views",
        "/npm/left-pad/-/left-pad-9.9.9.tgz",
        "/npm/left-pad/-/..%2f..%2fstore",
        "/npm/left-pad/-/liba-1.0.0.tgz",  # another package's file
        "/npm/left-pad/a/b",
        "/npm/-/npm/v1/security/advisories/bulk",
    ],
)
async def test_not_mirrored_is_a_json_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404, path
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "Not found"}


async def test_publish_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.put("/npm/left-pad", content=b"{}")
    assert r.status_code == 405


async def test_ping(client: httpx.AsyncClient) -> None:
    assert (await client.get("/npm/-/ping")).status_code == 200


async def test_nothing_imported_yet(tmp_path: Path) -> None:
    app = create_app(Store(tmp_path / "empty"), {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/npm/left-pad")
    assert r.status_code == 404 and r.json() == {"error": "Not found"}


async def test_only_the_current_view_is_served(tmp_path: Path) -> None:
    store, arts = build_store(tmp_path / "store")
    app = create_app(store, {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        assert "1.0.0" in (await c.get("/npm/@acme%2fliba")).json()["versions"]
        publish_view(store, [a for a in arts if a.version != "1.0.0"], sequence=2)
        doc = (await c.get("/npm/@acme%2fliba")).json()
        assert sorted(doc["versions"]) == ["1.1.0", "2.0.0-beta.1"]
        assert (await c.get("/npm/@acme/liba/-/liba-1.0.0.tgz")).status_code == 404


# --- tarballs -----------------------------------------------------------------------------------------------


async def test_tarball_bytes_match_integrity(client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]) -> None:
    doc = (await client.get("/npm/@acme%2fliba")).json()
    dist = doc["versions"]["1.0.0"]["dist"]
    r = await client.get(dist["tarball"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    a = art(served[1], "@acme/liba", "1.0.0")
    assert r.headers["etag"] == f'"{a.sha256}"'
    assert r.content == served[0].blob_path(a.sha256).read_bytes()
    assert dist["integrity"] == "sha512-" + base64.b64encode(hashlib.sha512(r.content).digest()).decode()
    assert dist["shasum"] == hashlib.sha1(r.content).hexdigest()
    # The scoped name spelled with %2f reaches the same file.
    assert (await client.get("/npm/@acme%2fliba/-/liba-1.0.0.tgz")).content == r.content


async def test_tarball_range_and_conditional(client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]) -> None:
    a = art(served[1], "left-pad", "1.3.0")
    data = served[0].blob_path(a.sha256).read_bytes()
    r = await client.get("/npm/left-pad/-/left-pad-1.3.0.tgz", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    r = await client.get("/npm/left-pad/-/left-pad-1.3.0.tgz", headers={"If-None-Match": f'"{a.sha256}"'})
    assert r.status_code == 304


async def test_missing_blob_is_a_store_error(client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]) -> None:
    a = art(served[1], "left-pad", "1.3.0")
    # The packument is read first (caching the manifest), then the blob disappears.
    assert (await client.get("/npm/left-pad")).status_code == 200
    served[0].blob_path(a.sha256).unlink()
    r = await client.get("/npm/left-pad/-/left-pad-1.3.0.tgz")
    assert r.status_code == 503 and "missing" in r.json()["error"]


async def test_damaged_tarball_names_the_artifact(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    good = npm_artifact(store, PkgSpec("mctl-ok", "1.0.0"))
    bad = npm_artifact(store, PkgSpec("mctl-bad", "1.0.0"), data=b"not a tarball at all")
    publish_view(store, [good, bad])
    app = create_app(store, {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        r = await c.get("/npm/mctl-bad")
        assert r.status_code == 503
        assert "npm mctl-bad 1.0.0 (mctl-bad-1.0.0.tgz)" in r.text
        assert (await c.get("/npm/mctl-ok")).status_code == 200


# --- manifests out of tarballs ------------------------------------------------------------------------------


def tgz(members: dict[str, bytes], *, extra: Sequence[tarfile.TarInfo] = ()) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return gzip.compress(raw.getvalue())


def test_manifest_from_another_top_folder(tmp_path: Path) -> None:
    p = tmp_path / "t.tgz"
    p.write_bytes(tgz({"node-x/package.json": b'{"name":"x","version":"1.0.0"}', "node-x/npm-shrinkwrap.json": b"{}"}))
    info = read_tarball_info(p, where="npm x 1.0.0")
    assert info.manifest == {"name": "x", "version": "1.0.0"}
    assert info.has_shrinkwrap and info.file_count == 2


def test_manifest_ignores_traversal_and_links(tmp_path: Path) -> None:
    link = tarfile.TarInfo("package/evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    p = tmp_path / "t.tgz"
    p.write_bytes(
        tgz({"../../package.json": b"{}", "package/package.json": b'{"name":"x","version":"1.0.0"}'}, extra=[link])
    )
    info = read_tarball_info(p, where="npm x 1.0.0")
    assert info.manifest["name"] == "x"
    assert info.file_count == 1  # the symlink and the stray root file are not package files
    assert list(tmp_path.iterdir()) == [p]  # nothing extracted


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"junk", "cannot read the tarball"),
        (tgz({"package/index.js": b"1"}), "has no package/package.json"),
        (tgz({"package/package.json": b"{nope"}), "package.json is not valid JSON"),
        (tgz({"package/package.json": b"[1]"}), "package.json is not a JSON object"),
    ],
)
def test_unusable_tarballs_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "t.tgz"
    p.write_bytes(data)
    with pytest.raises(IntegrityError) as exc:
        read_tarball_info(p, where="npm x 1.0.0 (x-1.0.0.tgz)")
    assert message in exc.value.message and exc.value.message.startswith("npm x 1.0.0 (x-1.0.0.tgz)")
    assert exc.value.hint


def test_oversized_manifest_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mirrorctl.ecosystems.npm.manifest.MAX_MANIFEST_BYTES", 10)
    p = tmp_path / "t.tgz"
    p.write_bytes(tgz({"package/package.json": b'{"name":"x","version":"1.0.0"}'}))
    with pytest.raises(IntegrityError, match=r"package\.json is 30 bytes"):
        read_tarball_info(p, where="npm x")


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mirrorctl.ecosystems.npm.manifest.MAX_UNPACKED_BYTES", 64 * 1024)
    p = tmp_path / "t.tgz"
    p.write_bytes(tgz({"package/package.json": b"{}", "package/zeros": bytes(1024 * 1024)}))
    with pytest.raises(IntegrityError, match="unpacks to more than"):
        read_tarball_info(p, where="npm x")


def test_manifest_cache_memory_and_disk(tmp_path: Path) -> None:
    store, arts = build_store(tmp_path / "store")
    a = arts[0]
    cache_dir = tmp_path / "cache"
    first = ManifestCache(cache_dir)
    info = first.get(a.sha256, store.blob_path(a.sha256), where="x")
    assert first.get(a.sha256, store.blob_path(a.sha256), where="x") is info
    assert first.tarballs_read == 1
    assert json.loads((cache_dir / f"{a.sha256}.json").read_text())["manifest"]["name"] == "@acme/liba"
    second = ManifestCache(cache_dir)  # a restarted server reads the cache file, not the tarball
    assert second.get(a.sha256, store.blob_path(a.sha256), where="x") == info
    assert second.tarballs_read == 0
    (cache_dir / f"{a.sha256}.json").write_text("{damaged")
    third = ManifestCache(cache_dir)
    assert third.get(a.sha256, store.blob_path(a.sha256), where="x") == info
    assert third.tarballs_read == 1


async def test_server_keeps_manifests_in_the_store_cache(
    client: httpx.AsyncClient, served: tuple[Store, list[Artifact]]
) -> None:
    assert (await client.get("/npm/left-pad")).status_code == 200
    a = art(served[1], "left-pad", "1.3.0")
    assert (served[0].root / "cache" / "npm-manifests" / f"{a.sha256}.json").is_file()


# --- dist-tags ----------------------------------------------------------------------------------------------


def tagged(a: Artifact, tags: str) -> Artifact:
    """``a`` as a lock that recorded the upstream's dist-tags for it writes it."""
    return dataclasses.replace(a, attrs={**a.attrs, "dist-tags": tags})


def test_dist_tags_rule() -> None:
    a1, a2, a3, pre = (
        Artifact("npm", "t", v, f"t-{v}.tgz", 1, f"{i:064x}", ("linux-x64",), {})
        for i, v in enumerate(("1.0.0", "2.0.0", "3.0.0", "4.0.0-rc.1"))
    )
    assert dist_tags([a1, a2, a3, pre]) == {"latest": "3.0.0"}, "no recorded tag: the highest release"
    assert dist_tags([a1, tagged(a2, "latest"), a3]) == {"latest": "2.0.0"}, "the upstream's latest, mirrored"
    assert dist_tags([a1, tagged(a2, "beta,next"), tagged(pre, "canary")]) == {
        "beta": "2.0.0",
        "canary": "4.0.0-rc.1",
        "latest": "2.0.0",
        "next": "2.0.0",
    }
    # Two locks disagree (made at different times): the highest tagged version, whatever the order.
    for order in ([tagged(a1, "latest,next"), tagged(a2, "next")], [tagged(a2, "next"), tagged(a1, "latest,next")]):
        assert dist_tags([*order, a3]) == {"latest": "1.0.0", "next": "2.0.0"}
    # Names npm would read as a version or a range, and anything outside the tag grammar, are not published.
    assert dist_tags([tagged(a1, "1.x,^2,../x,a b,,ok")]) == {"latest": "1.0.0", "ok": "1.0.0"}


async def test_recorded_tags_served_in_full_and_corgi_documents(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    tags = {("@acme/liba", "1.0.0"): "next", ("@acme/liba", "2.0.0-beta.1"): "beta", ("left-pad", "1.3.0"): "latest"}
    arts = [npm_artifact(store, s) for s in PACKAGES]
    arts = [tagged(a, tags[(a.name, a.version)]) if (a.name, a.version) in tags else a for a in arts]
    publish_view(store, arts)
    app = create_app(store, {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        want = {"beta": "2.0.0-beta.1", "latest": "1.1.0", "next": "1.0.0"}  # latest: not recorded, highest release
        assert (await c.get("/npm/@acme%2fliba")).json()["dist-tags"] == want
        corgi = await c.get("/npm/@acme%2fliba", headers={"Accept": PACOTE_CORGI_ACCEPT})
        assert corgi.headers["content-type"].startswith(CORGI_TYPE) and corgi.json()["dist-tags"] == want
        assert (await c.get("/npm/@acme%2fliba/next")).json()["version"] == "1.0.0"
        assert (await c.get("/npm/@acme%2fliba/beta")).json()["version"] == "2.0.0-beta.1"
        assert (await c.get("/npm/@acme%2fliba/canary")).status_code == 404
        assert (await c.get("/npm/left-pad")).json()["dist-tags"] == {"latest": "1.3.0"}


async def test_tool_at_next_through_lock_and_serve(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    """What `npm install tool@next` reads inside: the served packument's dist-tags.next, then that tarball."""
    npm_registry.add(PkgSpec("tool", "2.0.0"), tags={"latest": "2.0.0"})
    npm_registry.add(PkgSpec("tool", "2.5.0"))
    npm_registry.add(PkgSpec("tool", "3.0.0"), tags={"next": "3.0.0"})
    npm_registry.add(PkgSpec("tool", "4.0.0-canary.1"), tags={"canary": "4.0.0-canary.1"})
    profile = tmp_path / "profiles" / "web.toml"
    profile.parent.mkdir()
    profile.write_text('[npm]\npackages = ["tool@next", "tool@~2.5"]\nplatforms = ["linux-x64"]\n')
    spec = load_profile(profile, {"npm": NpmEcosystem()}).specs["npm"]
    store = Store(tmp_path / "store")
    async with httpx.AsyncClient() as http:
        ctx = ResolveContext(http, Upstream("npm", npm_registry.url), SILENT, "web", store, FetchSettings())
        arts = await resolve_spec(spec, ctx)
    assert {(a.version, a.attrs.get("dist-tags")) for a in arts} == {("3.0.0", "next"), ("2.5.0", None)}
    publish_view(store, arts)
    app = create_app(store, {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        for accept in ("application/json", PACOTE_CORGI_ACCEPT):
            doc = (await c.get("/npm/tool", headers={"Accept": accept})).json()
            # canary points at a version not mirrored: not listed; the upstream's latest (2.0.0) is not
            # mirrored either: latest is the highest mirrored release.
            assert doc["dist-tags"] == {"latest": "3.0.0", "next": "3.0.0"}, doc["dist-tags"]
            assert sorted(doc["versions"]) == ["2.5.0", "3.0.0"]
        version = doc["versions"][doc["dist-tags"]["next"]]
        body = (await c.get(version["dist"]["tarball"])).content
        assert body == npm_registry.entry("tool", "3.0.0").data
        assert "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode() == version["dist"]["integrity"]
