"""Acceptance for the devpi target: `mirrorctl publish --to` fills a real devpi index, `mirrorctl
workspace-config --target` writes the client files, and the real pip and the real uv, inside a loopback-only
network namespace, install the closure of several projects from that index using only those files.

The namespace reaches devpi through tests/fixtures/netns_bridge.py: the same port inside as outside, nothing
else. A hostile find-links folder with a newer mctl-demo-lib sits in the environment (PIP_FIND_LINKS,
UV_FIND_LINKS), on top of the machine's own pip settings: any leak changes what gets installed.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from tests.fixtures.netns import (
    BRIDGE,
    netns_script,
    python_client_env,
    read_step,
    require_netns,
    run_in_netns,
    tcp_bridges,
    uv_present,
)
from tests.fixtures.services import DevpiService, devpi_service  # noqa: F401

from .fixtures.store_content import closure_store, publish_view, wheel_artifact
from .fixtures.wheels import Dist, build_wheel

pytestmark = [pytest.mark.live, pytest.mark.netns]

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    "$BASE_PYTHON" "$BRIDGE" "$PORT" "$SOCK" > "$OUT/bridge.log" 2>&1 &
    B=$!
    trap 'kill $B 2>/dev/null' EXIT
    up=0
    for i in $(seq 100); do
        if "$BASE_PYTHON" -c "import urllib.request as u; u.urlopen('$INDEX', timeout=2)" 2>/dev/null; then
            up=1; break
        fi
        sleep 0.1
    done
    echo $up > "$OUT/up"
    [ "$up" = 1 ] || exit 0
    "$BASE_PYTHON" -m venv "$WORK/venv-pip" > "$OUT/venv-pip.log" 2>&1
    "$UV" venv --quiet --python "$BASE_PYTHON" "$WORK/venv-uv" > "$OUT/venv-uv.log" 2>&1

    # Only what workspace-config wrote.
    set -a; . "$WS/mirrorctl.env"; set +a
    step pip-install "$WORK/venv-pip/bin/python" -m pip install "Mctl-Demo.App[fast]" mctl-demo-tool
    step pip-freeze "$WORK/venv-pip/bin/python" -m pip freeze
    step pip-import "$WORK/venv-pip/bin/python" -c "import mctl_demo_app, mctl_demo_tool; print(mctl_demo_app.VALUE)"
    step pip-missing "$WORK/venv-pip/bin/python" -m pip install mctl-demo-evil
    step uv-install "$UV" pip install --python "$WORK/venv-uv/bin/python" "mctl_demo_app[fast]" mctl-demo-tool
    step uv-freeze "$UV" pip freeze --python "$WORK/venv-uv/bin/python"
    step uv-import "$WORK/venv-uv/bin/python" -c "import mctl_demo_app, mctl_demo_tool; print(mctl_demo_app.VALUE)"
    step uv-missing "$UV" pip install --python "$WORK/venv-uv/bin/python" mctl-demo-evil
    """
    )
)


def test_real_pip_and_uv_install_from_the_published_devpi_index(
    devpi_service: DevpiService,  # noqa: F811
    tmp_path: Path,
) -> None:
    require_netns(uv_present)

    # Content: the demo closure plus a second project that shares a dependency, as an import leaves it.
    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    tool = wheel_artifact(store, Dist("mctl-demo-tool", "0.9", requires=("mctl-demo-base>=1",)), tmp_path / "build")
    publish_view(store, [*arts, tool], sequence=2)

    tag = uuid.uuid4().hex[:10]
    user, index, password = f"h8acc{tag}", "snap", f"pw-{tag}"
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{store.root}"\n\n[targets.devpi]\nkind = "devpi"\nurl = "{devpi_service.url}"\n'
        f'username-env = "DV_USER"\npassword-env = "DV_PASS"\nrepositories = {{ pypi = "{user}/{index}" }}\n'
    )
    runner = CliRunner()
    env = {"DV_USER": user, "DV_PASS": password}
    done = runner.invoke(app, ["--config", str(config), "-q", "publish", "--to", "devpi"], env=env)
    assert done.exit_code == 0, done.output
    row = done.output.splitlines()[-1].split()  # the results table's row: ecosystem, repository, result, uploaded
    assert row[2:4] == ["changed", f"{len(arts) + 1}"], done.output
    ws = tmp_path / "ws"
    done = runner.invoke(
        app,
        ["--config", str(config), "workspace-config", "--target", "devpi", "--out", str(ws), "--install-dir", str(ws)],
        env=env,
    )
    assert done.exit_code == 0, done.output
    index_url = f"{devpi_service.url}/{user}/{index}/+simple/"
    assert f"PIP_INDEX_URL={index_url}" in (ws / "mirrorctl.env").read_text()
    assert password not in "".join(p.read_text() for p in ws.iterdir())

    hostile = tmp_path / "hostile"
    build_wheel(Dist("mctl-demo-lib", "9.0.0", code="VALUE = 'hostile'\n"), hostile)
    build_wheel(Dist("mctl-demo-evil", "1.0"), hostile)

    port = urlsplit(devpi_service.url).port
    assert port is not None
    sock = tmp_path / "devpi.sock"
    out = tmp_path / "out"
    out.mkdir()
    run_env = {
        **python_client_env(tmp_path, ws),
        "BRIDGE": str(BRIDGE),
        "PORT": str(port),
        "SOCK": str(sock),
        "INDEX": index_url,
        "PIP_FIND_LINKS": str(hostile),
        "UV_FIND_LINKS": str(hostile),
    }
    with tcp_bridges((sock, port)):
        ran = run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, run_env)
    assert ran.returncode == 0, ran.stderr
    assert (out / "up").read_text().strip() == "1", (out / "bridge.log").read_text()

    expected = {
        "mctl-demo-app==1.2.0",
        "mctl-demo-base==1.5.0",
        "mctl-demo-fast==0.3",
        "mctl-demo-lib==2.1.0",  # the published one, not the hostile 9.0.0
        "mctl-demo-tool==0.9",
    }
    for client in ("pip", "uv"):
        rc, log = read_step(out, f"{client}-install")
        assert rc == 0, log
        rc, log = read_step(out, f"{client}-import")
        assert rc == 0 and log.strip() == "base", log
        _, freeze = read_step(out, f"{client}-freeze")
        pins = [line.strip().split("==") for line in freeze.splitlines() if "==" in line]
        assert {f"{canonicalize_name(n)}=={v}" for n, v in pins} == expected, freeze
        rc, log = read_step(out, f"{client}-missing")
        assert rc not in (0, 124), log
        assert "No matching distribution" in log or "not found in the package registry" in log, log
