"""Helpers for scripts/services.sh: render the Pulp settings file and wait for the services to be healthy.

Standard library only: it runs under any Python 3.11+, before or without the project's venv.

    svctool.py render TEMPLATE OUT name=value name[]=item ...
    svctool.py wait-pulp API_URL CONTENT_URL --workers N --timeout S [--pid-file F ...]
    svctool.py wait-devpi URL --timeout S [--pid-file F ...]
    svctool.py port-free PORT   (exit 1 if something already listens on 127.0.0.1:PORT)

The wait commands print KEY=VALUE lines (versions) on success; on failure they say what they last saw and
exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import string
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Health checks talk to loopback only; a proxy from the environment must not take them elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def render(template: Path, out: Path, assignments: list[str]) -> None:
    values: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"svctool render: expected name=value, got {item!r}")
        if name.endswith("[]"):
            values.setdefault(name[:-2], []).append(value)
        else:
            values[name] = value
    text = string.Template(template.read_text()).substitute({k: repr(v) for k, v in values.items()})
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)  # it holds the database password and the secret key
    tmp.replace(out)


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
    try:
        with _OPENER.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _dead_pids(pid_files: list[str]) -> list[str]:
    dead = []
    for pid_file in pid_files:
        try:
            pid = int(Path(pid_file).read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            dead.append(Path(pid_file).stem)
    return dead


def _wait(check: Any, timeout: float, pid_files: list[str], what: str) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            ok, last = check()
        except (OSError, ValueError) as exc:  # refused, reset, timeout, bad JSON while starting
            ok, last = False, f"{type(exc).__name__}: {exc}"
        if ok:
            return
        dead = _dead_pids(pid_files)
        if dead:
            raise SystemExit(
                f"{what}: process exited before it was healthy: {', '.join(dead)} (last seen: {last})"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not healthy after {timeout:.0f}s (last seen: {last})")
        time.sleep(0.5)


def wait_pulp(api: str, content: str, workers: int, timeout: float, pid_files: list[str]) -> None:
    status: dict[str, Any] = {}

    def check() -> tuple[bool, str]:
        nonlocal status
        code, _, body = _get(api.rstrip("/") + "/pulp/api/v3/status/")
        if code != 200:
            return False, f"status answered {code}"
        status = json.loads(body)
        online = len(status.get("online_workers") or [])
        apps = len(status.get("online_content_apps") or [])
        db = (status.get("database_connection") or {}).get("connected")
        state = f"database connected={db}, online workers={online}/{workers}, content apps={apps}"
        if not db or online < workers or apps < 1:
            return False, state
        # The heartbeat says the content app runs; this says it answers on its own port.
        code, _, _ = _get(content.rstrip("/") + "/pulp/content/", method="HEAD")
        return code < 500, f"{state}, content app HEAD answered {code}"

    _wait(check, timeout, pid_files, "pulp")
    for entry in status.get("versions", []):
        component = str(entry.get("component", "")).upper().replace("-", "_")
        key = "PULPCORE_VERSION" if component == "CORE" else f"PULP_{component}_VERSION"
        print(f"{key}={entry.get('version', '')}")
    print(f"PULP_ONLINE_WORKERS={len(status.get('online_workers') or [])}")


def wait_devpi(url: str, timeout: float, pid_files: list[str]) -> None:
    headers: dict[str, str] = {}

    def check() -> tuple[bool, str]:
        nonlocal headers
        code, headers, body = _get(url.rstrip("/") + "/+api")
        if code != 200:
            return False, f"/+api answered {code}"
        json.loads(body)
        return True, "ok"

    _wait(check, timeout, pid_files, "devpi")
    version = {k.lower(): v for k, v in headers.items()}.get("x-devpi-server-version", "")
    print(f"DEVPI_SERVER_VERSION={version}")


def port_free(port: int) -> None:
    # A server of someone else's on our port would answer the health checks in our stead.
    with socket.socket() as sock:
        sock.settimeout(2)
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"127.0.0.1:{port} is already in use by another program")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="svctool.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("render")
    p.add_argument("template", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("wait-pulp")
    p.add_argument("api")
    p.add_argument("content")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--pid-file", action="append", default=[])
    p = sub.add_parser("wait-devpi")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--pid-file", action="append", default=[])
    p = sub.add_parser("port-free")
    p.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.cmd == "render":
        render(args.template, args.out, args.assignments)
    elif args.cmd == "wait-pulp":
        wait_pulp(args.api, args.content, args.workers, args.timeout, args.pid_file)
    elif args.cmd == "wait-devpi":
        wait_devpi(args.url, args.timeout, args.pid_file)
    else:
        port_free(args.port)


if __name__ == "__main__":
    main(sys.argv[1:])
