"""Acceptance: what a lock records about yanked releases (PyPI, PEP 592) and deprecated versions (npm) reaches the
real clients inside, as they would see it outside.

Outside, `mirrorctl lock` and `mirrorctl snapshot` run through the CLI against the fixture upstreams; the store
then serves what the locks name (as an import leaves it), and inside a loopback-only network namespace
(`unshare -n`):

* pip and uv install a yanked release pinned with ``==``, warning about it with the upstream's reason, and an
  unpinned requirement takes the newest release that is not yanked (the mirror carries both);
* npm installs a deprecated version and warns with its deprecation message.
"""

from __future__ import annotations

import platform
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.inside.store import Store, View
from mirrorctl.inside.workspace import render_workspace_config
from mirrorctl.lockfile import merge_artifacts, read_lock
from tests.fixtures.netns import (
    NODE_PROBE,
    PYTHON_PROBE,
    VENV_BIN,
    netns_script,
    npm_client_env,
    python_client_env,
    read_timed_step,
    require_netns,
    run_in_netns,
    serve_mirror,
    uv_present,
)
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

from .fixtures.store_content import publish_view

pytestmark = pytest.mark.netns

PORT = 18082
REASON = "broken build, use 1.0"
NPM = Path("/usr/bin/npm")
DEPRECATED = "mctl-old-pkg is unmaintained, use mctl-new-pkg"


def lock_and_snapshot(work: Path, profiles: dict[str, str], upstream: str) -> View:
    """`mirrorctl lock` and `mirrorctl snapshot` through the CLI; then the store serves every lock's artifacts."""
    (work / "mirrorctl.toml").write_text(f'[store]\npath = "{work / "store"}"\n{upstream}')
    (work / "profiles").mkdir()
    for name, text in profiles.items():
        (work / "profiles" / f"{name}.toml").write_text(text)
    runner = CliRunner()
    for args in (["lock"], ["snapshot"]):
        done = runner.invoke(app, ["-q", "--config", str(work / "mirrorctl.toml"), *args])
        assert done.exit_code == 0, done.output
    locks = [read_lock(work / "profiles" / f"{name}.lock").artifacts for name in profiles]
    return publish_view(Store(work / "store"), merge_artifacts(locks))


PIP_SCRIPT = netns_script(
    serve_mirror(PYTHON_PROBE)
    + textwrap.dedent(
        """\
    for v in pip-pinned pip-floating uv-pinned uv-floating; do
        "$BASE_PYTHON" -m venv "$WORK/$v" > "$OUT/venv-$v.log" 2>&1
    done
    set -a; . "$WS/mirrorctl.env"; set +a
    step pip-pinned "$WORK/pip-pinned/bin/python" -m pip install "mctl-yank==2.0"
    step pip-floating "$WORK/pip-floating/bin/python" -m pip install mctl-yank
    step uv-pinned "$UV" pip install --python "$WORK/uv-pinned/bin/python" "mctl-yank==2.0"
    step uv-floating "$UV" pip install --python "$WORK/uv-floating/bin/python" mctl-yank
    for v in pip-pinned pip-floating uv-pinned uv-floating; do
        step "$v-version" "$WORK/$v/bin/python" -c "import mctl_yank; print(mctl_yank.VALUE)"
    done
    """
    )
)


