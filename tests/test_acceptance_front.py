"""Acceptance: the real pip and the real npm install from `mirrorctl serve --front nginx` inside a loopback-only
network namespace, configured only by what `mirrorctl workspace-config` wrote; nginx (started by serve) sends the
package files, mirrorctl behind it the index pages and packuments."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.inside.store import Store
from mirrorctl.inside.workspace import render_workspace_config
from tests.fixtures.netns import (
    PYTHON_PROBE,
    VENV_BIN,
    netns_script,
    python_client_env,
    read_timed_step,
    require_netns,
    run_in_netns,
    serve_mirror,
)
from tests.test_serve_front import require_nginx

from .fixtures.npm_registry import PkgSpec
from .fixtures.npm_store import npm_artifact
from .fixtures.store_content import CLOSURE, publish_view, sdist_artifact, wheel_artifact

pytestmark = pytest.mark.netns

PORT = 18082
NPM = Path("/usr/bin/npm")
NPM_PACKAGES = (
    PkgSpec("@acme/front", "1.0.0", dependencies={"mctl-front-left": "^1.0.0"},
            files={"index.js": "module.exports = require('mctl-front-left') + '+front';\n"}),
    PkgSpec("mctl-front-left", "1.1.0", files={"index.js": "module.exports = 'left-1.1.0';\n"}),
)

SCRIPT = netns_script(
    serve_mirror(PYTHON_PROBE, args='--host 127.0.0.1 --port "$PORT" --front nginx --workers 2')
    + textwrap.dedent(
        """\

    "$BASE_PYTHON" -m venv "$WORK/venv" > "$OUT/venv.log" 2>&1
    set -a; . "$WS/mirrorctl.env"; set +a
    step pip-install "$WORK/venv/bin/python" -m pip install "Mctl-Demo.App[fast]"
    step pip-freeze "$WORK/venv/bin/python" -m pip freeze
    step pip-missing "$WORK/venv/bin/python" -m pip install mctl-demo-evil
    if [ -n "$NPM_OK" ]; then
        export HOME="$WORK/home" npm_config_cache="$WORK/npm-cache"
        step npm-install sh -c "cd '$WORK/p1' && npm install --no-progress @acme/front"
        step npm-run sh -c "cd '$WORK/p1' && node -e \\"console.log(require('@acme/front'))\\""
    fi
    """
    )
)


def test_real_pip_and_npm_install_through_the_nginx_front(tmp_path: Path) -> None:
    require_netns()
    require_nginx()
    npm_ok = NPM.exists()

    store = Store(tmp_path / "store")
    build = tmp_path / "build"
    arts = [wheel_artifact(store, d, build) for d in CLOSURE]
    arts.append(sdist_artifact(store, CLOSURE[3], build))
    arts += [npm_artifact(store, spec) for spec in NPM_PACKAGES]
    publish_view(store, arts)
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    ws = tmp_path / "ws"
    ecosystems = {"pypi": PypiEcosystem(), "npm": NpmEcosystem()}
    render_workspace_config(f"http://127.0.0.1:{PORT}", ws, ecosystems, install_dir=ws)  # type: ignore[arg-type]
    (tmp_path / "home").mkdir()
    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / "package.json").write_text(json.dumps({"name": "p1", "version": "1.0.0"}) + "\n")

    out = tmp_path / "out"
    out.mkdir()
    env = {
        **python_client_env(tmp_path, ws),
        "MIRRORCTL": str(VENV_BIN / "mirrorctl"),
        "CONFIG": str(config),
        "PORT": str(PORT),
        "NPM_OK": "1" if npm_ok else "",
    }
    done = run_in_netns(tmp_path / "front.sh", SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log
    assert "package files sent by nginx" in serve_log, serve_log

    rc, log, _ = read_timed_step(out, "pip-install")
    assert rc == 0, log + serve_log
    _, freeze, _ = read_timed_step(out, "pip-freeze")
    pairs = (line.strip().split("==") for line in freeze.splitlines() if "==" in line)
    pins = {f"{canonicalize_name(name)}=={version}" for name, version in pairs}
    assert pins == {"mctl-demo-app==1.2.0", "mctl-demo-base==1.5.0", "mctl-demo-fast==0.3", "mctl-demo-lib==2.1.0"}
    rc, log, secs = read_timed_step(out, "pip-missing")
    assert rc not in (0, 124) and "No matching distribution" in log and secs < 60, log
    # nginx's access log: the wheels and their metadata sent (200), the pages through to mirrorctl.
    assert re.search(r'"GET /pypi/files/[0-9a-f]{64}/mctl_demo_app-1\.2\.0-py3-none-any\.whl HTTP/1\.1" 200', serve_log)
    assert re.search(r'"GET /pypi/simple/mctl-demo-evil/ HTTP/1\.1" 404', serve_log)

    if not npm_ok:
        pytest.skip(f"pip passed; npm is not installed at {NPM}")
    rc, log, _ = read_timed_step(out, "npm-install")
    assert rc == 0, log + serve_log
    rc, log, _ = read_timed_step(out, "npm-run")
    assert rc == 0 and log.strip() == "left-1.1.0+front", log
    assert re.search(r'"GET /npm/@acme/front/-/front-1\.0\.0\.tgz HTTP/1\.1" 200', serve_log), serve_log
