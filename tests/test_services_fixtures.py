"""The live-service fixtures themselves: they read what scripts/services.sh writes, skip on a developer's
machine and fail in CI when the services are not there (no live test may pass in CI by being skipped)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures import services
from tests.fixtures.services import read_env_file

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_env_file_values_are_read_back_exactly(tmp_path: Path) -> None:
    # The script writes with printf %q: a value with spaces and quotes must come back unchanged.
    tricky = "pa ss'w\"ord$x"
    subprocess.run(
        ["bash", "-c", 'printf "export %s=%q\\n" PULP_PASSWORD "$V" > "$OUT"'],
        env={"V": tricky, "OUT": str(tmp_path / "env")},
        check=True,
    )
    (tmp_path / "env").write_text(
        "# comment line\n" + (tmp_path / "env").read_text() + "export DEVPI_URL=x\n"
    )
    assert read_env_file(tmp_path / "env") == {"PULP_PASSWORD": tricky, "DEVPI_URL": "x"}


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_services_fail_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("SERVICES_DIR", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"unavailable in CI: .*env does not exist"):
        services._load_env()


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_missing_services_skip_outside_ci_with_the_start_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    monkeypatch.setenv("SERVICES_DIR", str(tmp_path))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"bash scripts/services.sh start"):
        services._load_env()


def test_services_dead_behind_an_env_file_fail_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An env file left behind by a crash must not pass for running services: nothing listens on port 9.
    (tmp_path / "env").write_text(
        "export PULP_URL=http://127.0.0.1:9\nexport PULP_CONTENT_URL=http://127.0.0.1:9\n"
        "export PULP_USERNAME=admin\nexport PULP_PASSWORD=x\n"
        "export DEVPI_URL=http://127.0.0.1:9\nexport DEVPI_ROOT_PASSWORD=x\n"
    )
    monkeypatch.setenv("SERVICES_DIR", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"Pulp at http://127.0.0.1:9 does not answer"):
        services.pulp_service.__wrapped__()  # type: ignore[attr-defined]
    with pytest.raises(pytest.fail.Exception, match=r"devpi at http://127.0.0.1:9 does not answer"):
        services.devpi_service.__wrapped__()  # type: ignore[attr-defined]


def test_services_script_usage_lists_the_commands() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts/services.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    for command in ("install", "start", "stop", "status"):
        assert f"services.sh {command}" in result.stdout
    assert "Example:" in result.stdout