def test_pip_and_uv_warn_about_a_locked_yanked_release_and_install_it_only_when_pinned(
    tmp_path: Path, pypi_upstream: FixtureUpstream
) -> None:
    require_netns(uv_present)
    pypi_upstream.add(Dist("mctl-yank", "1.0", code="VALUE = '1.0'\n"))
    pypi_upstream.add(Dist("mctl-yank", "2.0", code="VALUE = '2.0'\n"), yanked=REASON)
    target = '\npython = ["3.11"]\nplatforms = ["manylinux_2_28_x86_64"]\n'
    profiles = {
        "pinned": '[pypi]\nrequirements = ["mctl-yank==2.0"]' + target,
        "floating": '[pypi]\nrequirements = ["mctl-yank"]' + target,
    }
    view = lock_and_snapshot(tmp_path, profiles, f'[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n')
    served = {(a.version, a.attrs.get("yanked")) for a in view.artifacts}
    assert served == {("1.0", None), ("2.0", REASON)}, "the lock kept the yank and its reason"

    ws = tmp_path / "ws"
    render_workspace_config(f"http://127.0.0.1:{PORT}", ws, {"pypi": PypiEcosystem()}, install_dir=ws)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **python_client_env(tmp_path, ws),
        "MIRRORCTL": str(VENV_BIN / "mirrorctl"),
        "CONFIG": str(tmp_path / "mirrorctl.toml"),
        "PORT": str(PORT),
    }
    done = run_in_netns(tmp_path / "yanked.sh", PIP_SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log

    rc, log, _ = read_timed_step(out, "pip-pinned")
    assert rc == 0, log
    assert "is a yanked version" in log and f"Reason for being yanked: {REASON}" in log, log
    rc, log, _ = read_timed_step(out, "uv-pinned")
    assert rc == 0, log
    assert "mctl-yank==2.0" in log and "is yanked" in log and REASON in log, log
    for client in ("pip", "uv"):
        rc, log, _ = read_timed_step(out, f"{client}-floating")
        assert rc == 0, log
        assert "yanked" not in log.lower(), log
        assert read_timed_step(out, f"{client}-pinned-version")[:2] == (0, "2.0\n")
        assert read_timed_step(out, f"{client}-floating-version")[:2] == (0, "1.0\n"), "not the yanked 2.0"
    assert '/pypi/simple/mctl-yank/ HTTP/1.1" 200' in serve_log


NODE_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())

NPM_SCRIPT = netns_script(
    serve_mirror(NODE_PROBE)
    + textwrap.dedent(
        """\
    set -a; . "$WS/mirrorctl.env"; set +a
    export npm_config_cache="$WORK/npm-cache"
    step install sh -c "cd '$WORK/p' && npm install --no-progress --loglevel warn mctl-old-pkg"
    """
    )
)


def _npm_present() -> str | None:
    if not NPM.exists() or not shutil.which("node"):
        return f"needs the machine's npm at {NPM} and node"
    return None if NODE_ARCH else f"no npm cpu name known for {platform.machine()}"


def test_npm_warns_about_a_locked_deprecated_version(tmp_path: Path, npm_registry: FixtureNpmRegistry) -> None:
    require_netns(_npm_present)
    pkg = PkgSpec("mctl-old-pkg", "1.0.0", files={"index.js": "module.exports = 1;\n"})
    npm_registry.add(pkg, deprecated=DEPRECATED)
    profiles = {"web": f'[npm]\npackages = ["mctl-old-pkg@^1"]\nplatforms = ["linux-{NODE_ARCH}"]\n'}
    view = lock_and_snapshot(tmp_path, profiles, f'[upstreams.npm]\nurl = "{npm_registry.url}"\n')
    (art,) = view.artifacts
    assert art.attrs["deprecated"] == DEPRECATED, "the lock kept the deprecation"

    ws = tmp_path / "ws"
    render_workspace_config(f"http://127.0.0.1:{PORT}", ws, {"npm": NpmEcosystem()}, install_dir=ws)
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "package.json").write_text('{"name": "p", "version": "1.0.0"}\n')
    out = tmp_path / "out"
    out.mkdir()
    env = npm_client_env(
        tmp_path, ws, home, PORT,
        CONFIG=str(tmp_path / "mirrorctl.toml"),
    )
    done = run_in_netns(tmp_path / "deprecated.sh", NPM_SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log
    rc, log, _ = read_timed_step(out, "install")
    assert rc == 0, log + serve_log
    assert f"deprecated mctl-old-pkg@1.0.0: {DEPRECATED}" in log, log
    assert (tmp_path / "p" / "node_modules" / "mctl-old-pkg" / "index.js").exists()
