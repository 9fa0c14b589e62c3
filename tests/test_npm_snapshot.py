"""`mirrorctl snapshot` for npm: tarballs found through the packument on the configured upstream, verified by
size, sha256 and the sha512 integrity while they stream; a tarball that differs fails naming the package and
nothing is stored for it; a version gone upstream or an integrity changed upstream is refused before any
download; a snapshot right after a lock downloads nothing (lock kept the verified tarballs)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from mirrorctl.config import FetchSettings, Settings, Upstream
from mirrorctl.ecosystems.base import FetchContext, FetchItem
from mirrorctl.ecosystems.npm.fetchplan import fetch_plan
from mirrorctl.errors import IntegrityError, NetworkError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.outside.snapshot import snapshot
from mirrorctl.progress import SILENT
from tests.fixtures.npm_registry import (  # noqa: F401  (fixtures used by name)
    FixtureNpmRegistry,
    PkgSpec,
    npm_registry_fixture,
)
from tests.test_npm_lock import EXPECTED, ecosystems, lock, populate


def settings_for(root: Path, url: str, store: str) -> Settings:
    return Settings(None, root / store, root / "profiles", upstreams={"npm": Upstream("npm", url)})


async def run_snapshot(root: Path, url: str, store: str) -> tuple[int, Store]:
    lock_path = root / "profiles" / "web.lock"
    settings = settings_for(root, url, store)
    st = Store(settings.store_path)
    async with httpx.AsyncClient() as client:
        report = await snapshot([("web", read_lock(lock_path))], ecosystems(), settings, st, client, SILENT)
    return report.downloaded, st


async def plan(url: str, arts: list[Artifact], store: Store) -> list[FetchItem]:
    async with httpx.AsyncClient() as client:
        return list(await fetch_plan(arts, FetchContext(client, Upstream("npm", url), SILENT, store, FetchSettings())))


async def test_snapshot_into_a_fresh_store(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    arts, _ = await lock(tmp_path, npm_registry.url)
    before = npm_registry.count_tarballs()
    downloaded, store = await run_snapshot(tmp_path, npm_registry.url, "other-store")
    assert downloaded == len(EXPECTED)
    assert npm_registry.count_tarballs() == before + len(EXPECTED)
    for a in arts:
        assert store.verify_blob(a.sha256, a.size) is None


async def test_snapshot_after_lock_downloads_nothing(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    await lock(tmp_path, npm_registry.url)
    before = sum(npm_registry.requests.values())
    downloaded, _ = await run_snapshot(tmp_path, npm_registry.url, "store")
    assert downloaded == 0 and sum(npm_registry.requests.values()) == before, "not even a packument"


async def test_plan_checks_sha512_while_streaming(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    arts, _ = await lock(tmp_path, npm_registry.url)
    items = {i.filename: i for i in await plan(npm_registry.url, arts, Store(tmp_path / "plan-store"))}
    entry = npm_registry.entry("@acme/liba", "1.2.5")
    item = items["liba-1.2.5.tgz"]
    assert item.url == npm_registry.tarball_url("@acme/liba", "1.2.5")
    assert item.extra_hashes == {"sha512": hashlib.sha512(entry.data).hexdigest()}
    assert (item.size, item.sha256) == (entry.size, entry.sha256)


async def test_tampered_tarball_fails_naming_the_package(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    await lock(tmp_path, npm_registry.url)
    npm_registry.tamper("@acme/liba", "1.2.5")
    with pytest.raises(IntegrityError) as err:
        await run_snapshot(tmp_path, npm_registry.url, "other-store")
    assert "npm @acme/liba 1.2.5 (liba-1.2.5.tgz)" in str(err.value)
    entry = npm_registry.entry("@acme/liba", "1.2.5")
    store = Store(tmp_path / "other-store")
    assert not store.has_blob(entry.sha256), "nothing stored for the tampered tarball"
    assert not [p for p in (tmp_path / "other-store").rglob("*") if p.is_file() and entry.sha256 in p.name]


async def test_version_gone_upstream(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    arts, _ = await lock(tmp_path, npm_registry.url)
    npm_registry.remove("linux-helper", "1.0.0")
    npm_registry.add(PkgSpec("linux-helper", "1.0.1"))
    with pytest.raises(NetworkError) as err:
        await plan(npm_registry.url, arts, Store(tmp_path / "plan-store"))
    assert "npm linux-helper 1.0.0 (linux-helper-1.0.0.tgz)" in err.value.message
    assert "no longer lists this locked version" in err.value.message
    assert npm_registry.count_tarballs() == len(EXPECTED), "no tarball requested by the plan"


async def test_integrity_changed_upstream(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    arts, _ = await lock(tmp_path, npm_registry.url)
    npm_registry.add(PkgSpec("tool", "2.0.0", description="republished with other bytes"))
    with pytest.raises(IntegrityError) as err:
        await plan(npm_registry.url, arts, Store(tmp_path / "plan-store"))
    assert "npm tool 2.0.0 (tool-2.0.0.tgz): the upstream lists integrity sha512-" in err.value.message
    assert "the lock says sha512-" in err.value.message
