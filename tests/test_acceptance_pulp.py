"""Acceptance for the Pulp target: `mirrorctl publish --to` makes Pulp versions, `mirrorctl workspace-config
--target` writes the client files, and the real pip and the real uv, inside a loopback-only network namespace,
install the closure of several projects from the Pulp distribution using only those files. After
`mirrorctl rollback`, pip inside the namespace sees the earlier versions.

pulp_python serves the simple index from Pulp's API app and the files from its content app, so two ports are
carried into the namespace (tests/fixtures/netns_bridge.py, the same port inside as outside) and nothing else.
A hostile find-links folder with a newer mctl-demo-lib sits in the environment (PIP_FIND_LINKS,
UV_FIND_LINKS), on top of the machine's own pip settings: any leak changes what gets installed.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
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
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401

from .fixtures.store_content import closure_store, publish_view, wheel_artifact
from .fixtures.wheels import Dist, build_wheel
from .test_pulp_target import delete_repository

pytestmark = [pytest.mark.live, pytest.mark.netns]

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    "$BASE_PYTHON" "$BRIDGE" "$API_PORT" "$API_SOCK" > "$OUT/bridge-api.log" 2>&1 &
    B1=$!
    "$BASE_PYTHON" "$BRIDGE" "$CONTENT_PORT" "$CONTENT_SOCK" > "$OUT/bridge-content.log" 2>&1 &
    B2=$!
    trap 'kill $B1 $B2 2>/dev/null' EXIT
    up=0
    for i in $(seq 100); do
        if "$BASE_PYTHON" -c "import urllib.request as u; u.urlopen('$INDEX', timeout=2)" 2>/dev/null; then
            up=1; break
        fi
        sleep 0.1
    done
    echo $up > "$OUT/up"
    [ "$up" = 1 ] || exit 0
    # Only what workspace-config wrote.
    set -a; . "$WS/mirrorctl.env"; set +a
    IMPORT="import mctl_demo_app, mctl_demo_tool; print(mctl_demo_app.VALUE)"
    if [ "$PHASE" = latest ]; then
        "$BASE_PYTHON" -m venv "$WORK/venv-pip" > "$OUT/venv-pip.log" 2>&1
        "$UV" venv --quiet --python "$BASE_PYTHON" "$WORK/venv-uv" > "$OUT/venv-uv.log" 2>&1
        step pip-install "$WORK/venv-pip/bin/python" -m pip install "Mctl-Demo.App[fast]" mctl-demo-tool
        step pip-freeze "$WORK/venv-pip/bin/python" -m pip freeze
        step pip-import "$WORK/venv-pip/bin/python" -c "$IMPORT"
        step pip-missing "$WORK/venv-pip/bin/python" -m pip install mctl-demo-evil
        step uv-install "$UV" pip install --python "$WORK/venv-uv/bin/python" "mctl_demo_app[fast]" mctl-demo-tool
        step uv-freeze "$UV" pip freeze --python "$WORK/venv-uv/bin/python"
        step uv-import "$WORK/venv-uv/bin/python" -c "$IMPORT"
        step uv-missing "$UV" pip install --python "$WORK/venv-uv/bin/python" mctl-demo-evil
    else
        "$BASE_PYTHON" -m venv "$WORK/venv-back" > "$OUT/venv-back.log" 2>&1
        step pip-versions "$WORK/venv-back/bin/python" -m pip index versions mctl-demo-tool
        step pip-install "$WORK/venv-back/bin/python" -m pip install mctl-demo-tool
        step pip-freeze "$WORK/venv-back/bin/python" -m pip freeze
    fi
    """
    )
)


def _pins(freeze: str) -> set[str]:
    pins = [line.strip().split("==") for line in freeze.splitlines() if "==" in line]
    return {f"{canonicalize_name(n)}=={v}" for n, v in pins}


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:  # noqa: F811
    name = f"mctl-acc-{uuid.uuid4().hex[:10]}"
    yield name
    delete_repository(pulp_service, name)


