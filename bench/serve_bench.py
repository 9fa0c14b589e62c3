"""A mirror under load (issue 12): `mirrorctl serve` and `mirrorctl serve --front nginx` against
`python3 -m http.server` and nginx over the same bytes.

Builds a store offline (PyPI wheels of about 67 KB, npm tarballs, apt .debs, several versions each), starts
`mirrorctl serve` on it and `mirrorctl serve --front nginx` (nginx, started by mirrorctl, sends the package files
from the view's file tree and passes the rest to mirrorctl's workers), fetches one URL of each kind and writes
those exact bytes into a folder that http.server and nginx then serve. Each kind is loaded with `wrk -t2 -c64`
against each of the four servers in turn (a warm-up first, then the measured run), all on 127.0.0.1, so they
share the machine's noise. The RSS of each mirrorctl process tree is sampled over the whole run. Writes the
section "Serving under load (issue 12)" of docs/benchmarks.md.

    .venv/bin/python bench/serve_bench.py                      # 10 s per run, mirrorctl --workers = nproc
    .venv/bin/python bench/serve_bench.py --duration 5 --no-write

Needs wrk and nginx (the Debian packages `wrk` and `nginx`); when missing they are installed with apt-get
(as root). nginx runs as this bench's own process with a generated config on a free 127.0.0.1 port, never as
the system service. Every server this starts is stopped on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from machine import host_facts
from pypi_report import code_version, table
from pypi_snapshot import mirrorctl_argv
from sections import update_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the store is built with the tests' fixtures: real wheels, tarballs and .debs

from mirrorctl.inside.store import Store  # noqa: E402
from mirrorctl.lockfile import Artifact  # noqa: E402
from tests.fixtures.apt_store import apt_artifact  # noqa: E402
from tests.fixtures.debs import build_deb  # noqa: E402
from tests.fixtures.npm_registry import PkgSpec  # noqa: E402
from tests.fixtures.npm_store import npm_artifact  # noqa: E402
from tests.fixtures.store_content import publish_view, wheel_artifact  # noqa: E402
from tests.fixtures.wheels import Dist  # noqa: E402

SECTION = "serve"
TITLE = "## Serving under load (issue 12)"
# Each kind: (label, what it is). Files and pages, the two loads an organisation's workspaces put on a mirror.
KINDS = (
    ("pypi-file", "a PyPI wheel (/pypi/files/…)"),
    ("pypi-simple", "a PyPI simple project page"),
    ("npm-tarball", "an npm tarball"),
    ("npm-packument", "an npm packument"),
    ("apt-pool", "an apt pool .deb"),
    ("apt-packages", "apt Packages"),
)
FILE_KINDS = {"pypi-file", "npm-tarball", "apt-pool"}
FRONT = "mirrorctl --front nginx"
SERVERS = ("mirrorctl", FRONT, "http.server", "nginx")
MIRRORS = ("mirrorctl", FRONT)  # the two ways of serving the targets are checked for
# The targets issue 12 sets.
FILE_VS_HTTP_SERVER = 1.5
FILE_VS_NGINX = 0.5
INDEX_VS_HTTP_SERVER = 1.3
INDEX_P99_MS = 50.0
RSS_GROWTH = 1.10  # "flat": the last samples within 10 % (+ 8 MiB of allocator slack) of the first ones


def log(msg: str) -> None:
    print(f"[serve-bench] {msg}", file=sys.stderr, flush=True)


# --- tools --------------------------------------------------------------------------------------------------


def ensure_tools() -> tuple[str, str]:
    """wrk and nginx, installed from the Debian packages when missing."""
    missing = [pkg for pkg, exe in (("wrk", "wrk"), ("nginx", "nginx")) if not _which(exe)]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"serve_bench: {' and '.join(missing)} missing; install them: apt-get install {' '.join(missing)}")
        log(f"installing {' '.join(missing)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
        # policy-rc.d-less machines would start the system nginx: tell invoke-rc.d not to (exit 101 = denied).
        policy = Path("/usr/sbin/policy-rc.d")
        made_policy = not policy.exists()
        if made_policy:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            install = ["apt-get", "install", "-y", "-qq", *missing]
            subprocess.run(install, check=True, env=env, stdout=subprocess.DEVNULL)
        finally:
            if made_policy:
                policy.unlink(missing_ok=True)
    wrk, nginx = _which("wrk"), _which("nginx")
    if not wrk or not nginx:
        sys.exit("serve_bench: wrk or nginx still missing after apt-get install")
    return wrk, nginx


def _which(exe: str) -> str | None:
    return shutil.which(exe) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / exe).exists()), None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the store ----------------------------------------------------------------------------------------------


def padding(seed: str, size: int) -> str:
    """Text that compresses poorly (so a packed file stays near ``size`` bytes), the same on every run."""
    import hashlib

    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return base64.b64encode(bytes(out[:size])).decode()


def build_store(root: Path, build: Path, projects: int) -> list[Artifact]:
    """``projects`` PyPI projects, npm packages and apt packages of three versions each, about 67 KB a file."""
    store = Store(root)
    arts: list[Artifact] = []
    pad = 66_000  # random bytes as base64 (~88 KB of text), which deflate packs into a file of about 67 KB
    for i in range(projects):
        for v in ("1.0.0", "1.1.0", "2.0.0"):
            name = f"mctl-bench-{i:03d}"
            arts.append(
                wheel_artifact(
                    store,
                    Dist(name, v, files={f"mctl_bench_{i:03d}/data.txt": padding(f"py{i}{v}", pad)}),
                    build / "wheels",
                )
            )
            arts.append(npm_artifact(store, PkgSpec(name, v, files={"data.txt": padding(f"npm{i}{v}", pad)})))
            deb = build_deb(
                build / "debs", name, f"{v}-1", "amd64", payload=padding(f"deb{i}{v}", pad).encode()
            )
            arts.append(apt_artifact(store, deb))
    publish_view(store, arts)
    return arts


# --- servers --------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Each runs in its own process group: the signal reaches the workers too.
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_http(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode}):\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url}: no answer within {timeout:.0f} s:\n{log_path.read_text()[-2000:]}")


def start_mirrorctl(work: Path, workers: int, *, front: bool = False) -> Server:
    config = work / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{work / "store"}"\n')
    log_path = work / ("mirrorctl-front.log" if front else "mirrorctl.log")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [*mirrorctl_argv(), "--config", str(config), "serve", "--port", "0", "--no-access-log",
             "--workers", str(workers), *(["--front", "nginx"] if front else [])],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"mirrorctl serve: (http://127\.0\.0\.1:\d+)/", log_path.read_text(errors="replace"))
        if found:
            server = Server(FRONT if front else "mirrorctl", proc, found.group(1), log_path)
            wait_http(server.base + "/healthz", proc, log_path)
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"mirrorctl serve did not start:\n{log_path.read_text()[-2000:]}")


def start_http_server(work: Path, folder: Path) -> Server:
    port = free_port()
    log_path = work / "http-server.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = Server("http.server", proc, f"http://127.0.0.1:{port}", log_path)
    wait_http(server.base + "/", proc, log_path)
    return server


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {folder};
    }}
}}
"""


