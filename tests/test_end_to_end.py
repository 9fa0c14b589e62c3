"""The whole path, as users run it, for PyPI: a fixture upstream (real wheels, real simple API) ->
`mirrorctl lock` -> `mirrorctl snapshot` -> `mirrorctl bundle export` outside; `mirrorctl bundle verify` ->
`mirrorctl import` -> `mirrorctl serve` inside a loopback-only network namespace -> the real pip and uv install
the locked closure using only what `mirrorctl workspace-config` wrote.

The inside has no upstream configured and, in its namespace, no route to one: what pip gets can only have
crossed in the bundle.
"""

from __future__ import annotations

import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from tests.fixtures.netns import (
    VENV_BIN,
    netns_script,
    python_client_env,
    require_netns,
    run_in_netns,
    uv_present,
)

from .fixtures.upstream import FixtureUpstream, pypi_upstream_fixture  # noqa: F401 - fixture
from .fixtures.wheels import Dist

PORT = 18081
# The native wheels are built for the Python that runs the clients (the venv's base interpreter).
PY = f"{sys.version_info.major}{sys.version_info.minor}"
PYV = f"{sys.version_info.major}.{sys.version_info.minor}"

DISTS = [
    Dist(
        "e2e-app",
        "1.0",
        requires=["e2e-lib>=2", 'e2e-fast; extra == "fast"', 'e2e-win; sys_platform == "win32"'],
        extras=["fast"],
        code="from e2e_lib import VALUE\n",
    ),
    Dist("e2e-lib", "1.0", code="VALUE = 'old'\n"),
    Dist("e2e-lib", "2.1", requires=["e2e-native"], code="VALUE = 'new'\n"),
    Dist("e2e-lib", "3.0rc1", code="VALUE = 'pre'\n"),
    Dist("e2e-fast", "0.5"),
    Dist("e2e-win", "1.0"),
    Dist("e2e-native", "1.0", tag=f"cp{PY}-cp{PY}-manylinux_2_17_x86_64.manylinux2014_x86_64"),
    Dist("e2e-native", "1.0", tag=f"cp{PY}-cp{PY}-manylinux_2_28_aarch64"),
    Dist("e2e-native", "1.0", tag=f"cp{PY}-cp{PY}-win_amd64"),
    Dist("e2e-unwanted", "1.0"),
]

PROFILE = f"""\
description = "end-to-end"

[pypi]
requirements = ["e2e-app[fast]"]
python = ["{PYV}"]
platforms = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"]
"""

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" serve --port "$PORT" > "$OUT/serve.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
    for i in $(seq 200); do
        "$BASE_PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" \\
            2>/dev/null && break
        sleep 0.1
    done
    "$BASE_PYTHON" -m venv "$WORK/venv-pip" > "$OUT/venv.log" 2>&1
    "$UV" venv --quiet --python "$BASE_PYTHON" "$WORK/venv-uv" >> "$OUT/venv.log" 2>&1
    set -a; . "$WS/mirrorctl.env"; set +a
    step pip "$WORK/venv-pip/bin/python" -m pip install "e2e-app[fast]"
    "$WORK/venv-pip/bin/python" -m pip freeze > "$OUT/pip.freeze" 2>&1
    step unwanted "$WORK/venv-pip/bin/python" -m pip install e2e-unwanted
    step uv "$UV" pip install --python "$WORK/venv-uv/bin/python" "e2e-app[fast]"
    "$WORK/venv-uv/bin/python" -c "import e2e_app, e2e_fast; print(e2e_app.VALUE)" > "$OUT/uv.import" 2>&1
    """
    )
)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exit_code == 0, f"mirrorctl {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def test_profile_to_workspace_through_a_signed_bundle(
    tmp_path: Path, pypi_upstream: FixtureUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_netns(uv_present)
    for dist in DISTS:
        pypi_upstream.add(dist)

    # --- outside -----------------------------------------------------------------------------------------
    outside = tmp_path / "outside"
    (outside / "profiles").mkdir(parents=True)
    (outside / "profiles" / "team.toml").write_text(PROFILE)
    monkeypatch.chdir(outside)
    cli("init", "--upstream", f"pypi={pypi_upstream.url}")
    (outside / "keys").mkdir()
    cli("key", "generate", "--out", "keys/mirrorctl.key")
    cli("lock", "team")
    lock_text = (outside / "profiles" / "team.lock").read_text()
    assert "127.0.0.1" not in lock_text  # a lock names no host
    locked = {(a["name"], a["version"]) for a in tomllib.loads(lock_text)["artifacts"]}
    assert locked == {("e2e-app", "1.0"), ("e2e-lib", "2.1"), ("e2e-fast", "0.5"), ("e2e-native", "1.0")}
    native = [a for a in tomllib.loads(lock_text)["artifacts"] if a["name"] == "e2e-native"]
    assert len(native) == 2  # one wheel per platform, not the Windows one
    cli("lock", "--check")
    cli("snapshot", "team")
    bundle = tmp_path / "team.bundle"
    cli("bundle", "export", "--out", str(bundle), "team")

    # --- inside: no upstream, only the trusted key ------------------------------------------------------------
    inside = tmp_path / "inside"
    (inside / "keys").mkdir(parents=True)
    (inside / "keys" / "trusted.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    (inside / "mirrorctl.toml").write_text('[store]\npath = "store"\n\n[trust]\nkeys = ["keys/trusted.pub"]\n')
    monkeypatch.chdir(inside)
    cli("bundle", "verify", str(bundle))
    cli("import", str(bundle))
    ws = inside / "ws"
    cli("workspace-config", "--mirror-url", f"http://127.0.0.1:{PORT}", "--out", str(ws), "--install-dir", str(ws))

    out = tmp_path / "out"
    out.mkdir()
    env = {
        **python_client_env(tmp_path, ws, isolated=False),
        "MIRRORCTL": str(VENV_BIN / "mirrorctl"),
        "INSIDE": str(inside),
        "PORT": str(PORT),
    }
    done = run_in_netns(tmp_path / "inside.sh", SCRIPT, out, env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (out / "pip.rc").read_text().strip() == "0", (out / "pip.log").read_text()
    freeze = (out / "pip.freeze").read_text()
    for pin in ("e2e-app==1.0", "e2e-lib==2.1", "e2e-fast==0.5", "e2e-native==1.0"):
        assert pin.replace("-", "_") in freeze.replace("-", "_"), freeze
    assert (out / "unwanted.rc").read_text().strip() != "0"  # not in the profile: not on the mirror
    assert "No matching distribution" in (out / "unwanted.log").read_text()
    assert (out / "uv.rc").read_text().strip() == "0", (out / "uv.log").read_text()
    assert (out / "uv.import").read_text().strip() == "new", (out / "uv.import").read_text()
