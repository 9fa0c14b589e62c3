"""`mirrorctl workspace-config --target NAME`: client files pointing at what a target serves (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.errors import UserError
from mirrorctl.inside.workspace import render_workspace_config

CONFIG = """\
[store]
path = "store"

[targets.devpi]
kind = "devpi"
url = "http://devpi.mirror.internal:3141"
username-env = "DV_USER"
password-env = "DV_PASS"
repositories = { pypi = "team/snap" }

[targets.empty]
kind = "devpi"
url = "http://devpi.mirror.internal:3141"
"""


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["--config", str(config), "workspace-config", *args])
    return result.exit_code, result.output


def test_target_config_points_pip_and_uv_at_the_devpi_index(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "--target", "devpi", "--out", str(tmp_path / "ws"))
    assert code == 0, out
    index = "http://devpi.mirror.internal:3141/team/snap/+simple/"
    env = (tmp_path / "ws" / "mirrorctl.env").read_text()
    assert f"PIP_INDEX_URL={index}\n" in env and f"UV_DEFAULT_INDEX={index}\n" in env
    assert "PIP_TRUSTED_HOST=devpi.mirror.internal:3141\n" in env
    assert f'url = "{index}"' in (tmp_path / "ws" / "uv.toml").read_text()
    assert f"index-url = {index}\n" in (tmp_path / "ws" / "pip.conf").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --mirror-url and --target"),
        (["--target", "devpi", "--mirror-url", "http://m:8080"], "exactly one of --mirror-url and --target"),
        (["--target", "nope"], "no target named 'nope' (configured: devpi, empty)"),
        (["--target", "empty"], "no repository configured"),
    ],
)
def test_refusals_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    code, out = _invoke(tmp_path, *args, "--out", str(tmp_path / "ws"))
    assert code == 2 and message in out, out
    assert not (tmp_path / "ws").exists()


def test_an_endpoint_with_credentials_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="without credentials"):
        render_workspace_config(
            "http://m:3141",
            tmp_path / "ws",
            {"pypi": PypiEcosystem()},
            endpoints={"pypi": "http://u:p@m:3141/team/snap/+simple/"},
        )
    assert not (tmp_path / "ws").exists()


def test_an_endpoint_for_an_unknown_ecosystem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no client configuration for npm"):
        render_workspace_config(
            "http://m:3141", tmp_path / "ws", {"pypi": PypiEcosystem()}, endpoints={"npm": "http://m/npm/"}
        )