def test_real_pip_and_uv_install_from_the_pulp_distribution_and_see_a_rollback(
    pulp_service: PulpService,  # noqa: F811
    repo_name: str,
    tmp_path: Path,
) -> None:
    require_netns(uv_present)

    # Version 1: the demo closure plus a tool sharing a dependency. Version 2 adds a newer tool.
    mark = uuid.uuid4().hex  # new bytes for this run, so Pulp cannot answer from an earlier run's content
    store, arts = closure_store(tmp_path / "store", tmp_path / "build")
    tool = wheel_artifact(
        store, Dist("mctl-demo-tool", "0.9", requires=("mctl-demo-base>=1",), code=f"M = '{mark}'\n"), tmp_path / "b1"
    )
    tool2 = wheel_artifact(
        store, Dist("mctl-demo-tool", "1.0", requires=("mctl-demo-base>=1",), code=f"M = '{mark}'\n"), tmp_path / "b2"
    )
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{store.root}"\n\n[targets.pulp]\nkind = "pulp"\nurl = "{pulp_service.url}"\n'
        f'content-url = "{pulp_service.content_url}"\n'
        f'username-env = "PL_USER"\npassword-env = "PL_PASS"\nrepositories = {{ pypi = "{repo_name}" }}\n'
    )
    runner = CliRunner()
    env = {"PL_USER": pulp_service.username, "PL_PASS": pulp_service.password}

    def cli(*args: str) -> str:
        done = runner.invoke(app, ["--config", str(config), *args], env=env)
        assert done.exit_code == 0, done.output
        return done.output

    publish_view(store, [*arts, tool], sequence=1)
    cli("-q", "publish", "--to", "pulp")
    publish_view(store, [*arts, tool, tool2], sequence=2)
    cli("-q", "publish", "--to", "pulp")
    again = cli("-q", "publish", "--to", "pulp")  # nothing new: no upload, no version
    # publish prints a table (issue 13 item 10): ecosystem, repository, result, uploaded, present, removed, version
    header, row = again.splitlines()[-2:]
    assert header.split()[:7] == ["ecosystem", "repository", "result", "uploaded", "present", "removed", "version"]
    assert row.split()[2:7] == ["unchanged", "0", "8", "0", "2"], again
    # -e: the repository's own versions (without it, history lists publish events: tests/test_publish_events.py)
    shown = cli("history", "--to", "pulp", "-e", "pypi")
    assert "/pulp/api/" not in shown, shown  # no raw API addresses (issue 13 item 10)
    history = [line.split() for line in shown.splitlines()[1:] if line.strip()]  # below the table's header
    # Versions 2, 1, 0; the served one (2) marked with "*".
    assert [h[:2] if h[0] == "*" else h[:1] for h in history] == [["*", "2"], ["1"], ["0"]], history
    ws = tmp_path / "ws"
    cli("workspace-config", "--target", "pulp", "--out", str(ws), "--install-dir", str(ws))
    index_url = f"{pulp_service.url}/pypi/{repo_name}/simple/"
    assert f"PIP_INDEX_URL={index_url}" in (ws / "mirrorctl.env").read_text()
    assert pulp_service.password not in "".join(p.read_text() for p in ws.iterdir())

    hostile = tmp_path / "hostile"
    build_wheel(Dist("mctl-demo-lib", "9.0.0", code="VALUE = 'hostile'\n"), hostile)
    build_wheel(Dist("mctl-demo-evil", "1.0"), hostile)

    api_port, content_port = urlsplit(pulp_service.url).port, urlsplit(pulp_service.content_url).port
    assert api_port and content_port

    def run_in_namespace(phase: str) -> Path:
        out = tmp_path / f"out-{phase}"
        out.mkdir()
        socks = (tmp_path / f"api-{phase}.sock", tmp_path / f"content-{phase}.sock")
        run_env = {
            **python_client_env(tmp_path, ws, caches=f"-{phase}"),
            "PHASE": phase,
            "BRIDGE": str(BRIDGE),
            "API_PORT": str(api_port),
            "API_SOCK": str(socks[0]),
            "CONTENT_PORT": str(content_port),
            "CONTENT_SOCK": str(socks[1]),
            "INDEX": index_url,
            "PIP_FIND_LINKS": str(hostile),
            "UV_FIND_LINKS": str(hostile),
        }
        with tcp_bridges((socks[0], api_port), (socks[1], content_port)):
            ran = run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, run_env)
        assert ran.returncode == 0, ran.stderr
        assert (out / "up").read_text().strip() == "1", (out / "bridge-api.log").read_text()
        return out

    out = run_in_namespace("latest")
    expected = {
        "mctl-demo-app==1.2.0",
        "mctl-demo-base==1.5.0",
        "mctl-demo-fast==0.3",
        "mctl-demo-lib==2.1.0",  # the published one, not the hostile 9.0.0
        "mctl-demo-tool==1.0",
    }
    for client in ("pip", "uv"):
        rc, log = read_step(out, f"{client}-install")
        assert rc == 0, log
        rc, log = read_step(out, f"{client}-import")
        assert rc == 0 and log.strip() == "base", log
        assert _pins(read_step(out, f"{client}-freeze")[1]) == expected
        rc, log = read_step(out, f"{client}-missing")
        assert rc not in (0, 124), log
        assert "No matching distribution" in log or "not found in the package registry" in log, log

    cli("rollback", "--to", "pulp", "--version", "1")
    out = run_in_namespace("rolled-back")
    rc, log = read_step(out, "pip-versions")
    assert rc == 0 and "0.9" in log and "1.0" not in log, log
    rc, log = read_step(out, "pip-install")
    assert rc == 0, log
    assert _pins(read_step(out, "pip-freeze")[1]) == {"mctl-demo-base==1.5.0", "mctl-demo-tool==0.9"}
