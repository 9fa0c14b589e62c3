"""npm client configuration: golden files for review, and what npm 11 itself makes of them next to hostile
user, machine-wide and project npmrc files (``npm config get`` runs offline; nothing is installed here).

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_npm_clientconfig.py``
and review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mirrorctl.ecosystems.base import INSTALL_DIR
from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.npm.clientconfig import PACKUMENT_SCOPE, client_config, registry_url
from mirrorctl.inside.workspace import render_workspace_config
from tests.conftest import skip_or_fail

GOLDEN = Path(__file__).parent / "golden" / "npm"
MIRROR = "http://npm.mirror.internal:8080"
NPM = "/usr/bin/npm"
HOSTILE = "http://hostile.example.test:9/"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from {path}; UPDATE_GOLDEN=1 to accept an intended change"


def test_golden_files(tmp_path: Path) -> None:
    out = tmp_path / "ws"
    written = render_workspace_config(MIRROR + "/", out, {"npm": NpmEcosystem()}, Path("/etc/mirrorctl")).written
    assert sorted(p.name for p in written) == ["README.txt", "mirrorctl.env", "npmrc", "npmrc-global"]
    for name in ("npmrc", "npmrc-global", "mirrorctl.env", "README.txt"):
        check_golden(name, (out / name).read_text())


def test_endpoint_replaces_the_mirror_layout() -> None:
    cfg = client_config(MIRROR, endpoint="http://pulp.internal/pulp/content/npm")
    assert "registry=http://pulp.internal/pulp/content/npm/\n" in cfg.files["npmrc"]
    assert cfg.env["NPM_CONFIG_REGISTRY"] == "http://pulp.internal/pulp/content/npm/"
    assert "/npm/npm/" not in cfg.files["npmrc"]


def test_an_endpoint_reads_packuments_through_the_packument_scope() -> None:
    """A published (static) registry: tarballs at <endpoint><name>/-/, packuments under <endpoint>-/packuments/."""
    cfg = client_config(MIRROR, endpoint="http://pulp.internal/pulp/content/npm/")
    for name in ("npmrc", "npmrc-global"):
        lines = cfg.files[name].splitlines()
        assert f"scope={PACKUMENT_SCOPE}" in lines
        assert f"{PACKUMENT_SCOPE}:registry=http://pulp.internal/pulp/content/npm/-/packuments/" in lines
    assert cfg.env["NPM_CONFIG_SCOPE"] == cfg.env["npm_config_scope"] == PACKUMENT_SCOPE
    # The embedded mirror serves packuments and tarballs under one path: no scope there.
    plain = client_config(MIRROR)
    assert "scope" not in plain.files["npmrc"].replace("@scope", "") and "NPM_CONFIG_SCOPE" not in plain.env


def test_registry_url_keeps_a_path_prefix() -> None:
    assert registry_url("https://mirror.internal/packages/") == "https://mirror.internal/packages/npm/"
    cfg = client_config("https://mirror.internal/packages")
    assert cfg.env["NPM_CONFIG_REGISTRY"] == "https://mirror.internal/packages/npm/"
    assert cfg.env["NPM_CONFIG_USERCONFIG"] == f"{INSTALL_DIR}/npmrc"
    assert cfg.env["NPM_CONFIG_GLOBALCONFIG"] == f"{INSTALL_DIR}/npmrc-global"


def test_file_and_environment_agree() -> None:
    """Every setting in npmrc is also in the environment (which beats a project's .npmrc), with one value."""
    cfg = client_config(MIRROR)
    settings = dict(line.split("=", 1) for line in cfg.files["npmrc"].splitlines() if line and not line.startswith("#"))
    assert settings["replace-registry-host"] == "always"
    assert {k: settings[k] for k in ("audit", "fund", "update-notifier")} == dict.fromkeys(
        ("audit", "fund", "update-notifier"), "false"
    )
    for key, value in settings.items():
        assert cfg.env["NPM_CONFIG_" + key.upper().replace("-", "_")] == value
    assert not any(":registry" in k for k in settings)  # no scope is pointed anywhere


# --- what npm 11 makes of it --------------------------------------------------------------------------------


def npm_config(cwd: Path, env: dict[str, str], *keys: str) -> list[str]:
    out = []
    for key in keys:
        done = subprocess.run([NPM, "config", "get", key], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out.append(done.stdout.strip())
    return out


def load_env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


@pytest.fixture
def hostile_machine(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A HOME with a hostile ~/.npmrc, a hostile machine-wide npmrc, and a project whose .npmrc names another
    registry and turns host replacement off: the base environment and the project folder."""
    if not Path(NPM).exists() or not shutil.which("node"):
        skip_or_fail(f"needs the machine's npm at {NPM}")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text(f"registry={HOSTILE}\n@acme:registry={HOSTILE}\naudit=true\n")
    machine = tmp_path / "etc-npmrc"
    machine.write_text(f"registry={HOSTILE}\n@corp:registry={HOSTILE}\nfund=true\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "p", "version": "1.0.0"}\n')
    (project / ".npmrc").write_text(f"registry={HOSTILE}\nreplace-registry-host=never\nupdate-notifier=true\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "NPM_CONFIG_GLOBALCONFIG": str(machine),
        "npm_config_cache": str(tmp_path / "cache"),
    }
    return env, project


def test_control_hostile_settings_apply_without_the_generated_config(
    hostile_machine: tuple[dict[str, str], Path],
) -> None:
    env, project = hostile_machine
    registry, acme, corp = npm_config(project, env, "registry", "@acme:registry", "@corp:registry")
    assert registry == acme == corp == HOSTILE


def test_generated_config_wins_over_user_machine_and_project_files(
    hostile_machine: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, project = hostile_machine
    ws = tmp_path / "ws"
    render_workspace_config(MIRROR, ws, {"npm": NpmEcosystem()}, install_dir=ws)
    env = {**env, **load_env_file(ws / "mirrorctl.env")}
    keys = ("registry", "replace-registry-host", "audit", "fund", "update-notifier", "@acme:registry", "@corp:registry")
    got = dict(zip(keys, npm_config(project, env, *keys), strict=True))
    assert got == {
        "registry": f"{MIRROR}/npm/",
        "replace-registry-host": "always",
        "audit": "false",
        "fund": "false",
        "update-notifier": "false",
        # The user and machine files are not read at all, so their scope registries are gone.
        "@acme:registry": "undefined",
        "@corp:registry": "undefined",
    }


def test_with_an_endpoint_npm_picks_the_packument_scope_over_a_project_scope(
    hostile_machine: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, project = hostile_machine
    (project / ".npmrc").write_text(f"registry={HOSTILE}\nscope=@hostile\n@hostile:registry={HOSTILE}\n")
    endpoint = "http://pulp.internal/pulp/content/npm/"
    ws = tmp_path / "ws"
    render_workspace_config(MIRROR, ws, {"npm": NpmEcosystem()}, install_dir=ws, endpoints={"npm": endpoint})
    env = {**env, **load_env_file(ws / "mirrorctl.env")}
    got = npm_config(project, env, "registry", "scope", f"{PACKUMENT_SCOPE}:registry")
    assert got == [endpoint, PACKUMENT_SCOPE, endpoint + "-/packuments/"]


def test_a_project_scope_registry_is_beyond_configuration(
    hostile_machine: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """Documented limit (clientconfig.py): a project's own ``@scope:registry`` line still applies."""
    env, project = hostile_machine
    (project / ".npmrc").write_text(f"@own:registry={HOSTILE}\n")
    ws = tmp_path / "ws"
    render_workspace_config(MIRROR, ws, {"npm": NpmEcosystem()}, install_dir=ws)
    env = {**env, **load_env_file(ws / "mirrorctl.env")}
    assert npm_config(project, env, "registry", "@own:registry") == [f"{MIRROR}/npm/", HOSTILE]


def test_generated_env_beats_an_inherited_lowercase_npm_config_registry(
    hostile_machine: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """npm reads npm_config_* in any case and the spelling that comes last in the environment wins, so the env
    file sets both spellings: sourcing it replaces an inherited lowercase npm_config_registry."""
    env, project = hostile_machine
    ws = tmp_path / "ws"
    render_workspace_config(MIRROR, ws, {"npm": NpmEcosystem()}, install_dir=ws)
    script = f'set -a; . "{ws / "mirrorctl.env"}"; set +a; exec "{NPM}" config get registry'
    done = subprocess.run(
        ["sh", "-c", script],
        cwd=project,
        env={**env, "npm_config_registry": HOSTILE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{MIRROR}/npm/"
