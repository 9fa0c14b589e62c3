"""The snapshot service and `mirrorctl snapshot`: locks -> verified blobs in the store, on loopback only.

Service tests use a small fake ecosystem (its fetch plan points at the fixture upstream's files) so they test
the service alone; the CLI tests run the real PyPI adapter against the fixture upstream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.config import FetchSettings, Settings, Upstream
from mirrorctl.ecosystems.base import Ecosystem, FetchContext, FetchItem, load_ecosystems
from mirrorctl.errors import IntegrityError, ProfileError, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, Companion, Lock, dump_lock
from mirrorctl.outside.profiles import load_profile
from mirrorctl.outside.snapshot import load_locks, snapshot
from mirrorctl.progress import SILENT
from tests.fixtures.upstream import FileEntry, FixtureUpstream, start_upstream
from tests.fixtures.wheels import Dist


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FixtureUpstream]:
    up, server = start_upstream(tmp_path / "upstream")
    try:
        yield up
    finally:
        server.stop()


class FakeEcosystem:
    """Only what the snapshot service uses: parse_profile (for load_profile) and fetch_plan."""

    name = "fake"

    def __init__(self, up: FixtureUpstream | None = None) -> None:
        self.up = up
        self.planned: list[list[str]] = []
        self.extra: list[FetchItem] = []

    def parse_profile(self, table: Mapping[str, Any], source: Any) -> Any:
        return dict(table)

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        assert self.up is not None
        self.planned.append([a.filename for a in artifacts])
        items = []
        for a in artifacts:
            for sha, size, filename in a.blobs():
                items.append(FetchItem(self.up.file_url(filename), filename, size, sha, f"fake {filename}"))
        return items + self.extra


def artifact(entry: FileEntry, target: str = "t1") -> Artifact:
    companions = ()
    if entry.metadata is not None:
        companions = (Companion(".metadata", len(entry.metadata), entry.metadata_sha256 or ""),)
    return Artifact(
        "fake", entry.project, entry.version, entry.filename, entry.size, entry.sha256,
        targets=(target,), companions=companions,
    )


def settings_for(tmp_path: Path, up: FixtureUpstream, eco: str = "fake") -> Settings:
    return Settings(
        config_path=None,
        store_path=tmp_path / "store",
        profiles_dir=tmp_path / "profiles",
        upstreams={eco: Upstream(eco, up.url)},
        fetch=FetchSettings(concurrency=4, retries=1, timeout=10),
    )


def parts(tmp_path: Path, up: FixtureUpstream) -> tuple[Settings, Store, FakeEcosystem]:
    return settings_for(tmp_path, up), Store(tmp_path / "store"), FakeEcosystem(up)


def entries(up: FixtureUpstream, n: int) -> list[FileEntry]:
    return [up.add(Dist(f"pkg{i}", "1.0", code="x = 1\n" * (i + 1) * 300))[0] for i in range(n)]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


async def run(locks: list[tuple[str, Lock]], eco: FakeEcosystem, settings: Settings, store: Store):
    async with httpx.AsyncClient(timeout=10) as client:
        return await snapshot(locks, {"fake": eco}, settings, store, client, SILENT)  # type: ignore[dict-item]


# --- the service --------------------------------------------------------------------------------------------


async def test_snapshot_fetches_artifacts_and_companions_of_all_locks(tmp_path, upstream) -> None:
    a, b, c = entries(upstream, 3)
    locks = [
        ("web", Lock("web", "sha256:x", ("fake:t1",), (artifact(a), artifact(b)))),
        ("data", Lock("data", "sha256:y", ("fake:t2",), (artifact(b, "t2"), artifact(c, "t2")))),
    ]
    settings, store, eco = parts(tmp_path, upstream)
    report = await run(locks, eco, settings, store)
    assert report.profiles == ("web", "data")
    assert report.artifacts == 3  # b is shared by both locks: fetched once
    assert report.downloaded == 6  # three wheels and their .metadata companions
    assert report.present == 0
    for e in (a, b, c):
        assert store.verify_blob(e.sha256, e.size) is None
        assert store.has_blob(e.metadata_sha256 or "", len(e.metadata or b""))
    assert upstream.count_files(".whl") == 3


async def test_everything_present_makes_no_network_request(tmp_path, upstream) -> None:
    locks = [("web", Lock("web", "sha256:x", (), tuple(artifact(e) for e in entries(upstream, 3))))]
    settings, store, eco = parts(tmp_path, upstream)
    await run(locks, eco, settings, store)
    upstream.log.clear()
    eco.planned.clear()
    report = await run(locks, eco, settings, store)
    assert upstream.log == []
    assert eco.planned == []  # not even the index pages were asked for
    assert (report.downloaded, report.present) == (0, 6)


async def test_only_missing_artifacts_are_planned(tmp_path, upstream) -> None:
    a, b = entries(upstream, 2)
    settings, store, eco = parts(tmp_path, upstream)
    await run([("one", Lock("one", "sha256:x", (), (artifact(a),)))], eco, settings, store)
    eco.planned.clear()
    both = Lock("two", "sha256:x", (), (artifact(a), artifact(b)))
    report = await run([("two", both)], eco, settings, store)
    assert eco.planned == [[b.filename]]
    assert (report.downloaded, report.present) == (2, 2)


async def test_tampered_upstream_file_fails_and_stores_nothing_for_it(tmp_path, upstream) -> None:
    a, b = entries(upstream, 2)
    upstream.tamper(b.filename)
    settings, store, eco = parts(tmp_path, upstream)
    with pytest.raises(IntegrityError, match=b.filename):
        await run([("web", Lock("web", "sha256:x", (), (artifact(a), artifact(b))))], eco, settings, store)
    assert not store.has_blob(b.sha256)
    assert tree(store.root / "tmp") == []


async def test_plan_naming_an_unlocked_file_is_refused(tmp_path, upstream) -> None:
    a, stray = entries(upstream, 2)
    settings, store, eco = parts(tmp_path, upstream)
    url = upstream.file_url(stray.filename)
    eco.extra = [FetchItem(url, stray.filename, stray.size, stray.sha256, "stray")]
    with pytest.raises(IntegrityError, match=r"stray: the fake fetch plan lists sha256 .* no lock records"):
        await run([("web", Lock("web", "sha256:x", (), (artifact(a),)))], eco, settings, store)
    assert tree(store.root / "blobs") == []
    assert upstream.count_files() == 0  # refused before any download


async def test_unknown_ecosystem_in_a_lock_is_refused(tmp_path, upstream) -> None:
    (a,) = entries(upstream, 1)
    odd = Artifact("npm", "x", "1.0.0", "x-1.0.0.tgz", 3, "c" * 64)
    settings, store = settings_for(tmp_path, upstream), Store(tmp_path / "store")
    with pytest.raises(UserError, match="the locks name npm artifacts, but no npm ecosystem is installed"):
        lock = Lock("web", "sha256:x", (), (artifact(a), odd))
        await run([("web", lock)], FakeEcosystem(upstream), settings, store)
    assert tree(store.root / "blobs") == []


# --- loading locks ------------------------------------------------------------------------------------------


def write_profile(dirpath: Path, name: str, body: str) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / f"{name}.toml"
    path.write_text(body)
    return path


def test_stale_lock_is_refused(tmp_path) -> None:
    ecosystems: dict[str, Ecosystem] = {"fake": FakeEcosystem()}  # type: ignore[dict-item]
    path = write_profile(tmp_path / "profiles", "web", '[fake]\nwant = ["a"]\n')
    profile = load_profile(path, ecosystems)
    lock_text = dump_lock(Lock("web", profile.inputs_digest, (), ()), source="profiles/web.toml")
    profile.lock_path.write_text(lock_text)
    assert load_locks([profile])[0][0] == "web"

    path.write_text('[fake]\nwant = ["a", "b"]\n')  # edited after locking
    edited = load_profile(path, ecosystems)
    before = tree(tmp_path)
    expected = r"web.lock: lock is stale: .*web.toml changed since it was locked"
    with pytest.raises(ProfileError, match=expected) as exc:
        load_locks([edited])
    assert exc.value.hint is not None and "run mirrorctl lock web" in exc.value.hint
    assert exc.value.exit_code == 2
    assert tree(tmp_path) == before
    assert profile.lock_path.read_text() == lock_text


def test_missing_lock_is_refused(tmp_path) -> None:
    ecosystems: dict[str, Ecosystem] = {"fake": FakeEcosystem()}  # type: ignore[dict-item]
    profile = load_profile(write_profile(tmp_path / "profiles", "web", "[fake]\n"), ecosystems)
    with pytest.raises(ProfileError, match=r"web.lock: lock not found") as exc:
        load_locks([profile])
    assert exc.value.hint and "mirrorctl lock" in exc.value.hint


# --- the command, with the real PyPI adapter --------------------------------------------------------------


PROFILE = """\
[pypi]
requirements = ["pkg0"]
python = ["3.11"]
platforms = ["manylinux_2_28_x86_64"]
"""


def cli_setup(tmp_path: Path, up: FixtureUpstream) -> tuple[Path, Store, list[FileEntry]]:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "store"\n[upstreams.pypi]\nurl = "{up.url}"\n[fetch]\nretries = 1\n')
    path = write_profile(tmp_path / "profiles", "web", PROFILE)
    profile = load_profile(path, load_ecosystems())
    es = entries(up, 2)
    arts = tuple(
        Artifact(
            "pypi", e.project, e.version, e.filename, e.size, e.sha256,
            ("py3.11-manylinux_2_28_x86_64",), companions=artifact(e).companions,
        )
        for e in es
    )
    lock = Lock("web", profile.inputs_digest, ("pypi:py3.11-manylinux_2_28_x86_64",), arts)
    profile.lock_path.write_text(dump_lock(lock, source="profiles/web.toml"))
    return config, Store(tmp_path / "store"), es


def test_cli_snapshot_downloads_then_finds_everything_present(tmp_path, upstream, monkeypatch) -> None:
    config, store, es = cli_setup(tmp_path, upstream)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["-q", "--config", str(config), "snapshot"])
    assert first.exit_code == 0, first.output
    assert "snapshot web: downloaded 4 files /" in first.output and "0 already present" in first.output
    for e in es:
        assert store.verify_blob(e.sha256, e.size) is None

    upstream.log.clear()
    second = runner.invoke(app, ["-q", "--config", str(config), "snapshot", "web"])
    assert second.exit_code == 0, second.output
    assert "downloaded 0 files / 0.0 MB" in second.output and "4 already present" in second.output
    assert upstream.log == []


def test_cli_snapshot_refuses_a_stale_lock(tmp_path, upstream, monkeypatch) -> None:
    config, store, _ = cli_setup(tmp_path, upstream)
    (tmp_path / "profiles" / "web.toml").write_text(PROFILE.replace('"pkg0"', '"pkg0", "pkg1"'))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["-q", "--config", str(config), "snapshot", "web"])
    assert result.exit_code == 2
    assert "lock is stale" in result.output and "hint: run mirrorctl lock web" in result.output
    assert not store.root.exists()
    assert upstream.log == []


def test_cli_snapshot_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["snapshot", "--help"])
    assert result.exit_code == 0
    assert "Example: mirrorctl snapshot" in result.output
