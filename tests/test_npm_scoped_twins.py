"""Tried as a new user would: an npm profile holding ``@acme/core@1.0.0`` beside ``core@1.0.0`` (one basename,
one version, two packages). Both tarballs are named ``core-1.0.0.tgz``; their paths differ by the scope
(``@acme/core/-/core-1.0.0.tgz``, ``core/-/core-1.0.0.tgz``). Through the CLI: lock (twice, same bytes),
snapshot, bundle export, import, served at distinct URLs; then the real npm installs both side by side from
``mirrorctl serve`` in a loopback-only namespace, configured only by ``workspace-config``.
"""


from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import read_lock
from tests.fixtures.mixed_bundles import mirror
from tests.fixtures.netns import (
    NODE_PROBE,
    netns_script,
    npm_client_env,
    read_timed_step,
    require_netns,
    run_in_netns,
    serve_mirror,
)

from .fixtures.npm_registry import FixtureNpmRegistry, PkgSpec, npm_registry_fixture  # noqa: F401

PORT = 18107
NPM = Path("/usr/bin/npm")
DEAD = "http://127.0.0.1:9/"
TWINS = (
    PkgSpec("@acme/core", "1.0.0", files={"index.js": "module.exports = 'scoped core';\n"}),
    PkgSpec("core", "1.0.0", files={"index.js": "module.exports = 'plain core';\n"}),
)
PATHS = {"@acme/core/-/core-1.0.0.tgz", "core/-/core-1.0.0.tgz"}


def cli(config: Path, *args: str, code: int = 0) -> str:
    done = CliRunner().invoke(app, ["--config", str(config), *args])
    assert done.exit_code == code, f"mirrorctl {' '.join(args)} -> {done.exit_code}\n{done.output}"
    return done.output


def sites(tmp_path: Path, registry: FixtureNpmRegistry, specs: tuple[PkgSpec, ...] = TWINS) -> tuple[Path, Path]:
    for spec in specs:
        registry.add(spec)
    out_dir, in_dir = tmp_path / "outside", tmp_path / "in"
    (out_dir / "profiles").mkdir(parents=True)
    (out_dir / "keys").mkdir()
    outside = out_dir / "mirrorctl.toml"
    outside.write_text(
        f'[store]\npath = "store"\n\n[upstreams.npm]\nurl = "{registry.url}"\n\n[signing]\nkey = "keys/k"\n'
    )
    cli(outside, "key", "generate", "--out", str(out_dir / "keys" / "k"))
    packages = ", ".join(f'"{s.name}@{s.version}"' for s in specs)
    (out_dir / "profiles" / "web.toml").write_text(f'[npm]\npackages = [{packages}]\nplatforms = ["linux-x64"]\n')
    (in_dir / "keys").mkdir(parents=True)
    shutil.copy(out_dir / "keys" / "k.pub", in_dir / "keys" / "trusted.pub")
    inside = in_dir / "mirrorctl.toml"
    inside.write_text('[store]\npath = "store"\n\n[trust]\nkeys = ["keys/trusted.pub"]\n')
    return outside, inside


async def _served_apart(store: Store) -> None:
    async with mirror(store) as c:
        bodies = {}
        for spec in TWINS:
            r = await c.get(f"/npm/{spec.name}", headers={"Accept": "application/json"})
            assert r.status_code == 200, r.text
            url = r.json()["versions"]["1.0.0"]["dist"]["tarball"]
            assert url == f"http://mirror.test/npm/{spec.path}"
            tgz = await c.get(url)
            assert tgz.status_code == 200
            bodies[spec.name] = tgz.content
        assert bodies["@acme/core"] != bodies["core"]
        assert (await c.get("/npm/@acme/core/-/core-9.9.9.tgz")).status_code == 404
        assert (await c.get("/npm/core/-/liba-1.0.0.tgz")).status_code == 404


