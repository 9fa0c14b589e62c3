"""Acceptance for npm in Pulp: `mirrorctl publish --to` fills a pulp_file repository with the static registry
layout, `mirrorctl workspace-config --target` writes the npm config, and the machine's real npm, inside a
loopback-only network namespace that reaches only Pulp's content app (one port bridged in, the same port):

* installs a scoped package with a dependency chain, a package with one optional native package per platform
  (os/cpu, as esbuild publishes them: this machine's variant installed, the other skipped but read and locked)
  and a plugin with a peer dependency (installed within its range); `npm ci` reinstalls from the lock it wrote;
* `npm ci` of a project whose package-lock.json was made against the public registry (every ``resolved`` on
  ``https://registry.example.test/<name>/-/<file>``, written here by hand from the artifacts), in a project
  whose own .npmrc names a dead registry, a scope and ``replace-registry-host=never``: installs from Pulp;
* refusals: the same lock with one integrity from other bytes fails with EINTEGRITY and installs nothing; a
  lock naming a package that was never published fails fast with a 404, as does `npm install` of one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.npm.clientconfig import PACKUMENT_DIR
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from tests.conftest import skip_or_fail
from tests.fixtures.netns import (
    BASE_PYTHON,
    BRIDGE,
    PULP_CONTENT_BRIDGE,
    netns_script,
    read_step,
    require_netns,
    run_in_netns,
    tcp_bridges,
    uv_present,
)
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401

from .fixtures.store_content import publish_view
from .test_pulp_npm import Made, delete_npm_repository

pytestmark = [pytest.mark.live, pytest.mark.netns]

NPM = shutil.which("npm") or "/usr/bin/npm"
PUBLIC_LOOKING = "https://registry.example.test/"
DEAD = "http://127.0.0.1:9/"  # nothing listens there inside the namespace: a leak fails fast
NODE_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
OTHER_ARCH = "arm64" if NODE_ARCH == "x64" else "x64"


def public_project(root: Path, locked: list[tuple[Artifact, dict[str, str]]], wanted: list[str]) -> None:
    """A project with a package-lock.json v3 as npm makes it against the public registry: ``resolved`` at
    ``<registry>/<name>/-/<basename>-<version>.tgz``, integrity from the artifacts (each with its dependencies);
    ``wanted`` are the root's dependencies. Its own .npmrc is hostile."""
    root.mkdir()
    versions = {a.name: a.version for a, _ in locked}
    deps = {name: f"^{versions[name]}" for name in wanted}
    (root / "package.json").write_text(json.dumps({"name": root.name, "version": "1.0.0", "dependencies": deps}))
    packages: dict[str, object] = {"": {"name": root.name, "version": "1.0.0", "dependencies": deps}}
    for a, requires in locked:
        packages[f"node_modules/{a.name}"] = {
            "version": a.version,
            "resolved": f"{PUBLIC_LOOKING}{a.name}/-/{a.filename}",
            "integrity": a.attrs["integrity"],
            **({"dependencies": requires} if requires else {}),
        }
    lock = {"name": root.name, "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": packages}
    (root / "package-lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    (root / ".npmrc").write_text(f"registry={DEAD}\nreplace-registry-host=never\nscope=@dead\n")


SCRIPT = netns_script(
    PULP_CONTENT_BRIDGE
    + textwrap.dedent(
        """\
    # Only what workspace-config wrote (HOME elsewhere: no user npmrc could help).
    set -a; . "$WS/mirrorctl.env"; set +a
    export HOME="$WORK/home" npm_config_cache="$WORK/npm-cache"
    mkdir -p "$HOME" "$WORK/proj" && cd "$WORK/proj"
    echo '{"name": "acceptance", "version": "1.0.0", "private": true}' > package.json
    step install "$NPM" install --no-audit --loglevel http "@mctl/top" mctl-esb mctl-plugin
    step require node -e "console.log(require('@mctl/top'), require('mctl-mid'), require('mctl-leaf'))"
    step require-native node -e "console.log(require('@mctl/esb-linux-' + process.arch), require('mctl-host'))"
    rm -rf node_modules "$WORK/npm-cache"
    step ci "$NPM" ci --loglevel http
    step missing "$NPM" install --loglevel http mctl-never-published
    # Locks made against the public registry (written by the test); a fresh cache for each. npm retries a
    # tarball that fails its integrity check (pacote refetches, each fetch with up to 2 retries backing off
    # 10-60 s): short backoffs keep the refusal's outcome and make it quick enough for the step timeout.
    export npm_config_fetch_retry_mintimeout=100 npm_config_fetch_retry_maxtimeout=1000
    for p in public tampered absent; do
        mkdir -p "$WORK/$p-cache"
        cd "$WORK/$p" && npm_config_cache="$WORK/$p-cache" step "ci-$p" "$NPM" ci --loglevel http
    done
    cd "$WORK/public" && step public-require node -e "console.log(require('@mctl/top'), require('mctl-leaf'))"
    """
    ),
    step_timeout=120,
)


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:  # noqa: F811
    name = f"mctl-npm-acc-{uuid.uuid4().hex[:10]}"
    yield name
    delete_npm_repository(pulp_service, name)


def test_real_npm_installs_a_scoped_package_and_its_chain_from_pulp(
    pulp_service: PulpService,  # noqa: F811
    repo_name: str,
    tmp_path: Path,
) -> None:
    require_netns(uv_present)
    if not Path(NPM).exists():
        skip_or_fail("the real npm is not installed")
    if NODE_ARCH is None:
        skip_or_fail(f"no npm cpu name known for {platform.machine()}")

    made = Made(Store(tmp_path / "store"), uuid.uuid4().hex)
    arts = [
        made.artifact("@mctl/top", "1.0.0", dependencies={"mctl-mid": "^1.0.0"}),
        made.artifact("mctl-mid", "1.0.0", dependencies={"mctl-leaf": "~2.1.0"}),
        made.artifact("mctl-mid", "1.4.0", dependencies={"mctl-leaf": "~2.1.0"}),
        made.artifact("mctl-leaf", "2.1.3"),
        made.artifact("mctl-leaf", "2.2.0"),  # outside ~2.1.0: must not be chosen
        made.artifact(
            "mctl-esb",
            "1.0.0",
            optional_dependencies={"@mctl/esb-linux-x64": "1.0.0", "@mctl/esb-linux-arm64": "1.0.0"},
        ),
        made.artifact("@mctl/esb-linux-x64", "1.0.0", os=("linux",), cpu=("x64",)),
        made.artifact("@mctl/esb-linux-arm64", "1.0.0", os=("linux",), cpu=("arm64",)),
        made.artifact("mctl-plugin", "1.0.0", peer_dependencies={"mctl-host": "^2.0.0"}),
        made.artifact("mctl-host", "2.1.0"),
        made.artifact("mctl-host", "3.0.0"),  # outside the peer range: must not be chosen
    ]
    publish_view(made.store, arts, sequence=1)
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{made.store.root}"\n\n[targets.pulp]\nkind = "pulp"\nurl = "{pulp_service.url}"\n'
        f'content-url = "{pulp_service.content_url}"\n'
        f'username-env = "PL_USER"\npassword-env = "PL_PASS"\nrepositories = {{ npm = "{repo_name}" }}\n'
    )
    runner = CliRunner()
    env = {"PL_USER": pulp_service.username, "PL_PASS": pulp_service.password}

    def cli(*args: str) -> str:
        done = runner.invoke(app, ["--config", str(config), *args], env=env)
        assert done.exit_code == 0, done.output
        return done.output

    cli("-q", "publish", "--to", "pulp")
    top, _, mid, leaf, other_leaf = arts[:5]
    chain = [(top, {"mctl-mid": "^1.0.0"}), (mid, {"mctl-leaf": "~2.1.0"}), (leaf, {})]
    public_project(tmp_path / "public", chain, ["@mctl/top"])
    forged = Artifact(
        leaf.ecosystem,
        leaf.name,
        leaf.version,
        leaf.path,
        leaf.size,
        leaf.sha256,
        (),
        {
            "integrity": other_leaf.attrs["integrity"]  # valid SRI, other bytes
        },
    )
    public_project(tmp_path / "tampered", [*chain[:2], (forged, {})], ["@mctl/top"])
    never = Artifact(
        "npm",
        "mctl-never-published",
        "1.0.0",
        "mctl-never-published/-/mctl-never-published-1.0.0.tgz",
        1,
        "0" * 64,
        (),
        {"integrity": leaf.attrs["integrity"]},
    )
    public_project(tmp_path / "absent", [*chain, (never, {})], ["@mctl/top", "mctl-never-published"])
    ws = tmp_path / "ws"
    cli("workspace-config", "--target", "pulp", "--out", str(ws), "--install-dir", str(ws))
    registry = f"{pulp_service.content_url}/pulp/content/{repo_name}/"
    assert f"NPM_CONFIG_REGISTRY={registry}" in (ws / "mirrorctl.env").read_text()
    assert pulp_service.password not in "".join(p.read_text() for p in ws.iterdir())

    port = urlsplit(pulp_service.content_url).port
    assert port
    out = tmp_path / "out"
    out.mkdir()
    sock = tmp_path / "content.sock"
    run_env = {
        **{k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")},
        "BASE_PYTHON": str(BASE_PYTHON),
        "BRIDGE": str(BRIDGE),
        "CONTENT_PORT": str(port),
        "CONTENT_SOCK": str(sock),
        "REGISTRY": registry,
        "PROBE": registry + PACKUMENT_DIR + "mctl-leaf",
        "WORK": str(tmp_path),
        "WS": str(ws),
        "NPM": NPM,
    }
    with tcp_bridges((sock, port)):
        ran = run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, run_env, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert (out / "up").read_text().strip() == "1", (out / "bridge.log").read_text()

    rc, log = read_step(out, "install")
    assert rc == 0, log
    for name in ("mctl-esb", "@mctl/esb-linux-x64", "@mctl/esb-linux-arm64", "mctl-plugin", "mctl-host"):
        assert f"GET 200 {registry}{PACKUMENT_DIR}{name.replace('/', '%2f')} " in log, (name, log)
    rc, log = read_step(out, "require")
    assert rc == 0 and "@mctl/top@1.0.0 mctl-mid@1.4.0 mctl-leaf@2.1.3" in log, log
    lock = json.loads((tmp_path / "proj" / "package-lock.json").read_text())
    pins = {k.removeprefix("node_modules/"): v["version"] for k, v in lock["packages"].items() if k}
    assert pins == {
        "@mctl/top": "1.0.0",
        "mctl-mid": "1.4.0",
        "mctl-leaf": "2.1.3",
        "mctl-esb": "1.0.0",
        "@mctl/esb-linux-x64": "1.0.0",  # npm locks every platform's variant (it read both packuments)
        "@mctl/esb-linux-arm64": "1.0.0",
        "mctl-plugin": "1.0.0",
        "mctl-host": "2.1.0",  # the peer, within its range
    }, pins
    assert lock["packages"][f"node_modules/@mctl/esb-linux-{OTHER_ARCH}"]["optional"] is True
    assert lock["packages"][f"node_modules/@mctl/esb-linux-{OTHER_ARCH}"]["cpu"] == [OTHER_ARCH]
    rc, log = read_step(out, "require-native")
    assert rc == 0 and f"@mctl/esb-linux-{NODE_ARCH}@1.0.0 mctl-host@2.1.0" in log, log
    modules = tmp_path / "proj" / "node_modules"
    assert (modules / "@mctl" / f"esb-linux-{NODE_ARCH}" / "package.json").is_file()
    assert not (modules / "@mctl" / f"esb-linux-{OTHER_ARCH}").exists()  # the other platform's: skipped
    assert all(v["resolved"].startswith(registry) and v["integrity"] for k, v in lock["packages"].items() if k)

    rc, log = read_step(out, "ci")
    assert rc == 0, log
    assert (tmp_path / "proj" / "node_modules" / "mctl-leaf" / "package.json").is_file()
    assert (modules / "@mctl" / f"esb-linux-{NODE_ARCH}" / "package.json").is_file()
    assert (modules / "mctl-host" / "package.json").is_file()
    assert not (modules / "@mctl" / f"esb-linux-{OTHER_ARCH}").exists()

    rc, log = read_step(out, "missing")
    assert rc not in (0, 124), log
    assert "E404" in log and "mctl-never-published" in log, log
    assert int((out / "missing.secs").read_text()) < 30, "a missing package must fail fast"

    # npm ci of the public-registry lock: every tarball from Pulp at the public layout, nothing else asked.
    rc, log = read_step(out, "ci-public")
    assert rc == 0, log
    for a in (top, mid, leaf):
        assert f"GET 200 {registry}{a.name}/-/{a.filename}" in log, log
    assert "registry.example.test" not in log and "127.0.0.1:9/" not in log, log
    rc, log = read_step(out, "public-require")
    assert rc == 0 and "@mctl/top@1.0.0 mctl-leaf@2.1.3" in log, log

    rc, log = read_step(out, "ci-tampered")
    assert rc not in (0, 124) and "EINTEGRITY" in log, log
    assert not (tmp_path / "tampered" / "node_modules" / "mctl-leaf").exists()

    rc, log = read_step(out, "ci-absent")
    assert rc not in (0, 124) and "404" in log and "mctl-never-published" in log, log
    assert int((out / "ci-absent.secs").read_text()) < 30, "a package never published must fail fast"
    assert not (tmp_path / "absent" / "node_modules" / "mctl-never-published").exists()
