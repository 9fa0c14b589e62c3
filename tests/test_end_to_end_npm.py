"""Issue #4 and #6 end to end for npm: what `mirrorctl lock` made of a profile is what the real npm installs,
through the whole update cycle, judged by npm 11 in a loopback-only namespace and by Pulp.

Outside: the fixture registry (tarballs packed by the tests) holds a scoped package with a dependency chain, a
package with one optional native package per platform (os/cpu, as esbuild publishes them), a plugin with a
peer dependency, and two majors of a library. The CLI locks the profile for linux-x64 and linux-arm64,
snapshots it and exports a full bundle. Inside: import into channel prod, `state export`. Outside: the
library's range moves to the next major -> lock -> snapshot -> `bundle export --since` (a review copy whole,
the carried one in chunks over two folders). Inside: the delta goes into channel dev; `diff` names the
upgrade. Then, in a loopback-only namespace, `mirrorctl serve --channel prod` and the real npm (configured only
by `workspace-config`) install the profile's packages into fresh projects with fresh caches: the old library,
the new one after `promote`, the old one again after `rollback`; the namespace's own native variant, the peer,
the scoped package; a package never mirrored fails at once with E404. Last, `publish --channel prod --to pulp`
follows the channel into Pulp, and npm installs from Pulp in a namespace that reaches only Pulp's content app.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import json
import os
import platform
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from mirrorctl.ecosystems.npm.clientconfig import PACKUMENT_DIR
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import read_lock
from tests.fixtures.cycle_sites import CycleCli, inside_site, outside_site
from tests.fixtures.netns import (
    BASE_PYTHON,
    BRIDGE,
    PULP_CONTENT_BRIDGE,
    netns_script,
    npm_client_env,
    read_timed_step,
    require_netns,
    run_in_netns,
    tcp_bridges,
)
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401

from .fixtures.npm_registry import FixtureNpmRegistry, PkgSpec, npm_registry_fixture  # noqa: F401
from .test_pulp_npm import delete_npm_repository

pytestmark = [pytest.mark.live, pytest.mark.netns]

PORT = 18098  # inside a fresh namespace; also unused by the other tests
NPM = shutil.which("npm") or "/usr/bin/npm"
DEAD = "http://127.0.0.1:9/"  # nothing listens there inside the namespace: a leak fails fast
NODE_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
OTHER_ARCH = "arm64" if NODE_ARCH == "x64" else "x64"

NATIVE_INDEX = (
    "try { module.exports = require('@e2e/native-linux-' + process.arch) } catch (e) { module.exports = 'none' }\n"
)
UPSTREAM = (
    PkgSpec("@e2e/app", "1.0.0", dependencies={"e2e-chain": "^1.0.0"}),
    PkgSpec(
        "@e2e/app",
        "1.1.0",
        dependencies={"e2e-chain": "^1.0.0"},
        files={"index.js": "module.exports = '@e2e/app@1.1.0 ' + require('e2e-chain');\n"},
    ),
    PkgSpec("@e2e/app", "2.0.0"),  # outside ^1
    PkgSpec("e2e-chain", "1.0.0", dependencies={"e2e-leaf": "~2.1.0"}),
    PkgSpec(
        "e2e-chain",
        "1.3.0",
        dependencies={"e2e-leaf": "~2.1.0"},
        files={"index.js": "module.exports = 'e2e-chain@1.3.0 ' + require('e2e-leaf');\n"},
    ),
    PkgSpec("e2e-chain", "2.0.0"),
    PkgSpec("e2e-leaf", "2.1.4"),
    PkgSpec("e2e-leaf", "2.2.0"),  # outside ~2.1.0
    PkgSpec(
        "e2e-native",
        "0.5.0",
        optional_dependencies={
            "@e2e/native-linux-x64": "0.5.0",
            "@e2e/native-linux-arm64": "0.5.0",
            "@e2e/native-win32-x64": "0.5.0",  # no declared platform takes it
        },
        files={"index.js": NATIVE_INDEX},
    ),
    PkgSpec("@e2e/native-linux-x64", "0.5.0", os=("linux",), cpu=("x64",)),
    PkgSpec("@e2e/native-linux-arm64", "0.5.0", os=("linux",), cpu=("arm64",)),
    PkgSpec("@e2e/native-win32-x64", "0.5.0", os=("win32",), cpu=("x64",)),
    PkgSpec("e2e-plugin", "1.0.0", peer_dependencies={"e2e-host": "^2.0.0"}),
    PkgSpec("e2e-host", "2.1.0"),
    PkgSpec("e2e-host", "3.0.0"),  # outside the peer range
    PkgSpec("e2e-lib", "1.0.0"),
    PkgSpec("e2e-lib", "2.0.0"),  # the bump
)
PROFILE = """\
[npm]
packages = ["@e2e/app@^1", "e2e-native@^0.5", "e2e-plugin@^1", "e2e-lib@{lib}"]
platforms = ["linux-x64", "linux-arm64"]
"""
INSTALL = "@e2e/app e2e-native e2e-plugin e2e-lib"  # what npm install is asked for in each fresh project

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" serve --channel prod --host 127.0.0.1 --port "$PORT" \\
        > "$OUT/serve.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
    up=0
    for i in $(seq 200); do
        if node -e "$PROBE" 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    echo $up > "$OUT/server-up"
    [ "$up" = 1 ] || exit 0
    # Only what workspace-config wrote, over a hostile ~/.npmrc. Short fetch-retry backoffs: a refusal ends
    # in seconds rather than after npm's 10-60 s retries.
    set -a; . "$WS/mirrorctl.env"; set +a
    export npm_config_fetch_retry_mintimeout=100 npm_config_fetch_retry_maxtimeout=1000
    install() {  # install NAME PACKAGES...: a fresh project with a fresh cache
        name="$1"; shift
        mkdir -p "$WORK/$name" "$WORK/cache-$name"
        cd "$WORK/$name"
        echo "{\\"name\\": \\"$name\\", \\"version\\": \\"1.0.0\\", \\"private\\": true}" > package.json
        export npm_config_cache="$WORK/cache-$name"
        step "$name" "$NPM" install --no-progress "$@"
        cd "$WORK"
    }
    install before $INSTALL
    step before-run sh -c "cd '$WORK/before' && node -e \\"console.log(require('@e2e/app'), require('e2e-native'))\\""
    step promote "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" promote "$NEW_SNAPSHOT" --channel prod
    install promoted $INSTALL
    step rollback "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" rollback --channel prod
    install rolledback $INSTALL
    install missing e2e-never-mirrored
    """
    ),
    step_timeout=180,
)

