"""`mirrorctl lock` keeps an up-to-date lock without any request (as uv/poetry lock do), `--refresh`
resolves again, a changed profile or a damaged lock is resolved again; `mirrorctl lock --snapshot` starts
downloads while resolving and ends with the store exactly as `mirrorctl snapshot` would leave it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mirrorctl.cli.app import app
from mirrorctl.config import load_settings
from mirrorctl.ecosystems.base import FetchItem, load_ecosystems
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import read_lock
from mirrorctl.net import build_client
from mirrorctl.outside.fetch_worker import ProcessFetcher
from mirrorctl.outside.profiles import load_profile
from mirrorctl.outside.snapshot import lock_and_snapshot
from mirrorctl.progress import SILENT
from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    FixtureUpstream,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist

PROFILE = """\
[pypi]
requirements = ["ut-app"]
python = ["3.11", "3.12"]
platforms = ["manylinux_2_28_x86_64"]
"""


def populate(up: FixtureUpstream) -> None:
    up.add(Dist("ut-app", "1.0", requires=["ut-lib>=1"]))
    up.add(Dist("ut-lib", "1.0"))
    up.add(Dist("ut-lib", "1.1"))


@pytest.fixture
def work(tmp_path: Path, pypi_upstream: FixtureUpstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    populate(pypi_upstream)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(
        f'[store]\npath = "store"\n[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n[fetch]\nretries = 1\n'
    )
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "web.toml").write_text(PROFILE)
    return tmp_path


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["-q", *args])


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


def locked(work: Path) -> dict[str, str]:
    return {a.name: a.version for a in read_lock(work / "profiles" / "web.lock").artifacts}


def stored(work: Path) -> set[str]:
    return {p.name for p in (work / "store" / "blobs").rglob("*") if p.is_file()}


def test_second_lock_makes_no_request(work: Path, pypi_upstream: FixtureUpstream) -> None:
    ok("lock", "web")
    before = (work / "profiles" / "web.lock").read_bytes()
    pypi_upstream.add(Dist("ut-lib", "1.2"))  # a newer release is not taken without --refresh
    pypi_upstream.log.clear()
    out = ok("lock", "web")
    assert pypi_upstream.log == []
    assert "up to date, not resolved again" in out and "2 artifacts, 2 targets" in out
    assert (work / "profiles" / "web.lock").read_bytes() == before
    assert ok("lock", "--check")


def test_refresh_takes_a_new_upstream_release(work: Path, pypi_upstream: FixtureUpstream) -> None:
    ok("lock", "web")
    assert locked(work)["ut-lib"] == "1.1"
    pypi_upstream.add(Dist("ut-lib", "1.2"))
    out = ok("lock", "--refresh", "web")
    assert "(changed)" in out and locked(work)["ut-lib"] == "1.2"
    pypi_upstream.add(Dist("ut-lib", "1.3"))
    assert "(changed)" in ok("lock", "--upgrade") and locked(work)["ut-lib"] == "1.3"  # the alias
    pypi_upstream.log.clear()
    assert "(unchanged)" in ok("lock", "--refresh") and pypi_upstream.log  # resolved again: same bytes


def test_changed_profile_is_resolved_again(work: Path, pypi_upstream: FixtureUpstream) -> None:
    ok("lock", "web")
    (work / "profiles" / "web.toml").write_text(PROFILE.replace('"ut-app"]', '"ut-app", "ut-lib<1.1"]'))
    pypi_upstream.log.clear()
    out = ok("lock", "web")
    assert "(changed)" in out and pypi_upstream.log
    assert locked(work)["ut-lib"] == "1.0"
    assert ok("lock", "--check")


def test_damaged_lock_is_resolved_again(work: Path, pypi_upstream: FixtureUpstream) -> None:
    # A lock is generated output: a damaged one (a bad merge, a truncated write) is replaced, and says so.
    ok("lock", "web")
    path = work / "profiles" / "web.lock"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2] + b"\n<<<<<<< HEAD\n")
    out = ok("lock", "web")
    assert "the old lock could not be read" in out and "resolved again" in out and "(changed)" in out
    assert path.read_bytes() == good
    path.write_bytes(b"\xff\xfe not utf-8")
    assert "could not be read" in ok("lock", "web") and path.read_bytes() == good


def test_lock_for_another_target_set_is_resolved_again(work: Path, pypi_upstream: FixtureUpstream) -> None:
    # Same inputs digest is not enough: the ecosystem's own check (here: targets) must pass too.
    ok("lock", "web")
    path = work / "profiles" / "web.lock"
    text = path.read_text()
    path.write_text(text.replace("py3.12-manylinux_2_28_x86_64", "py3.13-manylinux_2_28_x86_64"))
    pypi_upstream.log.clear()
    out = ok("lock", "web")
    assert "(changed)" in out and pypi_upstream.log and path.read_text() == text


def test_check_refuses_refresh_and_snapshot(work: Path) -> None:
    for flag in ("--refresh", "--snapshot"):
        result = cli("lock", "--check", flag)
        assert result.exit_code == 2 and "--check changes nothing" in result.output
    assert not (work / "profiles" / "web.lock").exists() and not (work / "store" / "blobs").exists()


def test_lock_snapshot_fills_the_store(work: Path, pypi_upstream: FixtureUpstream) -> None:
    ok("lock", "--snapshot", "web")
    lock = read_lock(work / "profiles" / "web.lock")
    blobs = {sha for a in lock.artifacts for sha, _, _ in a.blobs()}
    assert len(blobs) == 4  # two wheels and their PEP 658 metadata files
    assert blobs <= stored(work)
    files = {p: n for p, n in pypi_upstream.requests.items() if p.startswith("/files/")}
    # No file downloaded twice; a .metadata file is read by the resolver, then once more for the store.
    assert all(n == (2 if p.endswith(".metadata") else 1) for p, n in files.items()), files
    # The same store a plain snapshot fills: a snapshot now has nothing to do.
    pypi_upstream.log.clear()
    assert "downloaded 0 files" in ok("snapshot", "web") and pypi_upstream.log == []
    # Up to date now: no request at all, neither to lock nor to snapshot.
    assert "downloaded 0 files" in ok("lock", "--snapshot", "web") and pypi_upstream.log == []


def test_lock_snapshot_same_lock_bytes_as_lock(work: Path) -> None:
    ok("lock", "--snapshot", "web")
    first = (work / "profiles" / "web.lock").read_bytes()
    (work / "profiles" / "web.lock").unlink()
    ok("lock", "web")
    assert (work / "profiles" / "web.lock").read_bytes() == first


def test_lock_snapshot_refuses_a_tampered_file(work: Path, pypi_upstream: FixtureUpstream) -> None:
    name = next(f for f in pypi_upstream.files if f.startswith("ut_lib-1.1") and f.endswith(".whl"))
    pypi_upstream.tamper(name)
    result = cli("lock", "--snapshot", "web")
    assert result.exit_code == 1, result.output
    assert name in result.output and "sha256" in result.output
    bad = pypi_upstream.entry(name).sha256
    assert bad not in stored(work)  # nothing stored under the locked digest
    store = Store(work / "store")
    for blob in (work / "store" / "blobs").rglob("*"):
        if blob.is_file():  # what is stored is what its name says
            assert store.verify_blob(blob.name, blob.stat().st_size) is None
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    # A download the failed lock cancelled keeps its .part for a later run to resume (fetch.py's design); whether
    # one is left depends on how far the early download got. Either way it is never under a real name, and a
    # later run with the file mended upstream resumes past it and stores the right bytes.
    leftovers = [p.name for p in (work / "store" / "tmp").iterdir() if p.name.startswith(bad)]
    assert all(n == f"{bad}.part" for n in leftovers), leftovers
    pypi_upstream.untamper(name)
    assert cli("lock", "--snapshot", "web").exit_code == 0
    assert bad in stored(work)
    assert store.verify_blob(bad, pypi_upstream.entry(name).size) is None
    assert not any(p.name.startswith(bad) for p in (work / "store" / "tmp").iterdir())


def test_lock_snapshot_dropped_guess_is_harmless(work: Path, pypi_upstream: FixtureUpstream) -> None:
    # ut-app alone suggests ut-lib 1.1 (the early guess); ut-pin's ut-lib<1.1 makes the resolver take 1.0.
    pypi_upstream.add(Dist("ut-pin", "1.0", requires=["ut-lib<1.1"]))
    (work / "profiles" / "web.toml").write_text(PROFILE.replace('"ut-app"]', '"ut-app", "ut-pin"]'))
    ok("lock", "--snapshot", "web")
    assert locked(work) == {"ut-app": "1.0", "ut-lib": "1.0", "ut-pin": "1.0"}
    lock = read_lock(work / "profiles" / "web.lock")
    assert {sha for a in lock.artifacts for sha, _, _ in a.blobs()} <= stored(work)
    pypi_upstream.log.clear()
    assert "downloaded 0 files" in ok("snapshot", "web") and pypi_upstream.log == []
    text = (work / "profiles" / "web.lock").read_bytes()
    (work / "profiles" / "web.lock").unlink()
    ok("lock", "web")
    assert (work / "profiles" / "web.lock").read_bytes() == text  # the same lock as without --snapshot


@pytest.mark.parametrize("in_process", [True, False])
async def test_early_downloads_then_snapshot(work: Path, pypi_upstream: FixtureUpstream, in_process: bool) -> None:
    # Called as a service so the early downloads can be seen: the fixture resolves faster than a child
    # process starts, so here every file is handed over before the lock is written.
    settings = load_settings(work / "mirrorctl.toml", cwd=work, ecosystems=load_ecosystems())
    ecos = load_ecosystems()
    profiles = [load_profile(work / "profiles" / "web.toml", ecos)]
    async with build_client(settings, {}) as client:
        report = await lock_and_snapshot(
            profiles, ecos, settings, Store(settings.store_path), client, SILENT, in_process=in_process
        )
    lock = read_lock(work / "profiles" / "web.lock")
    blobs = {sha for a in lock.artifacts for sha, _, _ in a.blobs()}
    assert blobs <= stored(work)
    assert report.early_failed == 0 and report.snapshot.artifacts == 2
    if in_process:  # the child may lose every race to the parent's snapshot; in process, none is lost
        assert report.early_files >= 2
    files = {p: n for p, n in pypi_upstream.requests.items() if p.startswith("/files/")}
    assert all(n == (2 if p.endswith(".metadata") else 1) for p, n in files.items()), files


async def test_process_fetcher_stores_verified_files_only(work: Path, pypi_upstream: FixtureUpstream) -> None:
    settings = load_settings(work / "mirrorctl.toml", cwd=work, ecosystems=load_ecosystems())
    good, bad = (pypi_upstream.entry(n) for n in sorted(pypi_upstream.files) if n.startswith("ut_lib"))
    pypi_upstream.tamper(bad.filename)
    early = ProcessFetcher(settings)
    for e in (good, bad):
        early.submit(FetchItem(pypi_upstream.file_url(e.filename), e.filename, e.size, e.sha256, e.filename))
    await early.wait()
    assert (early.downloaded, early.failed) == (1, 1)
    assert stored(work) == {good.sha256}
    assert not list((work / "store" / "tmp").iterdir())  # the refused file left no .part
