"""Acceptance (issue 13 item 7): a profile asks for ``mctl-lint@^9`` and a plugin whose peer range ``>=8`` a
newer major (10, the upstream's ``latest``) also meets. Locked against the fixture registry, imported into a
store and served by ``mirrorctl serve`` inside a loopback-only network namespace, the machine's real npm
installs what the team declared: ``npm install mctl-lint`` takes 9, and no 10 is on the mirror at all."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.inside.store import Store
from mirrorctl.inside.workspace import render_workspace_config
from tests.fixtures.netns import (
    NODE_PROBE,
    netns_script,
    npm_client_env,
    read_timed_step,
    require_netns,
    run_in_netns,
    serve_mirror,
)
from tests.fixtures.npm_registry import FixtureNpmRegistry, npm_registry_fixture  # noqa: F401
from tests.fixtures.store_content import publish_view
from tests.test_acceptance_npm import _npm_and_node
from tests.test_npm_lock import lock
from tests.test_npm_peers import PROFILE, lint_world

pytestmark = pytest.mark.netns

PORT = 18083

SCRIPT = netns_script(
    serve_mirror(NODE_PROBE)
    + textwrap.dedent(
        """\
    set -a; . "$WS/mirrorctl.env"; set +a
    export npm_config_cache="$WORK/cache"
    step latest sh -c "cd '$WORK/p1' && npm view mctl-lint dist-tags.latest"
    step install sh -c "cd '$WORK/p1' && npm install --no-progress mctl-lint mctl-lint-config"
    step newer sh -c "cd '$WORK/p2' && npm install --no-progress mctl-lint@10"
    """
    )
)


async def test_npm_install_inside_takes_the_major_the_profile_declared(
    npm_registry: FixtureNpmRegistry, tmp_path: Path
) -> None:
    require_netns(_npm_and_node)
    lint_world(npm_registry)
    arts, _ = await lock(tmp_path, npm_registry.url, PROFILE)  # the tarballs land in tmp_path/store
    store = Store(tmp_path / "store")
    publish_view(store, arts)
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    ws = tmp_path / "ws"
    render_workspace_config(f"http://127.0.0.1:{PORT}", ws, {"npm": NpmEcosystem()}, install_dir=ws)
    home = tmp_path / "home"
    home.mkdir()
    for project in ("p1", "p2"):
        (tmp_path / project).mkdir()
        (tmp_path / project / "package.json").write_text(json.dumps({"name": project, "version": "1.0.0"}) + "\n")
    out = tmp_path / "out"
    out.mkdir()

    env = npm_client_env(tmp_path, ws, home, PORT, CONFIG=str(config))
    done = run_in_netns(tmp_path / "peers.sh", SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log

    rc, log, _ = read_timed_step(out, "latest")
    assert rc == 0 and log.strip() == "9.5.0", log + serve_log
    rc, log, _ = read_timed_step(out, "install")
    assert rc == 0, log + serve_log
    modules = tmp_path / "p1" / "node_modules"
    installed = {p.name: json.loads((p / "package.json").read_text())["version"] for p in modules.glob("mctl-*")}
    assert installed == {
        "mctl-lint": "9.5.0",
        "mctl-lint-core": "9.0.0",
        "mctl-lint-config": "2.0.0",
        "mctl-lint-plugin": "1.2.0",  # its peer >=8 met by the 9 beside it
    }, installed
    manifest = json.loads((tmp_path / "p1" / "package.json").read_text())
    assert manifest["dependencies"]["mctl-lint"] == "^9.5.0", manifest
    # The major no one declared is not there to be taken.
    rc, log, _ = read_timed_step(out, "newer")
    assert rc != 0 and "ETARGET" in log, log