PULP_SCRIPT = netns_script(
    PULP_CONTENT_BRIDGE
    + textwrap.dedent(
        """\
    set -a; . "$WS/mirrorctl.env"; set +a
    export npm_config_fetch_retry_mintimeout=100 npm_config_fetch_retry_maxtimeout=1000
    export npm_config_cache="$WORK/cache-pulp"
    mkdir -p "$WORK/pulp" && cd "$WORK/pulp"
    echo '{"name": "pulp", "version": "1.0.0", "private": true}' > package.json
    step pulp "$NPM" install --no-progress $INSTALL
    step pulp-missing "$NPM" install --no-progress e2e-never-mirrored
    """
    ),
    step_timeout=180,
)


def _npm_and_node() -> str | None:
    if not Path(NPM).exists() or not shutil.which("node"):
        return f"needs the machine's npm ({NPM}) and node"
    if NODE_ARCH is None:
        return f"no npm cpu name known for {platform.machine()}"
    return None


def _installed(project: Path) -> dict[str, str]:
    """name -> version of every package under project/node_modules (scoped ones too)."""
    modules = project / "node_modules"
    found = {}
    for p in [*modules.glob("*"), *modules.glob("@*/*")]:
        if (p / "package.json").is_file():
            found[p.relative_to(modules).as_posix()] = json.loads((p / "package.json").read_text())["version"]
    return found