def start_nginx(nginx: str, work: Path, folder: Path, workers: int) -> Server:
    port = free_port()
    (work / "nginx-tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    # As root nginx drops its workers to `nobody`, who cannot read a private temporary folder: keep root.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(workers=workers, work=work, port=port, folder=folder, user=user))
    log_path = work / "nginx.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [nginx, "-p", str(work), "-e", str(work / "nginx-error.log"), "-c", str(conf)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = Server("nginx", proc, f"http://127.0.0.1:{port}", log_path)
    wait_http(server.base + "/", proc, log_path) if (folder / "index.html").exists() else _wait_port(port, proc)
    return server


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nginx did not listen within 30 s")


@contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers:
            s.stop()


# --- the URLs and the baseline folder -------------------------------------------------------------------------


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return bytes(r.read())


def mirror_paths(base: str, arts: Sequence[Artifact]) -> dict[str, str]:
    """One path of each kind on the mirror, all of one package (the middle one, so not first nor last)."""
    pypi = [a for a in arts if a.ecosystem == "pypi"]
    npm = [a for a in arts if a.ecosystem == "npm"]
    apt = [a for a in arts if a.ecosystem == "apt"]
    wheel = pypi[len(pypi) // 2]
    tgz = npm[len(npm) // 2]
    deb = apt[len(apt) // 2]
    packument = fetch(f"{base}/npm/{tgz.name}").decode()
    tarball = re.search(rf'"tarball":"[^"]*?(/npm/{re.escape(tgz.name)}/-/[^"]*?-{re.escape(tgz.version)}\.tgz)"',
                        packument)
    if tarball is None:
        raise RuntimeError(f"npm packument of {tgz.name}: no tarball URL for {tgz.version}")
    return {
        "pypi-file": f"/pypi/files/{wheel.sha256}/{Path(wheel.path).name}",
        "pypi-simple": f"/pypi/simple/{wheel.name}/",
        "npm-tarball": tarball.group(1),
        "npm-packument": f"/npm/{tgz.name}",
        "apt-pool": f"/apt/{deb.attrs['pool']}",
        "apt-packages": "/apt/dists/bookworm/main/binary-amd64/Packages",
    }


def baseline_folder(folder: Path, base: str, paths: dict[str, str]) -> dict[str, str]:
    """The bytes mirrorctl serves at each path, as plain files the baselines serve; their paths there."""
    out: dict[str, str] = {}
    for kind, path in paths.items():
        data = fetch(base + path)
        target = folder / kind / "body"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        out[kind] = f"/{kind}/body"
    return out


# --- load -----------------------------------------------------------------------------------------------------


@dataclass
class Load:
    requests_per_s: float
    bytes_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[m.group(2)]


def parse_wrk(out: str) -> Load:
    def grab(pattern: str) -> re.Match[str]:
        m = re.search(pattern, out, re.M)
        if m is None:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{out}")
        return m

    rps = float(grab(r"^Requests/sec:\s+([\d.]+)").group(1))
    tr = grab(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return Load(
        requests_per_s=rps,
        bytes_per_s=float(tr.group(1)) * _UNITS[tr.group(2)],
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)").group(1)),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)").group(1)),
        errors=errors,
        requests=int(grab(r"^\s+(\d+) requests in").group(1)),
    )


def run_wrk(wrk: str, url: str, *, threads: int, connections: int, seconds: float) -> Load:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "--latency",
            url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}")
    return parse_wrk(done.stdout)


@dataclass
class RssSampler:
    """The summed RSS of a process and its children, every ``every`` seconds, in a thread."""

    pid: int
    every: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(self.every):
            try:
                top = psutil.Process(self.pid)
                procs = [top, *top.children(recursive=True)]
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            self.samples.append((time.monotonic() - t0, rss))


# --- the report -----------------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def verdicts(results: dict[str, dict[str, Load]], mirror: str = "mirrorctl") -> list[tuple[str, bool, str]]:
    """The issue's targets for one way of serving (``mirror``: a name in MIRRORS)."""
    out: list[tuple[str, bool, str]] = []
    label = "" if mirror == "mirrorctl" else f" ({mirror})"
    for kind, by in results.items():
        if mirror not in by:
            continue
        m, h, n = by[mirror], by["http.server"], by["nginx"]
        if kind in FILE_KINDS:
            rh, rn = ratio(m.requests_per_s, h.requests_per_s), ratio(m.requests_per_s, n.requests_per_s)
            out.append((f"{kind}{label}: ≥ {FILE_VS_HTTP_SERVER}x http.server", rh >= FILE_VS_HTTP_SERVER,
                        f"{rh:.2f}x"))  # fmt: skip
            out.append((f"{kind}{label}: ≥ {FILE_VS_NGINX}x nginx", rn >= FILE_VS_NGINX, f"{rn:.2f}x"))
        else:
            rh = ratio(m.requests_per_s, h.requests_per_s)
            out.append((f"{kind}{label}: ≥ {INDEX_VS_HTTP_SERVER}x http.server", rh >= INDEX_VS_HTTP_SERVER,
                        f"{rh:.2f}x"))  # fmt: skip
            out.append((f"{kind}{label}: p99 < {INDEX_P99_MS:.0f} ms", m.p99_ms < INDEX_P99_MS, f"{m.p99_ms:.1f} ms"))
        out.append((f"{kind}{label}: zero errors", m.errors == 0, str(m.errors)))
    return out


def rss_flat(samples: Sequence[tuple[float, int]]) -> tuple[bool, str]:
    if len(samples) < 8:
        return False, "too few samples"
    k = max(2, len(samples) // 10)
    first = max(r for _, r in samples[:k])
    last = max(r for _, r in samples[-k:])
    peak = max(r for _, r in samples)
    ok = last <= first * RSS_GROWTH + 8 * 1024**2
    return ok, f"{first / 1024**2:.0f} MiB at the start, {last / 1024**2:.0f} MiB at the end, peak {peak / 1024**2:.0f}"


def report(
    results: dict[str, dict[str, Load]],
    sizes: dict[str, int],
    rss: dict[str, tuple[bool, str]],
    args: argparse.Namespace,
    workers: int,
    nginx_version: str,
) -> str:
    rows = []
    for kind, _what in KINDS:
        by = results[kind]
        h, n = by["http.server"].requests_per_s, by["nginx"].requests_per_s
        for name in SERVERS:
            r = by[name]
            rows.append([
                f"{kind} ({sizes[kind] / 1000:.1f} kB)" if name == "mirrorctl" else "",
                name,
                f"{r.requests_per_s:,.0f}",
                f"{r.bytes_per_s / 1e6:,.1f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                str(r.errors),
                f"{ratio(r.requests_per_s, h):.2f}x",
                f"{ratio(r.requests_per_s, n):.2f}x",
            ])
    tables = []
    for mirror in MIRRORS:
        checks = verdicts(results, mirror)
        ok, what = rss[mirror]
        checks.append((f"{mirror} RSS flat over the run" + (" (nginx included)" if mirror == FRONT else ""), ok, what))
        met = sum(ok for _, ok, _ in checks)
        command = f"mirrorctl serve --workers {workers}" + (" --front nginx" if mirror == FRONT else "")
        tables += [
            f"Targets (issue 12) for `{command}`: {met} of {len(checks)} met.",
            "",
            table(["target", "met", "measured"], [[t, "yes" if ok else "**no**", v] for t, ok, v in checks]),
            "",
        ]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        TITLE,
        "",
        f"Measured {when} by `bench/serve_bench.py` (mirrorctl {code_version()}): `wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s --latency` against each server in turn on 127.0.0.1, after a "
        f"{args.warmup} s warm-up of each; `mirrorctl serve --workers {workers}`; `mirrorctl serve --workers "
        f"{workers} --front nginx` (nginx, started and configured by mirrorctl, sends the package files from the "
        "served view's file tree and passes index pages to mirrorctl's workers on a unix socket); "
        f"`python3 -m http.server` (threaded, one process) and nginx {nginx_version} ({workers} worker processes, "
        "sendfile on) serving the bytes mirrorctl served at each URL, as plain files. The store holds "
        f"{args.projects} projects x 3 versions for each of PyPI, npm and apt. wrk runs on the same machine, so "
        "every figure includes its share of the CPUs.",
        "",
        table(["kind", "server", "req/s", "MB/s", "p50 ms", "p99 ms", "errors", "x http.server", "x nginx"], rows),
        "",
        *tables,
        "Machine:",
        "",
        table(["", ""], host_facts()),
        "",
        "Re-run: `.venv/bin/python bench/serve_bench.py` (about "
        f"{len(KINDS) * len(SERVERS) * (args.duration + args.warmup) // 60 + 1} minutes; `--no-write` to only print).",
    ]
    return "\n".join(parts)


# --- main -----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds of each measured wrk run (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each (default 2)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="mirrorctl serve --workers and nginx's (default: nproc)")
    p.add_argument("--projects", type=int, default=30, help="packages per ecosystem (3 versions each)")
    p.add_argument("--kinds", default=",".join(k for k, _ in KINDS), help="comma-separated subset of the kinds")
    p.add_argument("--no-write", action="store_true", help="print the section, leave docs/benchmarks.md alone")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 30:
        p.error("--duration 1..120 and --warmup 0..30 seconds: the bench is bounded")
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - {k for k, _ in KINDS})
    if unknown:
        p.error(f"--kinds: unknown {', '.join(unknown)}")
    workers = args.workers or len(os.sched_getaffinity(0))
    wrk, nginx = ensure_tools()
    nginx_version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]

    with tempfile.TemporaryDirectory(prefix="mirrorctl-serve-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        log(f"building the store ({args.projects} packages x 3 versions per ecosystem)")
        arts = build_store(work / "store", work / "build", args.projects)
        folder = work / "www"
        folder.mkdir()
        servers: list[Server] = []
        with running(servers):
            mirror = start_mirrorctl(work, workers)
            servers.append(mirror)
            front = start_mirrorctl(work, workers, front=True)
            servers.append(front)
            paths = mirror_paths(mirror.base, arts)
            flat = baseline_folder(folder, mirror.base, paths)
            sizes = {k: (folder / k / "body").stat().st_size for k in paths}
            servers.append(start_http_server(work, folder))
            servers.append(start_nginx(nginx, work, folder, workers))
            by_name = {s.name: s for s in servers}
            samplers = {mirror.name: RssSampler(mirror.proc.pid), front.name: RssSampler(front.proc.pid)}
            for sampler in samplers.values():
                sampler.start()
            results: dict[str, dict[str, Load]] = {}
            try:
                for kind in kinds:
                    results[kind] = {}
                    for name in SERVERS:
                        url = by_name[name].base + (paths[kind] if name in MIRRORS else flat[kind])
                        if args.warmup:
                            run_wrk(wrk, url, threads=args.threads, connections=args.connections, seconds=args.warmup)
                        load = run_wrk(wrk, url, threads=args.threads, connections=args.connections,
                                       seconds=args.duration)
                        results[kind][name] = load
                        log(f"{kind:14} {name:24} {load.requests_per_s:9,.0f} req/s {load.bytes_per_s / 1e6:8.1f} MB/s"
                            f"  p99 {load.p99_ms:7.2f} ms  errors {load.errors}")
            finally:
                for sampler in samplers.values():
                    sampler.stop()
        rss = {name: rss_flat(sampler.samples) for name, sampler in samplers.items()}
    if set(kinds) != {k for k, _ in KINDS}:
        for kind, _ in KINDS:
            results.setdefault(kind, {})
        log("a subset of the kinds was measured: nothing written")
        for kind in kinds:
            for mirror in MIRRORS:
                for t, ok, v in verdicts({kind: results[kind]}, mirror):
                    log(f"{'met' if ok else 'NOT met'}: {t} ({v})")
        return 0
    text = report(results, sizes, rss, args, workers, nginx_version)
    print(text)
    if not args.no_write:
        update_section(args.out, SECTION, text)
        log(f"wrote section {SECTION!r} of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
