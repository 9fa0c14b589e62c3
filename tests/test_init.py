"""`mirrorctl init`: upstreams come from the local clients' own settings; secrets are never written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.ecosystems.pypi.discover import discover_upstream
from mirrorctl.errors import UserError
from mirrorctl.outside.initconfig import init_config

LISTING = """\
:env:.find-links='/opt/wheels'
global.extra-index-url='file:///opt/extra/simple'
global.index-url='https://pypi.mirror.internal/simple'
"""


def fake_runner(listing: str | None, default: str | None = "https://upstream.example.test/simple"):
    def run(argv: list[str]) -> str | None:
        return listing if argv[-2:] == ["config", "list"] else default

    return run


def test_environment_wins_over_pip_config() -> None:
    found = discover_upstream({"PIP_INDEX_URL": "https://env.example.test/simple"}, run=fake_runner(LISTING))
    assert found is not None
    assert found.url == "https://env.example.test/simple/"
    assert "PIP_INDEX_URL" in found.source


def test_pip_config_index_url_is_used() -> None:
    found = discover_upstream({}, run=fake_runner(LISTING))
    assert found is not None
    assert (found.url, found.source) == ("https://pypi.mirror.internal/simple/", "pip config (global.index-url)")


def test_pip_default_is_the_last_resort() -> None:
    found = discover_upstream({}, run=fake_runner(":env:.find-links='/opt/wheels'\n"))
    assert found is not None
    assert found.url == "https://upstream.example.test/simple/"
    assert discover_upstream({}, run=fake_runner(None, None)) is None


def test_init_writes_loadable_settings_and_strips_credentials(tmp_path: Path) -> None:
    path = tmp_path / "mirrorctl.toml"
    result = init_config(
        path,
        load_ecosystems(),
        {"PIP_INDEX_URL": "https://alice:s3cret@pypi.mirror.internal/simple/"},
    )
    text = path.read_text()
    assert "s3cret" not in text and "alice" not in text
    data = tomllib.loads(text)
    assert data["upstreams"]["pypi"] == {
        "url": "https://pypi.mirror.internal/simple/",
        "username-env": "PYPI_USERNAME",
        "password-env": "PYPI_PASSWORD",
    }
    assert result.upstreams["pypi"][0] == "https://pypi.mirror.internal/simple/"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "mirrorctl.toml"
    path.write_text("# mine\n")
    with pytest.raises(UserError, match="already exists"):
        init_config(path, load_ecosystems(), {"PIP_INDEX_URL": "https://a.example.test/simple/"})
    assert path.read_text() == "# mine\n"


def test_cli_init_override_and_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["init", "--upstream", "pypi=https://idx.example.test/simple/"])
    assert ok.exit_code == 0, ok.output
    assert "https://idx.example.test/simple/" in (tmp_path / "mirrorctl.toml").read_text()
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 2
    assert "already exists" in again.output
    bad = runner.invoke(app, ["init", "--force", "--upstream", "nosuch=https://x.example.test/"])
    assert bad.exit_code == 2
    assert "unknown ecosystem" in bad.output