def _expected(lib: str) -> dict[str, str]:
    return {
        "@e2e/app": "1.1.0",  # the highest ^1
        "e2e-chain": "1.3.0",
        "e2e-leaf": "2.1.4",  # ~2.1.0, not 2.2.0
        "e2e-native": "0.5.0",
        f"@e2e/native-linux-{NODE_ARCH}": "0.5.0",  # this platform's variant only
        "e2e-plugin": "1.0.0",
        "e2e-host": "2.1.0",  # the peer, within its range
        "e2e-lib": lib,
    }


def _pulp_packument(service: PulpService, repo: str, name: str) -> dict[str, Any]:
    url = f"{service.content_url}/pulp/content/{repo}/{PACKUMENT_DIR}{name.replace('/', '%2f')}"
    resp = httpx.get(url, timeout=30, trust_env=False)
    assert resp.status_code == 200, (url, resp.status_code, resp.text[:200])
    return dict(resp.json())


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:
    name = f"mctl-e2e-npm-{uuid.uuid4().hex[:10]}"
    yield name
    delete_npm_repository(pulp_service, name)


def test_npm_lock_to_npm_install_through_delta_channels_rollback_and_pulp(
    tmp_path: Path, npm_registry: FixtureNpmRegistry, pulp_service: PulpService, repo_name: str
) -> None:
    require_netns(_npm_and_node)
    cli = CycleCli(pulp_service)
    for spec in UPSTREAM:
        npm_registry.add(spec)

    # --- outside: lock both platforms, snapshot, full bundle ------------------------------------------------
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    oc = outside_site(cli, outside, "npm", npm_registry.url)
    profile = outside / "profiles" / "team.toml"
    profile.write_text(PROFILE.format(lib="^1"))
    cli(oc, "-q", "lock", "team")
    lock = read_lock(profile.with_suffix(".lock"))
    assert set(lock.targets) == {"npm:linux-x64", "npm:linux-arm64"}, lock.targets
    locked = {(a.name, a.version): a for a in lock.artifacts}
    assert set(locked) == {
        ("@e2e/app", "1.1.0"),
        ("e2e-chain", "1.3.0"),
        ("e2e-leaf", "2.1.4"),
        ("e2e-native", "0.5.0"),
        ("@e2e/native-linux-x64", "0.5.0"),
        ("@e2e/native-linux-arm64", "0.5.0"),
        ("e2e-plugin", "1.0.0"),
        ("e2e-host", "2.1.0"),
        ("e2e-lib", "1.0.0"),
    }, sorted(locked)
    assert locked[("@e2e/native-linux-x64", "0.5.0")].targets == ("linux-x64",)
    assert locked[("@e2e/native-linux-arm64", "0.5.0")].targets == ("linux-arm64",)
    assert set(locked[("e2e-native", "0.5.0")].targets) == {"linux-x64", "linux-arm64"}
    for (name, version), art in locked.items():
        assert art.attrs["integrity"] == npm_registry.entry(name, version).integrity, (name, version)
    assert "127.0.0.1" not in profile.with_suffix(".lock").read_text()  # host-free
    cli(oc, "-q", "snapshot", "team")
    full = tmp_path / "full.bundle"
    cli(oc, "-q", "bundle", "export", "--out", str(full), "team")

    # --- inside: import into prod, then describe what is held -------------------------------------------
    ic = inside_site(outside, inside, pulp_service, "npm", repo_name)
    cli(ic, "-q", "import", str(full), "--channel", "prod", "--create")
    store = Store(inside / "store")
    old_snapshot = store.channel_view_id("prod")
    assert old_snapshot is not None and store.current_view_id() is None  # only the channel named moves
    state = tmp_path / "inside.state"
    cli(ic, "state", "export", "--out", str(state))

    # --- outside: one package bumped, a delta against the inside's state ----------------------------------
    profile.write_text(PROFILE.format(lib="^2"))
    cli(oc, "-q", "lock", "team")
    bumped = {(a.name, a.version) for a in read_lock(profile.with_suffix(".lock")).artifacts}
    assert ("e2e-lib", "2.0.0") in bumped and ("e2e-lib", "1.0.0") not in bumped
    cli(oc, "-q", "snapshot", "team")
    review = tmp_path / "review.bundle"
    cli(oc, "-q", "bundle", "export", "--since", str(state), "--out", str(review), "team")
    out = cli(ic, "diff", str(full), str(review), "--format", "markdown")
    assert "npm" in out and "e2e-lib" in out and "1.0.0" in out and "2.0.0" in out, out
    media = tmp_path / "media"
    media.mkdir()
    out = cli(oc, "bundle", "export", "--since", str(state), "--chunk-size", "1K", "--out",
               str(media / "delta.bundle"), "team")  # fmt: skip
    assert "delta bundle" in out, out
    parts = sorted(media.glob("delta.bundle.part[0-9]*"))
    assert len(parts) >= 2, parts
    # The delta carries the new tarball, not the ones the inside holds.
    carried = sum(p.stat().st_size for p in parts)
    assert carried < full.stat().st_size, (carried, full.stat().st_size)
    a, b = tmp_path / "usb-a", tmp_path / "usb-b"
    a.mkdir()
    b.mkdir()
    shutil.move(str(media / "delta.bundle.parts.json"), a)
    for i, part in enumerate(parts):
        shutil.move(str(part), a if i % 2 else b)

    # --- inside: the delta into dev; prod stays where it was ----------------------------------------------
    cli(ic, "-q", "import", str(a / "delta.bundle.parts.json"), "--from", str(a), "--from", str(b),
         "--channel", "dev", "--create")  # fmt: skip
    new_snapshot = store.channel_view_id("dev")
    assert new_snapshot not in (None, old_snapshot)
    assert store.channel_view_id("prod") == old_snapshot and store.current_view_id() is None
    by_id = {s["id"]: s for s in json.loads(cli(ic, "snapshots", "list", "--json"))}
    assert "prod" in by_id[old_snapshot]["channels"] and "dev" in by_id[new_snapshot]["channels"], by_id
    doc = json.loads(cli(ic, "diff", f"view:{old_snapshot}", f"view:{new_snapshot}", "--format", "json"))
    changes = doc["ecosystems"]["npm"]["changes"]
    assert [(c["kind"], c["name"]) for c in changes] == [("upgraded", "e2e-lib")], changes

    # --- the real npm in a loopback-only namespace follows channel prod -----------------------------------
    ws = inside / "ws"
    cli(ic, "-q", "workspace-config", "--mirror-url", f"http://127.0.0.1:{PORT}", "--out", str(ws),
         "--install-dir", str(ws))  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text(f"registry={DEAD}\n@e2e:registry={DEAD}\n")
    run_out = tmp_path / "out"
    run_out.mkdir()
    env = npm_client_env(
        tmp_path, ws, home, PORT,
        NPM=NPM,
        INSIDE=str(inside),
        INSTALL=INSTALL,
        NEW_SNAPSHOT=new_snapshot or "",
    )
    done = run_in_netns(tmp_path / "e2e.sh", SCRIPT, run_out, env, timeout=900)
    serve_log = (run_out / "serve.log").read_text() if (run_out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (run_out / "server-up").read_text().strip() == "1", serve_log
    timings = {}
    for step, lib in (("before", "1.0.0"), ("promoted", "2.0.0"), ("rolledback", "1.0.0")):
        rc, log, timings[step] = read_timed_step(run_out, step)
        assert rc == 0, f"{step}: {log}\n{serve_log}"
        assert _installed(tmp_path / step) == _expected(lib), step
        assert not (tmp_path / step / "node_modules" / "@e2e" / f"native-linux-{OTHER_ARCH}").exists()
        pins = json.loads((tmp_path / step / "package-lock.json").read_text())["packages"]
        assert all(v["resolved"].startswith(f"http://127.0.0.1:{PORT}/npm/") for k, v in pins.items() if k), pins
    for step in ("promote", "rollback"):
        rc, log, _ = read_timed_step(run_out, step)
        assert rc == 0, f"{step}: {log}"
    rc, log, _ = read_timed_step(run_out, "before-run")
    assert (
        rc == 0 and log.strip() == f"@e2e/app@1.1.0 e2e-chain@1.3.0 e2e-leaf@2.1.4 @e2e/native-linux-{NODE_ARCH}@0.5.0"
    ), log
    rc, log, secs = read_timed_step(run_out, "missing")
    assert rc not in (0, 124), log
    assert "E404" in log and "e2e-never-mirrored" in log, log
    assert secs < 30, f"npm took {secs}s to give up on a package never mirrored"
    print(f"npm install timings (s): {timings}, missing {secs}")

    # --- Pulp follows channel prod (rolled back: the old library; promoted: the new one) -------------------
    cli(ic, "-q", "publish", "--channel", "prod", "--to", "pulp")
    lib_doc = _pulp_packument(pulp_service, repo_name, "e2e-lib")
    assert set(lib_doc["versions"]) == {"1.0.0"} and lib_doc["dist-tags"]["latest"] == "1.0.0", lib_doc
    cli(ic, "-q", "promote", new_snapshot or "", "--channel", "prod")
    cli(ic, "-q", "publish", "--channel", "prod", "--to", "pulp")
    lib_doc = _pulp_packument(pulp_service, repo_name, "e2e-lib")
    assert set(lib_doc["versions"]) == {"2.0.0"} and lib_doc["dist-tags"]["latest"] == "2.0.0", lib_doc
    native = _pulp_packument(pulp_service, repo_name, "e2e-native")
    assert set(native["versions"]["0.5.0"]["optionalDependencies"]) >= {
        "@e2e/native-linux-x64",
        "@e2e/native-linux-arm64",
    }, native
    plugin = _pulp_packument(pulp_service, repo_name, "e2e-plugin")
    assert plugin["versions"]["1.0.0"]["peerDependencies"] == {"e2e-host": "^2.0.0"}, plugin

    # --- and the real npm installs the promoted channel from Pulp --------------------------------------------
    pulp_ws = inside / "ws-pulp"
    cli(ic, "-q", "workspace-config", "--target", "pulp", "--out", str(pulp_ws), "--install-dir", str(pulp_ws))
    registry = f"{pulp_service.content_url}/pulp/content/{repo_name}/"
    port = urlsplit(pulp_service.content_url).port
    assert port
    pulp_out = tmp_path / "pulp-out"
    pulp_out.mkdir()
    sock = tmp_path / "content.sock"
    pulp_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "BASE_PYTHON": str(BASE_PYTHON),
        "BRIDGE": str(BRIDGE),
        "CONTENT_PORT": str(port),
        "CONTENT_SOCK": str(sock),
        "PROBE": registry + PACKUMENT_DIR + "e2e-lib",
        "WORK": str(tmp_path),
        "WS": str(pulp_ws),
        "NPM": NPM,
        "INSTALL": INSTALL,
    }
    with tcp_bridges((sock, port)):
        ran = run_in_netns(tmp_path / "pulp.sh", PULP_SCRIPT, pulp_out, pulp_env, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert (pulp_out / "up").read_text().strip() == "1", (pulp_out / "bridge.log").read_text()
    rc, log, secs = read_timed_step(pulp_out, "pulp")
    assert rc == 0, log
    assert _installed(tmp_path / "pulp") == _expected("2.0.0")
    rc, log, missing_secs = read_timed_step(pulp_out, "pulp-missing")
    assert rc not in (0, 124) and "E404" in log, log
    assert missing_secs < 30, f"npm took {missing_secs}s to give up on a package never published"
    print(f"npm install from Pulp: {secs}s")
    audit = cli(ic, "audit", "verify")
    assert "ok" in audit.lower(), audit
