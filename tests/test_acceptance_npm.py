"""Acceptance: the machine's real npm (npm 11) installs from `mirrorctl serve` inside a loopback-only network
namespace, configured only by the files `mirrorctl workspace-config` wrote.

The store holds real npm-pack tarballs: a scoped package with a dependency and one optional native package
per platform (os/cpu), and a plugin with a peer dependency. Around the generated config sit hostile settings
that name a dead registry: a ``~/.npmrc`` (registry and a scope registry) and a project ``.npmrc``; any leak
makes npm fail. Then:

* ``npm install`` into a fresh project takes the closure from the mirror: the matching native package only,
  the peer dependency installed, the highest matching version of the dependency;
* ``npm ci`` of a project whose package-lock.json names a public-looking registry
  (``https://registry.example.test/``) installs from the mirror thanks to ``replace-registry-host=always``;
* a package the mirror does not carry fails at once with a 404.

Every step runs under a hard timeout, with its own fresh npm cache.
"""

from __future__ import annotations

import json
import platform
import shutil
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

from .fixtures.npm_registry import PkgSpec
from .fixtures.npm_store import npm_artifact
from .fixtures.store_content import publish_view

pytestmark = pytest.mark.netns

PORT = 18081
NPM = Path("/usr/bin/npm")
PUBLIC_LOOKING = "https://registry.example.test/"
DEAD = "http://127.0.0.1:9/"  # nothing listens there inside the namespace: a leak fails fast

NODE_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
OTHER_ARCH = "arm64" if NODE_ARCH == "x64" else "x64"

PACKAGES = (
    PkgSpec(
        "@acme/liba",
        "1.0.0",
        dependencies={"mctl-left": "^1.0.0"},
        optional_dependencies={f"mctl-native-linux-{NODE_ARCH}": "0.5.0", f"mctl-native-linux-{OTHER_ARCH}": "0.5.0"},
        files={"index.js": "module.exports = require('mctl-left') + '+liba';\n"},
    ),
    PkgSpec("mctl-left", "1.0.0", files={"index.js": "module.exports = 'left-1.0.0';\n"}),
    PkgSpec("mctl-left", "1.2.0", files={"index.js": "module.exports = 'left-1.2.0';\n"}),
    PkgSpec("mctl-left", "2.0.0", files={"index.js": "module.exports = 'left-2.0.0';\n"}),
    PkgSpec(f"mctl-native-linux-{NODE_ARCH}", "0.5.0", os=("linux",), cpu=(NODE_ARCH or "x64",)),
    PkgSpec(f"mctl-native-linux-{OTHER_ARCH}", "0.5.0", os=("linux",), cpu=(OTHER_ARCH,)),
    PkgSpec("mctl-plugin", "1.0.0", peer_dependencies={"mctl-host": "^2.0.0"}),
    PkgSpec("mctl-host", "2.1.0"),
    PkgSpec("mctl-host", "3.0.0"),
)


def _npm_and_node() -> str | None:
    if not NPM.exists() or not shutil.which("node"):
        return f"needs the machine's npm at {NPM} and node"
    if NODE_ARCH is None:
        return f"no npm cpu name known for {platform.machine()}"
    return None


SCRIPT = netns_script(
    serve_mirror(NODE_PROBE)
    + textwrap.dedent(
        """\

    # Only what workspace-config wrote, on top of the hostile ~/.npmrc and project .npmrc.
    set -a; . "$WS/mirrorctl.env"; set +a
    step config sh -c "cd '$WORK/p1' && npm config get registry && npm config get @acme:registry"

    export npm_config_cache="$WORK/cache-install"
    step install sh -c "cd '$WORK/p1' && npm install --no-progress @acme/liba mctl-plugin"
    step run sh -c "cd '$WORK/p1' && node -e \\"console.log(require('@acme/liba'))\\""

    # The lock as it would come from outside: every resolved URL on a public-looking registry.
    mkdir -p "$WORK/p2"
    cp "$WORK/p1/package.json" "$WORK/p2/package.json"
    sed "s#http://127.0.0.1:$PORT/npm/#$PUBLIC_LOOKING#g" "$WORK/p1/package-lock.json" > "$WORK/p2/package-lock.json"
    export npm_config_cache="$WORK/cache-ci"
    step ci sh -c "cd '$WORK/p2' && npm ci --no-progress"
    step ci-run sh -c "cd '$WORK/p2' && node -e \\"console.log(require('@acme/liba'))\\""

    export npm_config_cache="$WORK/cache-missing"
    step missing sh -c "cd '$WORK/p3' && npm install --no-progress mctl-missing"
    """
    )
)


