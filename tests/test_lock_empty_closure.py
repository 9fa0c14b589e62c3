"""A target whose closure is empty (every requirement's marker excludes it, every package is an optional one
for another platform) is a valid, recorded result: `mirrorctl lock` records it in the lock's `targets`,
`mirrorctl lock --check` accepts it and the next `mirrorctl lock` keeps the file without any request. A lock
that does not record a declared target is still refused, and nothing is changed by the check."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.apt.lock import check_lock as apt_check_lock
from mirrorctl.ecosystems.apt.spec import AptSpec
from mirrorctl.lockfile import Artifact
from tests.fixtures.npm_registry import (  # noqa: F401  (fixtures used by name)
    FixtureNpmRegistry,
    PkgSpec,
    npm_registry_fixture,
)
from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    FixtureUpstream,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist

PY311 = "py3.11-manylinux_2_28_x86_64"
PY312 = "py3.12-manylinux_2_28_x86_64"

PYPI_PROFILE = """\
[pypi]
requirements = ['ec-new; python_version >= "3.12"', 'ec-win; sys_platform == "win32"']
python = ["3.11", "3.12"]
platforms = ["manylinux_2_28_x86_64"]
"""


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["-q", *args])


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def pypi_work(tmp_path: Path, pypi_upstream: FixtureUpstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    pypi_upstream.add(Dist("ec-new", "1.0", requires_python=">=3.12"))
    pypi_upstream.add(Dist("ec-win", "1.0"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(
        f'[store]\npath = "store"\n[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n[fetch]\nretries = 1\n'
    )
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "web.toml").write_text(PYPI_PROFILE)
    return tmp_path


def test_pypi_target_with_nothing_to_install_locks_checks_and_is_kept(
    pypi_work: Path, pypi_upstream: FixtureUpstream
) -> None:
    out = ok("lock", "web")
    assert "1 artifacts, 2 targets" in out and "(changed)" in out
    lock_path = pypi_work / "profiles" / "web.lock"
    doc = tomllib.loads(lock_path.read_text())
    assert doc["targets"] == [f"pypi:{PY311}", f"pypi:{PY312}"], "the empty target is recorded"
    assert [(a["name"], a["targets"]) for a in doc["artifacts"]] == [("ec-new", [PY312])]

    check = cli("lock", "--check")
    assert check.exit_code == 0, check.output
    assert "up to date" in check.output and "not in the lock" not in check.output

    before = lock_path.read_bytes()
    pypi_upstream.log.clear()
    again = ok("lock", "web")
    assert "up to date, not resolved again" in again
    assert pypi_upstream.log == [], "an up-to-date lock with an empty target makes no request"
    assert lock_path.read_bytes() == before

    assert "downloaded 2 files" in ok("snapshot", "web"), "the wheel and its metadata; nothing for the empty target"


def test_pypi_lock_that_does_not_record_a_declared_target_is_refused(
    pypi_work: Path, pypi_upstream: FixtureUpstream
) -> None:
    ok("lock", "web")
    lock_path = pypi_work / "profiles" / "web.lock"
    text = lock_path.read_text()
    edited = text.replace(f'    "pypi:{PY311}",\n', "")
    assert edited != text
    lock_path.write_text(edited)
    check = cli("lock", "--check")
    assert check.exit_code == 1
    assert f"pypi target {PY311}: not in the lock" in check.output
    assert lock_path.read_text() == edited, "--check changes nothing"
    # Not up to date, so `mirrorctl lock` resolves again and records the target.
    pypi_upstream.log.clear()
    out = ok("lock", "web")
    assert "(changed)" in out and pypi_upstream.log != []
    assert lock_path.read_text() == text


def test_pypi_profile_whose_every_target_is_empty(pypi_work: Path, pypi_upstream: FixtureUpstream) -> None:
    (pypi_work / "profiles" / "web.toml").write_text(PYPI_PROFILE.replace('"3.11", "3.12"', '"3.11"'))
    out = ok("lock", "web")
    assert "0 artifacts, 1 targets" in out
    assert tomllib.loads((pypi_work / "profiles" / "web.lock").read_text())["targets"] == [f"pypi:{PY311}"]
    assert cli("lock", "--check").exit_code == 0
    pypi_upstream.log.clear()
    assert "up to date, not resolved again" in ok("lock", "web")
    assert pypi_upstream.log == []


def test_npm_platform_with_only_another_platforms_optional_package(
    tmp_path: Path, npm_registry: FixtureNpmRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm_registry.add(PkgSpec("@native/linux-x64", "1.0.0", os=("linux",), cpu=("x64",)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(
        f'[store]\npath = "store"\n[upstreams.npm]\nurl = "{npm_registry.url}"\n[fetch]\nretries = 1\n'
    )
    (tmp_path / "proj").mkdir()
    pkg = {"name": "proj", "optionalDependencies": {"@native/linux-x64": "^1"}}
    (tmp_path / "proj" / "package.json").write_text(json.dumps(pkg))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "web.toml").write_text(
        '[npm]\npackage-json = "../proj/package.json"\nplatforms = ["linux-x64", "win32-x64"]\n'
    )
    out = ok("lock", "web")
    assert "1 artifacts, 2 targets" in out
    lock_path = tmp_path / "profiles" / "web.lock"
    doc = tomllib.loads(lock_path.read_text())
    assert doc["targets"] == ["npm:linux-x64", "npm:win32-x64"]
    assert [a["targets"] for a in doc["artifacts"]] == [["linux-x64"]]

    check = cli("lock", "--check")
    assert check.exit_code == 0, check.output
    before = lock_path.read_bytes()
    npm_registry.log.clear()
    assert "up to date, not resolved again" in ok("lock", "web")
    assert npm_registry.log == [] and lock_path.read_bytes() == before

    lock_path.write_text(lock_path.read_text().replace('    "npm:win32-x64",\n', ""))
    refused = cli("lock", "--check")
    assert refused.exit_code == 1 and "npm platform win32-x64: not in the lock" in refused.output


def test_apt_needs_no_recorded_targets() -> None:
    """apt cannot have an empty architecture (a profile names packages, each locked for every architecture):
    its check is the same with or without the recorded targets."""
    art = Artifact(
        "apt", "libfoo", "1.0", "libfoo_1.0_amd64.deb", 1, "0" * 64, ("amd64",),
        {"suite": "bookworm", "component": "main", "pool": "pool/main/libf/libfoo/libfoo_1.0_amd64.deb"},
    )
    spec = AptSpec("bookworm", ("main",), ("amd64", "arm64"), ("libfoo",))
    without = apt_check_lock(spec, [art])
    assert without == apt_check_lock(spec, [art], ["amd64", "arm64"])
    assert "apt libfoo (the profile) is not locked for arm64" in without
