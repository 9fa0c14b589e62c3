"""`mirrorctl snapshot` for apt: each locked .deb fetched from ``<upstream>/<pool path>`` and checked against the
Size and SHA256 of the verified index while it streams; the arch-all .deb shared by both architectures is
fetched once; a .deb changed on the upstream fails naming the package and is not stored; a lock whose pool path
was edited to leave the pool is refused before any download."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from mirrorctl.config import FetchSettings, Upstream
from mirrorctl.ecosystems.apt.fetchplan import fetch_plan
from mirrorctl.ecosystems.base import FetchContext
from mirrorctl.errors import BundleRefused
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.progress import SILENT
from tests.fixtures.apt_upstream import (  # noqa: F401  (fixtures used by name)
    FixtureAptUpstream,
    apt_fixture_material,
    apt_upstream_fixture,
)
from tests.test_apt_lock import CLOSURE, lock_path, ok, refused
from tests.test_apt_lock import work as work  # the fixture, by name


def stored(work: Path) -> set[str]:
    return {p.name for p in (work / "store").rglob("*") if p.is_file() and re.fullmatch(r"[0-9a-f]{64}", p.name)}


def debs_fetched(up: FixtureAptUpstream) -> list[str]:
    return [p for _, p in up.log if p.endswith(".deb")]


def test_snapshot_stores_each_deb_once(work: Path, apt_upstream: FixtureAptUpstream) -> None:
    ok("lock", "base")
    arts = read_lock(lock_path(work)).artifacts
    out = ok("snapshot", "base")
    assert f"downloaded {2 * len(CLOSURE) - 1} files" in out
    store = Store(work / "store")
    for a in arts:
        assert store.verify_blob(a.sha256, a.size) is None
        assert store.blob_path(a.sha256).read_bytes() == (apt_upstream.root / str(a.attrs["pool"])).read_bytes()
    fetched = debs_fetched(apt_upstream)
    assert sorted(fetched) == sorted(f"/debian/{a.attrs['pool']}" for a in arts)  # data-common_all once
    assert "downloaded 0 files" in ok("snapshot", "base")  # all present: no request
    assert debs_fetched(apt_upstream) == fetched


def test_refusal_tampered_deb_names_the_package(work: Path, apt_upstream: FixtureAptUpstream) -> None:
    ok("lock", "base")
    deb = apt_upstream.tamper_deb("libfoo", "arm64", "1.5-1")
    out = refused(1, "snapshot", "base")
    assert "apt libfoo 1.5-1 arm64 (libfoo_1.5-1_arm64.deb)" in out
    assert "sha256" in out
    assert deb.sha256 not in stored(work)
    assert not [p for p in (work / "store").rglob("*.part")]


async def test_fetch_plan_refuses_a_pool_path_outside_the_pool(tmp_path: Path) -> None:
    art = Artifact("apt", "curl", "7.88.1-10", "pool/main/c/curl/curl_7.88.1-10_amd64.deb", 10, "a" * 64, ("amd64",),
                   {"architecture": "amd64", "suite": "bookworm", "component": "main",
                    "pool": "pool/../../../etc/curl_7.88.1-10_amd64.deb"})
    async with httpx.AsyncClient() as client:
        ctx = FetchContext(
            client, Upstream("apt", "http://127.0.0.1:9/debian"), SILENT, Store(tmp_path / "store"), FetchSettings()
        )
        with pytest.raises(BundleRefused, match=r"attrs.pool .* is not a plain path under pool/"):
            await fetch_plan([art], ctx)
        good = Artifact(art.ecosystem, art.name, art.version, art.path, art.size, art.sha256, art.targets,
                        {**art.attrs, "pool": "pool/main/c/curl/curl_7.88.1-10_amd64.deb"})
        # Only the mapping is tested here: with its blob present, no archive's InRelease needs verifying first
        # (tests/test_apt_suites.py covers that verification).
        blob = ctx.store.blob_path(good.sha256)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(b"0" * 10)
        [item] = await fetch_plan([good], ctx)
    assert item.url == "http://127.0.0.1:9/debian/pool/main/c/curl/curl_7.88.1-10_amd64.deb"
    assert (item.size, item.sha256, item.label) == (10, "a" * 64, "apt curl 7.88.1-10 amd64 (curl_7.88.1-10_amd64.deb)")
