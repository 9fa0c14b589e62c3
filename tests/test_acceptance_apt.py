"""Acceptance: the machine's real apt-get (apt 2.6) installs from `mirrorctl serve` inside a loopback-only network
namespace, configured only by the files `mirrorctl workspace-config` wrote (APT_CONFIG = mirrorctl-apt.conf).

The store holds real .debs (tests/fixtures/apt_store.py: a dependency chain with a versioned Depends, an
alternative, a virtual package, a Pre-Depends on an arch-all package) and an archive key. Then:

* ``apt-get update`` verifies InRelease against the generated keyring and reads only the mirror (the host's
  own sources name hosts that do not exist in the namespace; any use of them would show up);
* ``apt-get install --download-only mctl-app`` with an empty dpkg status gets the full closure;
* through a tampering proxy (a man in the middle on another port): a changed Packages index, a changed .deb
  and a changed InRelease are each refused by apt;
* a package the mirror does not carry fails at once;
* after ``archive-key rotate``, workspaces with the old keyring and with the new one both still update.

Each step has its own apt state (lists, cache, empty status). ``APT::Sandbox::User=root`` only because pytest's
temporary folders are private to root, where apt's ``_apt`` user could not write its partial downloads.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.ecosystems.base import ClientConfig, ServedContent, load_ecosystems
from mirrorctl.inside.serve.app import StoreContent
from mirrorctl.inside.workspace import render_workspace_config
from tests.fixtures.netns import VENV_BIN, netns_script, read_timed_step, require_netns, run_in_netns

from .fixtures.apt_store import apt_store

pytestmark = pytest.mark.netns

PORT = 18083
TAMPER_PORT = 18084

# Stand-in used until the apt adapter is registered as an entry point: the same serve and client modules.
LAUNCHER = """
import asyncio, sys
from pathlib import Path
from mirrorctl.ecosystems.apt.clientconfig import client_config
from mirrorctl.ecosystems.apt.serve import serve_app
from mirrorctl.progress import Progress
from mirrorctl.inside.serve.runner import ServeOptions, serve
from mirrorctl.inside.store import Store

class Apt:
    name = "apt"
    def serve_app(self, content):
        return serve_app(content)

class Quiet:
    def task(self, *a, **k): raise NotImplementedError
    def note(self, message): print(message, flush=True)

asyncio.run(serve(Store(Path(sys.argv[1])), {"apt": Apt()}, ServeOptions(port=int(sys.argv[2])), Quiet()))
"""

# A man in the middle: /<mode>/apt/... is fetched from the mirror and one byte of the chosen files flipped.
TAMPER = """
import sys, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
UP = "http://127.0.0.1:" + sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WANTS = {"index": lambda p: "/binary-" in p, "deb": lambda p: p.endswith(".deb"),
         "inrelease": lambda p: p.endswith("/InRelease") or p.endswith("/Release")}
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        mode, _, rest = self.path.lstrip("/").partition("/")
        try:
            with opener.open(UP + "/" + rest, timeout=30) as r:
                body, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
        if status == 200 and mode in WANTS and WANTS[mode](rest) and body:
            if mode == "inrelease":
                body = body.replace(b"Label: mirrorctl", b"Label: mirrorctX", 1)
            else:
                i = len(body) // 2
                body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class _AptClient:
    """Only the client half of the adapter, for workspace-config while the entry point is not registered."""

    name = "apt"

    def client_config(
        self, mirror_url: str, *, endpoint: str | None = None, content: ServedContent | None = None
    ) -> ClientConfig:
        from mirrorctl.ecosystems.apt.clientconfig import client_config

        return client_config(mirror_url, endpoint=endpoint, content=content)


def _apt_present() -> str | None:
    return None if shutil.which("apt-get") and shutil.which("gpgv") else "needs apt-get and gpgv"