def test_scoped_and_unscoped_twins_lock_export_import_and_serve_apart(
    tmp_path: Path, npm_registry: FixtureNpmRegistry
) -> None:
    outside, inside = sites(tmp_path, npm_registry)
    cli(outside, "lock")
    lock_file = outside.parent / "profiles" / "web.lock"
    first = lock_file.read_bytes()
    lock = read_lock(lock_file)
    assert lock.version == 2 and {a.path for a in lock.artifacts} == PATHS
    assert {a.filename for a in lock.artifacts} == {"core-1.0.0.tgz"}
    cli(outside, "lock", "--refresh")
    assert lock_file.read_bytes() == first  # resolving again gives the same bytes
    cli(outside, "snapshot")
    bundle = tmp_path / "web.bundle"
    out = cli(outside, "bundle", "export", "--out", str(bundle))
    assert "2 artifacts" in out, out
    cli(inside, "import", str(bundle))
    store = Store(inside.parent / "store")
    view = store.current_view()
    assert view is not None and {a.path for a in view.artifacts} == PATHS
    digests = {a.path: a.sha256 for a in view.artifacts}
    assert len(set(digests.values())) == 2 and all(store.has_blob(sha) for sha in digests.values())
    asyncio.run(_served_apart(store))


def test_a_case_fold_collision_is_refused_at_lock_naming_both_and_no_lock_is_written(
    tmp_path: Path, npm_registry: FixtureNpmRegistry
) -> None:
    # Two real packages of the public registry differ only in case (a pre-2017 name and a lowercase one); a
    # case-insensitive disk or Pulp cannot hold both, so the lock says so instead of the import failing later.
    specs = (PkgSpec("JSONStream", "1.3.5"), PkgSpec("jsonstream", "1.3.5"))
    outside, _ = sites(tmp_path, npm_registry, specs)
    out = " ".join(cli(outside, "lock", code=2).split())
    assert "web.toml: [npm] resolved: npm files 'JSONStream/-/JSONStream-1.3.5.tgz'" in out, out
    assert "'jsonstream/-/jsonstream-1.3.5.tgz'" in out and "differ only in case" in out
    assert sorted(p.name for p in (outside.parent / "profiles").iterdir()) == ["web.toml"]


SCRIPT = netns_script(
    serve_mirror(NODE_PROBE)
    + textwrap.dedent(
        """\
    set -a; . "$WS/mirrorctl.env"; set +a
    export npm_config_cache="$WORK/cache"
    step install sh -c "cd '$WORK/p' && npm install --no-progress @acme/core@1.0.0 core@1.0.0"
    step run sh -c "cd '$WORK/p' && node -e \\"console.log(require('@acme/core') + ' | ' + require('core'))\\""
    """
    )
)


def _npm_and_node() -> str | None:
    if not NPM.exists() or not shutil.which("node"):
        return f"needs the machine's npm at {NPM} and node"
    return None


@pytest.mark.netns
def test_real_npm_installs_the_twins_side_by_side(tmp_path: Path, npm_registry: FixtureNpmRegistry) -> None:
    require_netns(_npm_and_node)
    outside, inside = sites(tmp_path, npm_registry)
    cli(outside, "lock", "--snapshot")
    bundle = tmp_path / "web.bundle"
    cli(outside, "bundle", "export", "--out", str(bundle))
    cli(inside, "import", str(bundle))
    ws = tmp_path / "ws"
    cli(inside, "workspace-config", "--mirror-url", f"http://127.0.0.1:{PORT}", "--out", str(ws),
        "--install-dir", str(ws))  # fmt: skip

    home = tmp_path / "home"
    home.mkdir()
    (home / ".npmrc").write_text(f"registry={DEAD}\n@acme:registry={DEAD}\n")  # a leak fails fast
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "package.json").write_text(json.dumps({"name": "p", "version": "1.0.0"}) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    env = npm_client_env(
        tmp_path, ws, home, PORT,
        CONFIG=str(inside),
    )
    done = run_in_netns(tmp_path / "twins.sh", SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log
    rc, log, _ = read_timed_step(out, "install")
    assert rc == 0, log + serve_log
    rc, log, _ = read_timed_step(out, "run")
    assert rc == 0 and log.strip() == "scoped core | plain core", log
    npm_lock = json.loads((tmp_path / "p" / "package-lock.json").read_text())
    resolved = {k: v["resolved"] for k, v in npm_lock["packages"].items() if k}
    assert resolved == {
        "node_modules/@acme/core": f"http://127.0.0.1:{PORT}/npm/@acme/core/-/core-1.0.0.tgz",
        "node_modules/core": f"http://127.0.0.1:{PORT}/npm/core/-/core-1.0.0.tgz",
    }
    for name in ("@acme/core", "core"):
        manifest = json.loads((tmp_path / "p" / "node_modules" / name / "package.json").read_text())
        assert (manifest["name"], manifest["version"]) == (name, "1.0.0")
