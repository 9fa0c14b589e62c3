"""The namespace bridge carries exactly one port into a loopback-only namespace."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from pathlib import Path

from tests.fixtures.netns import require_netns, uv_present
from tests.fixtures.netns_bridge import UnixToTcp


def test_one_port_reaches_the_host_and_nothing_else(tmp_path: Path) -> None:
    require_netns(uv_present)
    (tmp_path / "hello.txt").write_text("through the bridge\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):  # type: ignore[no-untyped-def]
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    bridge = UnixToTcp(tmp_path / "b.sock", ("127.0.0.1", port)).start()
    script = f"""
ip link set lo up
{sys.executable} {Path(__file__).parent / "fixtures" / "netns_bridge.py"} {port} {tmp_path / "b.sock"} &
B=$!
sleep 1
{sys.executable} -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/hello.txt').read().decode())"
{sys.executable} -c "import urllib.request as u; u.urlopen('http://127.0.0.1:{port + 1}/', timeout=5)" 2>/dev/null \
  && echo LEAK || echo CLOSED
kill $B
"""
    try:
        done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        bridge.stop()
        httpd.shutdown()
        httpd.server_close()
    assert "through the bridge" in done.stdout, done.stderr
    assert "CLOSED" in done.stdout and "LEAK" not in done.stdout