# aptrun.sh WS NAME SUBCOMMAND...: apt-get with only WS's generated config and a fresh state of its own
# (lists, cache, an empty dpkg status) per scenario NAME.
APTRUN = """\
ws="$1"; d="$WORK/state-$2"; shift 2
mkdir -p "$d/lists/partial" "$d/cache/archives/partial"; [ -e "$d/status" ] || : > "$d/status"
APT_CONFIG="$ws/mirrorctl-apt.conf" exec apt-get -q -y -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \\
    -o Dir::State::status="$d/status" -o APT::Sandbox::User=root -o Debug::NoLocking=1 \\
    -o APT::Architecture=amd64 -o APT::Architectures::=amd64 "$@"
"""

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    $SERVE > "$OUT/serve.log" 2>&1 &
    SERVER=$!
    "$PY" -c "$TAMPER" "$TAMPER_PORT" "$PORT" > "$OUT/tamper.log" 2>&1 &
    PROXY=$!
    trap 'kill $SERVER $PROXY 2>/dev/null; wait $SERVER $PROXY 2>/dev/null' EXIT
    up=0
    for i in $(seq 200); do
        if "$PY" -c "$PROBE" 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    echo $up > "$OUT/server-up"
    [ "$up" = 1 ] || exit 0

    step update sh "$APTRUN" "$WS" good update
    step install sh "$APTRUN" "$WS" good install --download-only mctl-app
    step missing sh "$APTRUN" "$WS" good install --download-only mctl-missing

    step tampered-index sh "$APTRUN" "$WS_INDEX" index update
    step tampered-inrelease sh "$APTRUN" "$WS_INRELEASE" inrelease update
    step deb-update sh "$APTRUN" "$WS_DEB" deb update
    step tampered-deb sh "$APTRUN" "$WS_DEB" deb install --download-only mctl-app
    """
    )
)

ROTATED = netns_script(
    textwrap.dedent(
        """\
    $SERVE > "$OUT/serve2.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
    for i in $(seq 200); do "$PY" -c "$PROBE" 2>/dev/null && break; sleep 0.1; done
    for ws in old new; do
        d="$WORK/rot-$ws"; mkdir -p "$d/lists/partial" "$d/cache/archives/partial"; : > "$d/status"
        eval "dir=\\$WS_$(echo $ws | tr a-z A-Z)"
        step "rotated-$ws" env APT_CONFIG="$dir/mirrorctl-apt.conf" apt-get -q -o Dir::State::Lists=$d/lists \
            -o Dir::Cache=$d/cache -o Dir::State::status=$d/status -o APT::Sandbox::User=root \
            -o Debug::NoLocking=1 update
    done
    """
    )
)


def _workspace(store_content: StoreContent, mirror_url: str, folder: Path) -> Path:
    eco = load_ecosystems().get("apt") or _AptClient()
    render_workspace_config(mirror_url, folder, {"apt": eco}, install_dir=folder, content=store_content)  # type: ignore[dict-item]
    return folder


def test_real_apt_get_installs_only_from_the_mirror(tmp_path: Path) -> None:
    require_netns(_apt_present)

    store, _, _ = apt_store(tmp_path / "store", tmp_path / "debs")
    key = ArchiveKey(store.root / "keys")
    key.generate()
    content = StoreContent(store)
    base = f"http://127.0.0.1:{PORT}"
    ws = _workspace(content, base, tmp_path / "ws")
    tampered = {
        mode: _workspace(content, f"http://127.0.0.1:{TAMPER_PORT}/{mode}", tmp_path / f"ws-{mode}")
        for mode in ("index", "deb", "inrelease")
    }
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    if "apt" in load_ecosystems():
        serve = f"{VENV_BIN / 'mirrorctl'} --config {config} serve --host 127.0.0.1 --port {PORT}"
    else:
        (tmp_path / "launcher.py").write_text(LAUNCHER)
        serve = f"{sys.executable} {tmp_path / 'launcher.py'} {store.root} {PORT}"

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "aptrun.sh").write_text(APTRUN)
    env = {
        "APTRUN": str(tmp_path / "aptrun.sh"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SERVE": serve,
        "PY": sys.executable,
        "PORT": str(PORT),
        "TAMPER_PORT": str(TAMPER_PORT),
        "TAMPER": TAMPER,
        "WORK": str(tmp_path),
        "WS": str(ws),
        "WS_INDEX": str(tampered["index"]),
        "WS_DEB": str(tampered["deb"]),
        "WS_INRELEASE": str(tampered["inrelease"]),
        "PROBE": "import urllib.request as u; u.build_opener(u.ProxyHandler({}))"
        f".open('http://127.0.0.1:{PORT}/healthz', timeout=2)",
        # an inherited proxy must not be used for the mirror: the generated apt.conf says DIRECT for its host
        "http_proxy": "http://127.0.0.1:9/",
    }
    done = run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log

    # apt-get update: signature verified, only the mirror read.
    rc, log, _ = read_timed_step(out, "update")
    assert rc == 0, log + serve_log
    assert f"Get:1 {base}/apt bookworm InRelease" in log, log
    assert "W:" not in log and "E:" not in log and "Ign" not in log, log
    lists = sorted(p.name for p in (tmp_path / "state-good" / "lists").iterdir() if p.is_file())
    assert lists and all(n.startswith(f"127.0.0.1:{PORT}_apt_dists_bookworm_") or n == "lock" for n in lists), lists

    # the full closure, with the versions apt must choose
    rc, log, _ = read_timed_step(out, "install")
    assert rc == 0, log + serve_log
    got = sorted(p.name for p in (tmp_path / "state-good" / "cache" / "archives").glob("*.deb"))
    assert got == [
        "mctl-app_1.0-1_amd64.deb",
        "mctl-libbase_3.0-2_amd64.deb",
        "mctl-libmid_2.1-1_amd64.deb",
        "mctl-provider_1%3a1.5_all.deb",  # apt names it with the epoch
        "mctl-tool_0.9_all.deb",
    ], log

    rc, log, secs = read_timed_step(out, "missing")
    assert rc != 0 and "Unable to locate package mctl-missing" in log, log
    assert secs < 30

    # Every tampering is refused by apt itself.
    rc, log, _ = read_timed_step(out, "tampered-index")
    assert rc != 0 and "Hash Sum mismatch" in log, log
    rc, log, _ = read_timed_step(out, "tampered-inrelease")
    assert rc != 0 and ("BADSIG" in log or "is not signed" in log), log
    rc, log, _ = read_timed_step(out, "deb-update")
    assert rc == 0, log  # the indexes pass through untouched
    rc, log, _ = read_timed_step(out, "tampered-deb")
    assert rc != 0 and "Hash Sum mismatch" in log, log
    assert not list((tmp_path / "state-deb" / "cache" / "archives").glob("mctl-*.deb"))

    # Rotation: old and new keyrings both verify during the overlap.
    shutil.copytree(ws, tmp_path / "ws-old")
    key.rotate()
    new_ws = _workspace(content, base, tmp_path / "ws-new")
    old_keyring = (tmp_path / "ws-old" / "mirrorctl-archive-keyring.asc").read_text()
    assert (new_ws / "mirrorctl-archive-keyring.asc").read_text() != old_keyring
    for text in (tmp_path / "ws-old").rglob("*"):  # the copy points at its own folder
        if text.is_file():
            text.write_text(text.read_text().replace(str(ws), str(tmp_path / "ws-old")))
    env2 = {**env, "WS_OLD": str(tmp_path / "ws-old"), "WS_NEW": str(new_ws)}
    done = run_in_netns(tmp_path / "rotated.sh", ROTATED, out, env2)
    assert done.returncode == 0, done.stderr
    for which in ("old", "new"):
        rc, log, _ = read_timed_step(out, f"rotated-{which}")
        assert rc == 0 and "W:" not in log, f"{which}: {log}"
