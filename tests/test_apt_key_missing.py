"""Issue 13 item 9, as a platform engineer meets it: a bundle with PyPI, npm and apt imported into an inside that
has no apt archive key yet. Import and serve warn with the exact command that fixes it, /healthz says
``degraded`` (tests/test_serve_health.py has the details), and workspace-config still writes the PyPI and npm
files, leaves apt out naming why, and exits 3; once `mirrorctl archive-key generate` ran, everything is whole."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from tests.fixtures.mixed_bundles import FULL, SUITE, MixedWorld, mirror, mixed_world

MIRRORCTL = str(Path(sys.executable).parent / "mirrorctl")
MIRROR_URL = "http://mirror.internal:8080"


def _keyless(tmp_path: Path) -> tuple[MixedWorld, Path]:
    w = mixed_world(tmp_path)
    shutil.rmtree(w.inside.root / "keys" / "apt")  # mixed_world made one; this inside never ran generate
    w.set_profile(FULL)
    bundle = tmp_path / "full.bundle"
    w.cli("outside", "-q", "bundle", "export", "--out", str(bundle))
    return w, bundle


def _fix(w: MixedWorld) -> str:
    return f"mirrorctl --config {w.config('inside')} archive-key generate"


def _invoke(w: MixedWorld, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["--config", str(w.config("inside")), *args])
    return done.exit_code, done.output


async def test_import_warns_workspace_config_writes_the_rest_and_exits_3_until_the_key_exists(
    tmp_path: Path,
) -> None:
    w, bundle = _keyless(tmp_path)
    folder = w.inside.root / "keys" / "apt"
    out = w.cli("inside", "import", str(bundle))
    assert "imported bundle" in out
    warning = (
        f"WARNING: apt: apt packages are served but there is no archive key in {folder}: InRelease answers 503 "
        f"and apt-get update fails in every workspace; fix: run `{_fix(w)}` on the mirror host (or `mirrorctl "
        "archive-key import FILE` to sign with a key you already have)"
    )
    assert warning in out, out
    async with mirror(w.inside) as c:
        assert (await c.get("/healthz")).text.startswith("degraded\napt: ")
        assert (await c.get(f"/apt/dists/{SUITE}/InRelease")).status_code == 503

    ws = tmp_path / "ws"
    code, out = _invoke(w, "workspace-config", "--mirror-url", MIRROR_URL, "--out", str(ws))
    assert code == 3, out  # partial: neither 0 (whole) nor 1/2 (nothing written)
    assert f"WARNING: apt: NOT CONFIGURED: apt packages are served but there is no archive key in {folder}" in out
    assert f"fix: run `{_fix(w)}` on the mirror host" in out, out
    assert "workspace-config: partial: apt left out; exit 3" in out
    written = sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file())
    assert written == ["README.txt", "mirrorctl.env", "npmrc", "npmrc-global", "pip.conf", "uv.toml"]
    env = (ws / "mirrorctl.env").read_text()
    assert "PIP_CONFIG_FILE=" in env and "NPM_CONFIG_USERCONFIG=" in env and "APT_CONFIG" not in env, env
    readme = (ws / "README.txt").read_text()
    assert "apt: NOT CONFIGURED: apt packages are served but there is no archive key" in readme
    assert "`mirrorctl archive-key generate`" in readme  # the workspace's copy names no host path
    assert not folder.exists()  # asking made no key

    code, out = _invoke(w, "archive-key", "generate")
    assert code == 0, out
    code, out = _invoke(w, "workspace-config", "--mirror-url", MIRROR_URL, "--out", str(ws))
    assert code == 0, out
    assert "WARNING" not in out
    assert (ws / "sources.list.d" / "mirrorctl.sources").exists() and (ws / "mirrorctl-archive-keyring.asc").exists()
    assert "NOT CONFIGURED" not in (ws / "README.txt").read_text()
    assert "APT_CONFIG=" in (ws / "mirrorctl.env").read_text()
    async with mirror(w.inside) as c:
        assert (await c.get("/healthz")).text == "ok\n"
    # The same bundle again: a no-op, and nothing to warn about any more.
    out = w.cli("inside", "import", str(bundle))
    assert "already served" in out and "WARNING" not in out, out


def test_a_refused_workspace_config_still_writes_nothing(tmp_path: Path) -> None:
    # Partial output is for an ecosystem the mirror cannot serve; bad input still refuses everything (exit 2).
    w, bundle = _keyless(tmp_path)
    w.cli("inside", "import", str(bundle))
    ws = tmp_path / "ws"
    code, out = _invoke(w, "workspace-config", "--mirror-url", "http://u:p@mirror.internal", "--out", str(ws))
    assert code == 2 and "carries credentials" in out
    assert not ws.exists()


def test_serve_warns_after_its_start_line_and_healthz_is_degraded(tmp_path: Path) -> None:
    w, bundle = _keyless(tmp_path)
    w.cli("inside", "import", str(bundle))
    proc = subprocess.Popen(
        [MIRRORCTL, "--config", str(w.config("inside")), "serve", "--port", "0", "--no-access-log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/ ", first)
        assert m and "serving view" in first, first
        assert second.startswith("WARNING: apt: apt packages are served but there is no archive key in "), second
        assert f"fix: run `{_fix(w)}` on the mirror host" in second, second
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"{m.group(1)}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mirrorctl serve did not come up"
                time.sleep(0.1)
        assert r.status_code == 200 and r.text.startswith("degraded\napt: "), r.text
        assert httpx.get(f"{m.group(1)}/healthz?strict", timeout=2).status_code == 503
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
