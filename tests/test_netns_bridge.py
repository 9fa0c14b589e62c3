"""The namespace bridge carries exactly one port into a loopback-only namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.fixture_server import FixtureServer, Response
from tests.fixtures.netns import require_netns, uv_present
from tests.fixtures.netns_bridge import UnixToTcp


def test_one_port_reaches_the_host_and_nothing_else(tmp_path: Path) -> None:
    require_netns(uv_present)
    httpd = FixtureServer(name="bridged server")
    httpd.route("/hello.txt", lambda req: Response(body=b"through the bridge\n"))
    port = int(httpd.url.rsplit(":", 1)[1])
    httpd.start()
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
        httpd.stop()
    assert "through the bridge" in done.stdout, done.stderr
    assert "CLOSED" in done.stdout and "LEAK" not in done.stdout
