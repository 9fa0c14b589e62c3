"""Acceptance: the real pip and the real uv install from `mirrorctl serve` inside a loopback-only network
namespace, configured only by the files `mirrorctl workspace-config` wrote, with hostile settings around them.

The hostile settings are real leak paths: an extra index and a find-links folder in the environment, a
machine-wide pip.conf and uv.toml (via XDG_CONFIG_DIRS), a uv.toml in the working directory, plus whatever the
machine itself configures (this one sets PIP_FIND_LINKS and extra indexes in pip.conf). The hostile index
carries a *newer* mctl-demo-lib and a package the mirror lacks, so any leak changes what gets installed. A
control step first shows that the hostile settings do leak when the generated config is not loaded.

Inside the namespace there is only loopback: nothing can be fetched from anywhere but the mirror (and the
hostile local folders, which is exactly what must not happen).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from mirrorctl.ecosystems.pypi import PypiEcosystem
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
    uv_present,
)

from .fixtures.store_content import closure_store
from .fixtures.wheels import Dist, build_wheel

pytestmark = pytest.mark.netns

PORT = 18080  # a fresh namespace: nothing else listens there


def hostile_index(root: Path) -> Path:
    """A file-based simple index with a newer mctl-demo-lib and a package the mirror does not carry."""
    files = root / "files"
    dists = [Dist("mctl-demo-lib", "9.0.0", code="VALUE = 'hostile'\n"), Dist("mctl-demo-evil", "1.0")]
    for dist in dists:
        wheel = build_wheel(dist, files)
        page = root / "simple" / dist.module.replace("_", "-") / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            f'<!DOCTYPE html><html><body><a href="../../files/{wheel.name}">{wheel.name}</a></body></html>\n'
        )
    return root / "simple"


SCRIPT = netns_script(
    serve_mirror(PYTHON_PROBE)
    + textwrap.dedent(
        """\

    "$BASE_PYTHON" -m venv "$WORK/venv-pip" > "$OUT/venv-pip.log" 2>&1
    "$UV" venv --quiet --python "$BASE_PYTHON" "$WORK/venv-uv" > "$OUT/venv-uv.log" 2>&1
    cd "$PROJECT"   # a project folder with its own hostile uv.toml

    # Control: the mirror as index, but the generated files not loaded: the hostile sources leak.
    step control-pip env PIP_INDEX_URL="http://127.0.0.1:$PORT/pypi/simple/" \\
        "$WORK/venv-pip/bin/python" -m pip download --no-deps -d "$WORK/control" mctl-demo-evil
    step control-uv env UV_DEFAULT_INDEX="http://127.0.0.1:$PORT/pypi/simple/" \\
        "$UV" pip install --dry-run --python "$WORK/venv-uv/bin/python" mctl-demo-evil

    # From here on only what workspace-config wrote.
    set -a; . "$WS/mirrorctl.env"; set +a
    step pip-install "$WORK/venv-pip/bin/python" -m pip install "Mctl-Demo.App[fast]"
    step pip-import "$WORK/venv-pip/bin/python" -c \\
        "import mctl_demo_app, mctl_demo_fast, mctl_demo_lib; print(mctl_demo_app.VALUE)"
    step pip-freeze "$WORK/venv-pip/bin/python" -m pip freeze
    step pip-missing "$WORK/venv-pip/bin/python" -m pip install mctl-demo-evil
    step pip-machine "$WORK/venv-pip/bin/python" -m pip install "$MACHINE_ONLY"

    step uv-install "$UV" pip install --python "$WORK/venv-uv/bin/python" "mctl_demo_app[fast]"
    step uv-import "$WORK/venv-uv/bin/python" -c \\
        "import mctl_demo_app, mctl_demo_fast, mctl_demo_lib; print(mctl_demo_app.VALUE)"
    step uv-freeze "$UV" pip freeze --python "$WORK/venv-uv/bin/python"
    step uv-missing "$UV" pip install --python "$WORK/venv-uv/bin/python" mctl-demo-evil
    step uv-machine "$UV" pip install --python "$WORK/venv-uv/bin/python" "$MACHINE_ONLY"
    """
    )
)


def test_real_pip_and_uv_install_only_from_the_mirror(tmp_path: Path) -> None:
    require_netns(uv_present)

    store, _ = closure_store(tmp_path / "store", tmp_path / "build")
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    ws = tmp_path / "ws"
    render_workspace_config(f"http://127.0.0.1:{PORT}", ws, {"pypi": PypiEcosystem()}, install_dir=ws)

    hostile = hostile_index(tmp_path / "hostile")
    hostile_url = f"file://{hostile}"
    xdg = tmp_path / "xdg"
    (xdg / "pip").mkdir(parents=True)
    files = hostile.parent / "files"
    # pip reads a command's section over [global]: a hostile [install] section is a leak path of its own.
    hostile_pip = f"extra-index-url = {hostile_url}\nfind-links = {files}\n"
    (xdg / "pip" / "pip.conf").write_text(f"[global]\n{hostile_pip}\n[install]\n{hostile_pip}")
    (xdg / "uv").mkdir()
    (xdg / "uv" / "uv.toml").write_text(
        f'[[index]]\nurl = "{hostile_url}"\n\n[pip]\nfind-links = ["{files}"]\n'
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "uv.toml").write_text(f'[[index]]\nurl = "{hostile_url}"\n')

    # A project the machine's own inherited indexes carry, if it has any; else the hostile one stands in.
    machine_only = "aenum" if Path("/opt/pypi/simple/aenum").is_dir() else "mctl-demo-evil"

    out = tmp_path / "out"
    out.mkdir()
    env = {
        **python_client_env(tmp_path, ws),
        "MIRRORCTL": str(VENV_BIN / "mirrorctl"),
        "CONFIG": str(config),
        "PORT": str(PORT),
        "PROJECT": str(project),
        "MACHINE_ONLY": machine_only,
        # Hostile, on top of whatever the machine already sets:
        "PIP_EXTRA_INDEX_URL": hostile_url,
        "PIP_FIND_LINKS": str(hostile.parent / "files"),
        "UV_INDEX": hostile_url,
        "UV_FIND_LINKS": str(hostile.parent / "files"),
        "XDG_CONFIG_DIRS": f"{xdg}:{os.environ.get('XDG_CONFIG_DIRS', '/etc/xdg')}",
    }
    done = run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log

    # The premise: without the generated files the hostile sources are used.
    rc, log, _ = read_timed_step(out, "control-pip")
    assert rc == 0 and "mctl_demo_evil-1.0" in log, log
    rc, log, _ = read_timed_step(out, "control-uv")
    assert rc == 0 and "mctl-demo-evil==1.0" in log, log

    for client in ("pip", "uv"):
        rc, log, _ = read_timed_step(out, f"{client}-install")
        assert rc == 0, log
        rc, log, _ = read_timed_step(out, f"{client}-import")
        assert rc == 0 and log.strip() == "base", log
        _, freeze, _ = read_timed_step(out, f"{client}-freeze")
        pins = [line.strip().split("==") for line in freeze.splitlines() if "==" in line]
        installed = {f"{canonicalize_name(name)}=={version}" for name, version in pins}
        # The mirror's mctl-demo-lib 2.1.0, not the hostile 9.0.0; the extra's package; not the marker's.
        assert installed == {
            "mctl-demo-app==1.2.0",
            "mctl-demo-base==1.5.0",
            "mctl-demo-fast==0.3",
            "mctl-demo-lib==2.1.0",
        }, freeze
        for missing in ("missing", "machine"):
            rc, log, secs = read_timed_step(out, f"{client}-{missing}")
            assert rc not in (0, 124), log  # failed, and not by the timeout
            assert secs < 60, f"{client}-{missing} took {secs}s"
            assert "No matching distribution" in log or "not found in the package registry" in log, log

    # pip read core metadata (PEP 658) and the files through the mirror; unknown projects were 404s there.
    assert '/pypi/simple/mctl-demo-evil/ HTTP/1.1" 404' in serve_log
    assert '.whl.metadata HTTP/1.1" 200' in serve_log
    assert "mctl-demo-never" not in serve_log


TRUSTED_SCRIPT = netns_script(
    textwrap.dedent(
        """\
    # A host name that is not "localhost", resolved to loopback by this mount namespace's own /etc/hosts:
    # to pip it is a remote host, yet no packet leaves the loopback-only network namespace.
    mount --bind "$HOSTS" /etc/hosts
    "$MIRRORCTL" --config "$CONFIG" serve --host 127.0.0.1 --port "$PORT" > "$OUT/serve.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
    for i in $(seq 200); do
        probe="import urllib.request as u; u.urlopen('http://$ADDR:$PORT/healthz', timeout=1)"
        if "$BASE_PYTHON" -c "$probe" 2>/dev/null; then break; fi
        sleep 0.1
    done
    "$BASE_PYTHON" -m venv "$WORK/venv" > "$OUT/venv.log" 2>&1
    set -a; . "$WS/mirrorctl.env"; set +a
    step untrusted env PIP_CONFIG_FILE=/dev/null PIP_TRUSTED_HOST= \
        "$WORK/venv/bin/python" -m pip install mctl-demo-base
    step pip "$WORK/venv/bin/python" -m pip install mctl-demo-base
    step uv "$UV" pip install --python "$WORK/venv/bin/python" mctl-demo-lib
    """
    ),
    step_timeout=120,
)


def test_plain_http_mirror_on_a_remote_host_name_is_trusted_by_the_generated_config(
    tmp_path: Path,
) -> None:
    require_netns(uv_present)
    addr = "mirror.internal"
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {addr}\n::1 localhost\n")
    store, _ = closure_store(tmp_path / "store", tmp_path / "build")
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    ws = tmp_path / "ws"
    render_workspace_config(f"http://{addr}:{PORT}", ws, {"pypi": PypiEcosystem()}, install_dir=ws)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **python_client_env(tmp_path, ws, isolated=False),
        "ADDR": addr,
        "HOSTS": str(hosts),
        "MIRRORCTL": str(VENV_BIN / "mirrorctl"),
        "CONFIG": str(config),
        "PORT": str(PORT),
    }
    done = run_in_netns(tmp_path / "trusted.sh", TRUSTED_SCRIPT, out, env, timeout=600, unshare=("-n", "-m"))
    assert done.returncode == 0, done.stderr
    untrusted = (out / "untrusted.log").read_text()
    # Without trusted-host pip ignores the mirror: the premise of writing it.
    assert (out / "untrusted.rc").read_text().strip() == "1", untrusted
    assert "not a trusted or secure host" in untrusted
    assert (out / "pip.rc").read_text().strip() == "0", (out / "pip.log").read_text()
    assert (out / "uv.rc").read_text().strip() == "0", (out / "uv.log").read_text()
