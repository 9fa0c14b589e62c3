"""The CLI's start-up: running one command registers only its module, and nothing is lost by that.

``mirrorctl`` (the console script, ``mirrorctl.cli.app:main``) registers only the module of the command it
runs; ``--help``, no command or anything unclear registers them all. These tests check that the table of
commands matches what the modules register, that the argv reading picks the command after the global options,
and, through real subprocesses, that a command run this way behaves as with every command registered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mirrorctl.cli import app as app_module
from mirrorctl.cli import cmd_ecosystems

MIRRORCTL = Path(sys.executable).parent / "mirrorctl"  # the console script users run


def _names(app: typer.Typer) -> list[str]:
    commands = [c.name or "" for c in app.registered_commands]
    groups = [g.name or "" for g in app.registered_groups]
    return commands + groups


def test_every_command_is_in_the_table_with_the_module_that_adds_it() -> None:
    full = app_module.register_commands()  # the same as `from mirrorctl.cli.app import app`
    assert app_module.app is full
    names = _names(full)
    # The core's commands are in the table; the groups ecosystems contribute (apt: archive-key) are entry points.
    contributed = cmd_ecosystems.contributed_names()
    assert "archive-key" in contributed
    assert sorted(names) == sorted([*app_module.COMMAND_MODULES, *contributed]), "COMMAND_MODULES: every command"
    for name, module in app_module.COMMAND_MODULES.items():
        made = [c for c in full.registered_commands if c.name == name and c.callback is not None]
        grouped = [g for g in full.registered_groups if g.name == name and g.typer_instance is not None]
        assert made or grouped, name
        if made:
            assert made[0].callback.__module__ == f"mirrorctl.cli.{module}", name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["lock", "bench"], "lock"),
        (["--config", "x.toml", "snapshot"], "snapshot"),
        (["-c", "lock", "import", "b.bundle"], "import"),  # "lock" is the value of -c
        (["--config=x.toml", "-v", "-q", "bundle", "export"], "bundle"),
        (["-q"], None),
        (["--help"], None),
        ([], None),
        (["--", "lock"], None),
    ],
)
def test_the_invoked_command_is_read_after_the_global_options(argv: list[str], expected: str | None) -> None:
    assert app_module.invoked_command(argv) == expected


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MIRRORCTL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_command_run_alone_lists_and_refuses_as_the_full_app_does(tmp_path: Path) -> None:
    full = _run(["--help"], tmp_path)
    assert full.returncode == 0, full.stderr
    for name in app_module.COMMAND_MODULES:
        assert name in full.stdout, name

    for name in ("archive-key",):  # a group an ecosystem contributes is listed too
        assert name in full.stdout, name

    alone = _run(["lock", "--help"], tmp_path)
    assert alone.returncode == 0 and "Usage: mirrorctl lock" in alone.stdout and "Example:" in alone.stdout

    # A usage error keeps click's exit code 2; an unknown command is named.
    bad = _run(["lock", "--no-such-option"], tmp_path)
    assert bad.returncode == 2 and "--no-such-option" in bad.stderr
    unknown = _run(["lokc"], tmp_path)
    assert unknown.returncode == 2 and "No such command 'lokc'" in unknown.stderr

    # An input error through the one conversion point: exit 2, message and hint, nothing written.
    missing = _run(["--config", str(tmp_path / "absent.toml"), "lock"], tmp_path)
    assert missing.returncode == 2, missing.stderr
    assert "absent.toml: configuration file not found" in missing.stderr and "hint:" in missing.stderr
    assert list(tmp_path.iterdir()) == []


def test_running_one_command_imports_neither_the_others_nor_httpx_s_own_cli(tmp_path: Path) -> None:
    probe = (
        "import sys; from mirrorctl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "watch = ('mirrorctl.cli.cmd_', 'httpx._main', 'rich')\n"
        "print(sorted(m for m, v in sys.modules.items() if v and m.startswith(watch)))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, "init", "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    loaded = ran.stdout.strip().splitlines()[-1]
    assert loaded == "['mirrorctl.cli.cmd_init']", ran.stdout + ran.stderr


def test_an_ecosystem_command_run_alone_registers_only_the_ecosystems_commands(tmp_path: Path) -> None:
    probe = (
        "import sys; from mirrorctl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "watch = ('mirrorctl.cli.cmd_', 'httpx', 'rich', 'starlette')\n"
        "print(sorted(m for m, v in sys.modules.items() if v and m.startswith(watch)))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, "archive-key", "show", "--help"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert "Example: mirrorctl archive-key show" in ran.stdout, ran.stdout + ran.stderr
    loaded = ran.stdout.strip().splitlines()[-1]
    assert loaded == "['mirrorctl.cli.cmd_ecosystems']", ran.stdout + ran.stderr


def test_version_prints_the_package_version_without_reading_a_config_or_loading_commands(tmp_path: Path) -> None:
    import mirrorctl

    # A broken mirrorctl.toml and a missing $MIRRORCTL_CONFIG: --version must not read either.
    (tmp_path / "mirrorctl.toml").write_text("this is [not toml\n")
    ran = subprocess.run(
        [str(MIRRORCTL), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "MIRRORCTL_CONFIG": str(tmp_path / "absent.toml")},
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{mirrorctl.__version__}\n" and ran.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirrorctl.toml"]

    probe = (
        "import sys; from mirrorctl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
        "watch = ('mirrorctl.cli.cmd_', 'mirrorctl.ecosystems', 'mirrorctl.inside', 'httpx', 'rich')\n"
        "print(sorted(m for m, v in sys.modules.items() if v and m.startswith(watch)))"
    )
    probed = subprocess.run(
        [sys.executable, "-c", probe, "--version"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    lines = probed.stdout.strip().splitlines()
    assert lines == [mirrorctl.__version__, "exit 0", "[]"], probed.stdout + probed.stderr


def test_version_through_the_full_app_is_listed_and_answers_the_same() -> None:
    from typer.testing import CliRunner

    import mirrorctl

    runner = CliRunner()
    listed = runner.invoke(app_module.register_commands(), ["--help"])
    assert "--version" in listed.output
    ran = runner.invoke(app_module.register_commands(), ["--version"])
    assert ran.exit_code == 0 and ran.output == f"{mirrorctl.__version__}\n"
