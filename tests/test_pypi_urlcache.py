"""Snapshot right after lock reads no project page: lock recorded where it saw each file on this upstream.
Another upstream never uses those URLs, and what is fetched is still checked against the lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.inside.store import Store
from tests.fixtures.upstream import FixtureUpstream, start_upstream
from tests.fixtures.wheels import Dist

PROFILE = """\
[pypi]
requirements = ["uc-app"]
python = ["3.11"]
platforms = ["manylinux_2_28_x86_64"]
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FixtureUpstream]:
    up, server = start_upstream(tmp_path / "upstream")
    up.add(Dist("uc-app", "1.0", requires=["uc-lib"]))
    up.add(Dist("uc-lib", "2.0"))
    try:
        yield up
    finally:
        server.stop()


def setup(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "store"\n[upstreams.pypi]\nurl = "{url}"\n[fetch]\nretries = 1\n')
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "web.toml").write_text(PROFILE)
    return config


def run(*args: str) -> None:
    result = CliRunner().invoke(app, ["-q", *args])
    assert result.exit_code == 0, result.output


def test_snapshot_after_lock_reads_no_page(tmp_path: Path, upstream: FixtureUpstream, monkeypatch) -> None:
    config = setup(tmp_path, upstream.url)
    monkeypatch.chdir(tmp_path)
    run("--config", str(config), "lock", "web")
    upstream.log.clear()
    run("--config", str(config), "snapshot", "web")
    paths = [path for _method, path, _headers in upstream.log]
    assert paths and all(p.startswith("/files/") for p in paths), paths  # files only, no /simple/ page


def test_urls_seen_on_another_upstream_are_not_used(tmp_path: Path, upstream: FixtureUpstream, monkeypatch) -> None:
    config = setup(tmp_path, upstream.url)
    monkeypatch.chdir(tmp_path)
    run("--config", str(config), "lock", "web")
    # The same content behind another URL (a proxy, say): its pages are read, the recorded URLs are not used.
    other, server = start_upstream(tmp_path / "other")
    try:
        other.add(Dist("uc-app", "1.0", requires=["uc-lib"]))
        other.add(Dist("uc-lib", "2.0"))
        setup(tmp_path, other.url)
        upstream.log.clear()
        run("--config", str(config), "snapshot", "web")
        assert upstream.log == []
        assert any(path.startswith("/simple/") for _m, path, _h in other.log)
    finally:
        server.stop()


def test_a_recorded_url_serving_other_bytes_fails_the_snapshot(
    tmp_path: Path, upstream: FixtureUpstream, monkeypatch
) -> None:
    config = setup(tmp_path, upstream.url)
    monkeypatch.chdir(tmp_path)
    run("--config", str(config), "lock", "web")
    upstream.tamper(next(f for f in upstream.files if f.startswith("uc_lib")))
    result = CliRunner().invoke(app, ["-q", "--config", str(config), "snapshot", "web"])
    assert result.exit_code == 1
    assert "uc_lib-2.0-py3-none-any.whl" in result.output and "sha256" in result.output
    lib = [p for p in (tmp_path / "store" / "blobs").rglob("*") if p.is_file()]
    assert all(Store(tmp_path / "store").verify_blob(p.name, p.stat().st_size) is None for p in lib)