def test_real_npm_installs_only_from_the_mirror(tmp_path: Path) -> None:
    require_netns(_npm_and_node)

    store = Store(tmp_path / "store")
    publish_view(store, [npm_artifact(store, spec) for spec in PACKAGES])
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    ws = tmp_path / "ws"
    render_workspace_config(f"http://127.0.0.1:{PORT}", ws, {"npm": NpmEcosystem()}, install_dir=ws)

    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text(f"registry={DEAD}\n@acme:registry={DEAD}\nomit-lockfile-registry-resolved=true\n")
    for project in ("p1", "p3"):
        (tmp_path / project).mkdir()
        (tmp_path / project / "package.json").write_text(json.dumps({"name": project, "version": "1.0.0"}) + "\n")
        (tmp_path / project / ".npmrc").write_text(f"registry={DEAD}\nreplace-registry-host=never\n")

    out = tmp_path / "out"
    out.mkdir()
    env = npm_client_env(
        tmp_path, ws, home, PORT,
        CONFIG=str(config),
        PUBLIC_LOOKING=PUBLIC_LOOKING,
    )
    done = run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log

    rc, log, _ = read_timed_step(out, "config")
    assert rc == 0 and log.split() == [f"http://127.0.0.1:{PORT}/npm/", "undefined"], log

    # npm install: the closure, from the mirror.
    rc, log, _ = read_timed_step(out, "install")
    assert rc == 0, log + serve_log
    modules = tmp_path / "p1" / "node_modules"
    installed = {
        p.parent.name + "/" + p.name if p.parent.name.startswith("@") else p.name: json.loads(
            (p / "package.json").read_text()
        )["version"]
        for p in [*modules.glob("*"), *modules.glob("@*/*")]
        if (p / "package.json").exists()
    }
    assert installed == {
        "@acme/liba": "1.0.0",
        "mctl-left": "1.2.0",  # the highest ^1.0.0, not 2.0.0
        f"mctl-native-linux-{NODE_ARCH}": "0.5.0",  # only this platform's optional package
        "mctl-plugin": "1.0.0",
        "mctl-host": "2.1.0",  # the peer dependency, installed by npm within its range
    }, installed
    rc, log, _ = read_timed_step(out, "run")
    assert rc == 0 and log.strip() == "left-1.2.0+liba", log
    lock = (tmp_path / "p1" / "package-lock.json").read_text()
    assert f"http://127.0.0.1:{PORT}/npm/@acme/liba/-/liba-1.0.0.tgz" in lock  # the hostile ~/.npmrc was not read

    # npm ci of a lock made against another registry.
    lock2 = (tmp_path / "p2" / "package-lock.json").read_text()
    assert f"{PUBLIC_LOOKING}@acme/liba/-/liba-1.0.0.tgz" in lock2 and "127.0.0.1" not in lock2
    rc, log, _ = read_timed_step(out, "ci")
    assert rc == 0, log + serve_log
    rc, log, _ = read_timed_step(out, "ci-run")
    assert rc == 0 and log.strip() == "left-1.2.0+liba", log
    assert not (tmp_path / "p2" / "node_modules" / f"mctl-native-linux-{OTHER_ARCH}").exists()

    # A package the mirror does not carry: a 404, at once.
    rc, log, secs = read_timed_step(out, "missing")
    assert rc != 0, log
    assert "E404" in log and "mctl-missing" in log, log
    assert secs < 30, f"npm took {secs}s to give up on a missing package"
