"""`mirrorctl workspace-config`: golden files for review, URL checks, and refusals that write nothing.

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_workspace.py``
and review the diff.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import INSTALL_DIR, ClientConfig, Ecosystem
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.errors import UserError
from mirrorctl.inside.workspace import render_workspace_config, validate_mirror_url

GOLDEN = Path(__file__).parent / "golden" / "workspace"
MIRROR = "http://pypi.mirror.internal:8080"
ECOSYSTEMS: Mapping[str, Ecosystem] = {"pypi": PypiEcosystem()}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), (
        f"{name} differs from {path}; UPDATE_GOLDEN=1 to accept an intended change"
    )


def test_golden_files(tmp_path: Path) -> None:
    out = tmp_path / "ws"
    written = render_workspace_config(MIRROR + "/", out, ECOSYSTEMS, Path("/etc/mirrorctl")).written
    assert sorted(p.name for p in written) == ["README.txt", "mirrorctl.env", "pip.conf", "uv.toml"]
    for name in ("pip.conf", "uv.toml", "mirrorctl.env", "README.txt"):
        check_golden(name, (out / name).read_text())


def test_https_mirror_needs_no_trusted_host_and_keeps_a_path_prefix(tmp_path: Path) -> None:
    render_workspace_config("https://mirror.internal/packages/", tmp_path, ECOSYSTEMS, Path("/opt/ws"))
    pip_conf = (tmp_path / "pip.conf").read_text()
    assert "index-url = https://mirror.internal/packages/pypi/simple/\n" in pip_conf
    assert "trusted-host" not in pip_conf
    env = (tmp_path / "mirrorctl.env").read_text()
    assert "PIP_TRUSTED_HOST" not in env
    assert "PIP_CONFIG_FILE=/opt/ws/pip.conf\n" in env and "UV_CONFIG_FILE=/opt/ws/uv.toml\n" in env
    assert INSTALL_DIR not in env


def test_env_file_means_the_same_to_sh(tmp_path: Path) -> None:
    render_workspace_config(MIRROR, tmp_path, ECOSYSTEMS, Path("/etc/mirrorctl"))
    script = f"set -a; . {tmp_path / 'mirrorctl.env'}; set +a; env -0"
    dirty = {**os.environ, "PIP_FIND_LINKS": "/opt/wheels", "UV_INDEX": "file:///elsewhere/simple"}
    out = subprocess.run(["sh", "-c", script], env=dirty, capture_output=True, check=True).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    assert env["PIP_INDEX_URL"] == env["UV_DEFAULT_INDEX"] == MIRROR + "/pypi/simple/"
    assert env["PIP_FIND_LINKS"] == "" and env["UV_INDEX"] == ""  # inherited sources cleared
    assert env["PIP_CONFIG_FILE"] == "/etc/mirrorctl/pip.conf"
    assert env["UV_PYTHON_DOWNLOADS"] == "never"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://mirror.internal", "must be an http or https URL"),
        ("mirror.internal:8080", "must be an http or https URL"),
        ("http://user:secret@mirror.internal", "carries credentials"),
        ("http://token@mirror.internal", "carries credentials"),
        ("http://mirror.internal/?x=1", "query, fragment or parameters"),
        ("http://mirror.internal/#frag", "query, fragment or parameters"),
        ("http://mirror.internal/a;b", "query, fragment or parameters"),
        ("http://mirror.internal:99999", "invalid port"),
        ("http://mirror.internal:80x", "invalid port"),
        ("http://", "no valid host name"),
        ("http://bad_host!/", "no valid host name"),
        ("http://mirror.internal/a b", "whitespace"),
        (" http://mirror.internal", "whitespace"),
        ("http://mirror.internal/../x", "not a plain path prefix"),
        ("http://mirror.internal/a%20b", "not a plain path prefix"),
    ],
)
def test_bad_mirror_urls_are_refused_and_nothing_is_written(tmp_path: Path, url: str, message: str) -> None:
    out = tmp_path / "ws"
    with pytest.raises(UserError) as err:
        render_workspace_config(url, out, ECOSYSTEMS, Path("/etc/mirrorctl"))
    assert message in err.value.message and repr(url) in err.value.message
    assert not out.exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://mirror.internal:8080/", "http://mirror.internal:8080"),
        ("https://mirror.internal", "https://mirror.internal"),
        ("http://10.0.0.5:8080//", "http://10.0.0.5:8080"),
        ("http://[fd00::5]:8080/", "http://[fd00::5]:8080"),
        ("https://mirror.internal/pkg/mirror/", "https://mirror.internal/pkg/mirror"),
    ],
)
def test_good_mirror_urls_are_normalized(url: str, expected: str) -> None:
    assert validate_mirror_url(url) == expected


@pytest.mark.parametrize(
    ("install_dir", "message"),
    [("etc/mirrorctl", "must be an absolute path"), ("/etc/my config", "would need quoting")],
)
def test_bad_install_dir_is_refused(tmp_path: Path, install_dir: str, message: str) -> None:
    out = tmp_path / "ws"
    with pytest.raises(UserError, match=message):
        render_workspace_config(MIRROR, out, ECOSYSTEMS, Path(install_dir))
    assert not out.exists()


class FakeEcosystem:
    def __init__(self, name: str, files: dict[str, str], env: dict[str, str]) -> None:
        self.name, self._files, self._env = name, files, env

    def client_config(self, mirror_url: str, *, endpoint: str | None = None, content: Any = None) -> ClientConfig:
        return ClientConfig(self._files, self._env, f"{self.name} uses {mirror_url}")

    def __getattr__(self, item: str) -> Any:  # the rest of the Protocol is not used here
        raise AttributeError(item)


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (FakeEcosystem("zz", {"pip.conf": "x"}, {}), "ecosystems pypi and zz both write pip.conf"),
        (FakeEcosystem("zz", {}, {"PIP_INDEX_URL": "http://x/"}), "set PIP_INDEX_URL differently"),
        (FakeEcosystem("zz", {"../escape": "x"}, {}), "not a plain relative path"),
        (FakeEcosystem("zz", {"/etc/passwd": "x"}, {}), "not a plain relative path"),
        (FakeEcosystem("zz", {"mirrorctl.env": "x"}, {}), "clashes with mirrorctl's own"),
        (FakeEcosystem("zz", {}, {"ZZ": "has space"}), "would need quoting"),
        (FakeEcosystem("zz", {}, {"bad-key": "x"}), "environment variable name 'bad-key'"),
    ],
)
def test_conflicting_or_unsafe_ecosystem_config_is_refused(
    tmp_path: Path, other: FakeEcosystem, message: str
) -> None:
    out = tmp_path / "ws"
    out.mkdir()
    (out / "pip.conf").write_text("previous\n")
    with pytest.raises(UserError, match=message):
        render_workspace_config(MIRROR, out, {"pypi": PypiEcosystem(), "zz": other}, Path("/etc/mirrorctl"))
    assert [p.name for p in out.iterdir()] == ["pip.conf"]
    assert (out / "pip.conf").read_text() == "previous\n"


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        render_workspace_config(MIRROR, out, ECOSYSTEMS, Path("/etc/mirrorctl"))
    assert out.read_text() == "x"


def test_cli_prints_the_usage_line(tmp_path: Path) -> None:
    out = tmp_path / "ws"
    result = CliRunner().invoke(
        app, ["workspace-config", "--mirror-url", MIRROR, "--out", str(out), "--install-dir", "/srv/mc"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"copy {out}/ to /srv/mc in the workspace image, then load the environment: "
        "set -a; . /srv/mc/mirrorctl.env; set +a"
    )
    assert "PIP_CONFIG_FILE=/srv/mc/pip.conf" in (out / "mirrorctl.env").read_text()


def test_cli_refuses_credentials_with_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "ws"
    result = CliRunner().invoke(
        app, ["workspace-config", "--mirror-url", "http://u:p@m.internal", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "carries credentials" in result.output
    assert not out.exists()


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["workspace-config", "--help"])
    assert result.exit_code == 0 and "Example: mirrorctl workspace-config" in result.output
