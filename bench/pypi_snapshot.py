"""The issue-2 benchmark: `mirrorctl lock` + `mirrorctl snapshot` of bench/profiles/bench.toml against the
configured upstream, beside `pip download` (once per target) and a plain 16-way parallel fetch of the same
files, in one run on this machine; plus the peak memory of snapshotting a generated 1 GiB wheel.

Run it (a few minutes; it downloads about 0.5 GB per repetition from the upstream pip uses here)::

    .venv/bin/python bench/pypi_snapshot.py                              # table on stdout
    .venv/bin/python bench/pypi_snapshot.py --out docs/benchmarks.md     # and the report
    .venv/bin/python bench/pypi_snapshot.py --repeat 1 --skip pip        # a quick check

The upstream is what `mirrorctl init` writes into a temporary mirrorctl.toml (it takes it from pip's own
settings); no host is named here. mirrorctl runs as subprocesses of its CLI, as users run it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fixtures.upstream (the 1 GiB wheel server)

from pypi_report import (  # noqa: E402  (bench/ is on sys.path when this script runs)
    MEASUREMENT_HEADER,
    PARALLEL,
    ColdRun,
    FetchRun,
    MemoryRun,
    PipRun,
    Results,
    Run,
    code_version,
    mb,
    measurement_rows,
    notes,
    render,
    table,
    target_rows,
)

from mirrorctl.aionet import AsyncioTransport  # noqa: E402
from mirrorctl.config import Settings, load_settings  # noqa: E402
from mirrorctl.ecosystems.base import FetchItem, load_ecosystems  # noqa: E402
from mirrorctl.ecosystems.pypi import PypiEcosystem  # noqa: E402
from mirrorctl.ecosystems.pypi.targets import Target  # noqa: E402
from mirrorctl.lockfile import read_lock  # noqa: E402
from mirrorctl.runtime import Runtime  # noqa: E402

PROFILE = ROOT / "bench" / "profiles" / "bench.toml"
LARGE_SIZE = 1 << 30  # 1 GiB
STEPS = ("mirrorctl", "parallel", "pip", "memory")


# -- running things ---------------------------------------------------------------------------------------


# Runs the measured command and reports its wall time and peak RSS. Why a launcher: Linux carries the
# high-water RSS of the process that forks/execs into the exec'd child's ru_maxrss, so os.wait4 (or
# RUSAGE_CHILDREN) on a child of this script would report at least this script's own peak (the 1 GiB
# wheel server and the parallel fetch live here). The launcher is a small fresh Python: its floor is ~10 MB.
_LAUNCHER = """
import os, subprocess, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
proc = subprocess.Popen(argv)
_, status, usage = os.wait4(proc.pid, 0)
with open(out, "w") as f:
    f.write(f"{time.perf_counter() - started} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run one command: wall time from spawn to exit, its own peak RSS and CPU time (user + system)."""
    with tempfile.TemporaryFile() as log, tempfile.NamedTemporaryFile("r", suffix=".usage") as usage:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _LAUNCHER, usage.name, *argv],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        log.seek(0)
        output = log.read().decode(errors="replace")
        measured = usage.read().split()
    if done.returncode != 0 or len(measured) != 3:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n{output[-4000:]}")
    return Run(float(measured[0]), int(measured[1]) * 1024 / 1e6, output, float(measured[2]))


def mirrorctl_argv() -> list[str]:
    exe = Path(sys.executable).parent / "mirrorctl"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from mirrorctl.cli.app import main; main()"]


@dataclass
class Workdir:
    path: Path
    settings: Settings
    source: str  # where `mirrorctl init` found the upstream
    profile_text: str

    def mirrorctl(self, *args: str) -> Run:
        return run_child([*mirrorctl_argv(), "--config", str(self.path / "mirrorctl.toml"), *args], cwd=self.path)


def make_workdir(parent: Path, name: str, profile_text: str, profile_name: str, upstream: str | None = None) -> Workdir:
    """A fresh folder with the mirrorctl.toml that `mirrorctl init` writes, one profile, no store, no lock."""
    path = parent / name
    if path.exists():
        shutil.rmtree(path)
    (path / "profiles").mkdir(parents=True)
    (path / "profiles" / f"{profile_name}.toml").write_text(profile_text, encoding="utf-8")
    extra = ["--upstream", f"pypi={upstream}"] if upstream else []
    init = run_child([*mirrorctl_argv(), "init", "--out", str(path / "mirrorctl.toml"), *extra], cwd=path)
    found = re.search(r"^\s+pypi: \S+\s+\(from (.*)\)\s*$", init.output, re.M)
    if not found:
        raise SystemExit(f"mirrorctl init found no PyPI upstream:\n{init.output}")
    settings = load_settings(path / "mirrorctl.toml", ecosystems=load_ecosystems())
    return Workdir(path, settings, found.group(1), profile_text)


def dir_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# -- the measured things ----------------------------------------------------------------------------------


def mirrorctl_cold(work: Workdir) -> ColdRun:
    lock = work.mirrorctl("lock", "bench")
    snap = work.mirrorctl("snapshot", "bench")
    locked = re.search(r"bench: (\d+) artifacts", lock.output)
    got = re.search(r"downloaded (\d+) files / ([\d.]+) MB", snap.output)
    if not locked or not got:
        raise SystemExit(f"unexpected mirrorctl output:\n{lock.output[-1000:]}\n{snap.output[-1000:]}")
    blobs, size = dir_size(work.settings.store_path / "blobs")
    warm_snapshot = work.mirrorctl("snapshot", "bench")
    if not re.search(r"downloaded 0 files", warm_snapshot.output):
        raise SystemExit(f"the warm snapshot downloaded something:\n{warm_snapshot.output[-2000:]}")
    warm_lock = work.mirrorctl("lock", "bench")
    fresh = make_workdir(work.path.parent, work.path.name + "-one-step", work.profile_text, "bench")
    one_step = fresh.mirrorctl("lock", "--snapshot", "bench")
    shutil.rmtree(fresh.path)
    return ColdRun(
        lock,
        snap,
        warm_snapshot,
        warm_lock,
        int(locked.group(1)),
        blobs,
        size,
        int(got.group(1)),
        int(float(got.group(2)) * 1e6),
        one_step,
    )


def pip_env(home: Path) -> dict[str, str]:
    """A clean environment: no PIP_* variables (this machine sets PIP_FIND_LINKS), no configuration files
    (PIP_CONFIG_FILE=/dev/null makes pip skip /etc/xdg/pip/pip.conf: extra-index-url and constraint)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env["PIP_CONFIG_FILE"] = os.devnull
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def manylinux_tags(python: str, platform_name: str) -> list[str]:
    """Every manylinux tag a wheel may carry for this target, from the same code mirrorctl's lock uses."""
    return [t for t in Target(python, platform_name).platform_tags() if t.startswith("manylinux")]


def pip_download(work: Path, index_url: str, requirements: list[str], targets: list[Target]) -> PipRun:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    cert = os.environ.get("SSL_CERT_FILE")  # the machine's trust store (kept: it is not a package source)
    per_target: dict[str, float] = {}
    files = size = 0
    cpu = 0.0
    for t in targets:
        dest = work / t.id
        dest.mkdir(parents=True)
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            t.python,
            *(arg for tag in manylinux_tags(t.python, t.platform) for arg in ("--platform", tag)),
            "-d",
            str(dest),
            "--index-url",
            index_url,
            *(["--cert", cert] if cert and Path(cert).is_file() else []),
            *requirements,
        ]
        run = run_child(argv, cwd=work, env=pip_env(home))
        if "Looking in links" in run.output:
            raise SystemExit(f"pip used find-links despite the clean environment:\n{run.output[-2000:]}")
        per_target[t.id] = run.seconds
        cpu += run.cpu_seconds
        n, b = dir_size(dest)
        files, size = files + n, size + b
    return PipRun(per_target, files, size, cpu)


async def fetch_plan(settings: Settings, lock_path: Path) -> list[FetchItem]:
    """The URLs of the lock's unique files on the configured upstream (not timed: it reads project pages)."""
    artifacts = read_lock(lock_path).for_ecosystem("pypi")
    rt = Runtime.for_settings(settings, environ=os.environ)
    async with rt.client() as client:
        ctx = rt.fetch_context("pypi", client)
        items = await PypiEcosystem().fetch_plan(artifacts, ctx)
    unique = {i.sha256: i for i in items}
    return sorted(unique.values(), key=lambda i: i.filename)


async def parallel_fetch(items: list[FetchItem], dest: Path, *, aionet: bool = False) -> FetchRun:
    """The plain baseline: 16 concurrent streamed GETs, written as they come, nothing verified. ``aionet``:
    the same through mirrorctl's HTTP transport (a reference figure, not the baseline)."""
    dest.mkdir(parents=True)  # noqa: ASYNC240 (before the clock starts)
    sem = asyncio.Semaphore(PARALLEL)
    total = 0
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)

    async def one(client: httpx.AsyncClient, item: FetchItem) -> None:
        nonlocal total
        async with sem, client.stream("GET", item.url) as resp:
            resp.raise_for_status()
            # Plain blocking writes, as a simple script would do them (page-cache writes are fast).
            with open(dest / item.filename, "wb") as f:  # noqa: ASYNC230
                async for chunk in resp.aiter_raw(1 << 16):
                    f.write(chunk)
                    total += len(chunk)

    started, cpu = time.perf_counter(), _cpu_self()
    transport = AsyncioTransport(limits=limits, http2=False) if aionet else None
    async with httpx.AsyncClient(limits=limits, timeout=60, follow_redirects=True, transport=transport) as client:
        await asyncio.gather(*(one(client, i) for i in items))
    return FetchRun(time.perf_counter() - started, len(items), total, cpu_seconds=_cpu_self() - cpu)


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def large_file_memory(parent: Path) -> MemoryRun:
    """Lock + snapshot one generated 1 GiB wheel served from loopback; the snapshot child's peak RSS."""
    from tests.fixtures.upstream import start_upstream

    up, server = start_upstream(parent / "upstream")
    try:
        entry = up.add_large("bench-large-wheel", "1.0", LARGE_SIZE)
        profile = (
            '[pypi]\nrequirements = ["bench-large-wheel"]\npython = ["3.11"]\nplatforms = ["manylinux_2_28_x86_64"]\n'
        )
        work = make_workdir(parent, "large", profile, "large", upstream=up.url)
        lock = work.mirrorctl("lock", "large")
        snap = work.mirrorctl("snapshot", "large")
        if not work.settings.store_path.exists() or dir_size(work.settings.store_path)[1] < entry.size:
            raise SystemExit(f"the 1 GiB wheel is not in the store:\n{snap.output[-2000:]}")
        return MemoryRun(lock, snap, entry.size)
    finally:
        server.stop()


# -- main ---------------------------------------------------------------------------------------------------


SECTION = "pypi-snapshot"


def write_report(path: Path, markdown: str) -> None:
    """Replace this benchmark's section of the report; other benchmarks' sections stay as they are."""
    from sections import update_section  # bench/sections.py, shared by the benchmarks

    if not path.exists() or not path.read_text(encoding="utf-8").strip():
        path.write_text("# Benchmarks\n\nEach section is written by one script in bench/.\n", encoding="utf-8")
    update_section(path, SECTION, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the report (Markdown) here, e.g. docs/benchmarks.md")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the cold runs (median reported)")
    parser.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    parser.add_argument("--workdir", type=Path, help="where to work (default: a new temp folder, removed after)")
    args = parser.parse_args(argv)

    profile_text = PROFILE.read_text(encoding="utf-8")
    profile = tomllib.loads(profile_text)["pypi"]
    targets = [Target(py, plat) for py in profile["python"] for plat in profile["platforms"]]
    base = args.workdir or Path(tempfile.mkdtemp(prefix="mirrorctl-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    results = Results(
        reps=args.repeat,
        load_start=os.getloadavg(),
        code_version=code_version(),
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
    )
    say: Callable[[str], None] = lambda s: print(s, flush=True)  # noqa: E731
    try:
        for rep in range(1, args.repeat + 1):
            work = make_workdir(base, f"mirrorctl-{rep}", profile_text, "bench")
            results.source = work.source
            if "mirrorctl" not in args.skip or "parallel" not in args.skip:
                cold = mirrorctl_cold(work)
                if "mirrorctl" not in args.skip:
                    results.cold.append(cold)
                    say(
                        f"[{rep}] mirrorctl: lock {cold.lock.seconds:.1f} s, "
                        f"snapshot {cold.snapshot.seconds:.1f} s (store {cold.files} files, "
                        f"{mb(cold.bytes)}; "
                        f"the snapshot downloaded {cold.snap_files} files, {mb(cold.snap_bytes)}); "
                        f"warm snapshot {cold.warm_snapshot.seconds:.2f} s, "
                        f"lock again {cold.warm_lock.seconds:.1f} s"
                    )
            if "parallel" not in args.skip:
                started = time.perf_counter()
                items = asyncio.run(fetch_plan(work.settings, work.path / "profiles" / "bench.lock"))
                plan_seconds = time.perf_counter() - started
                results.unique_files, results.unique_bytes = len(items), sum(i.size for i in items)
                par = asyncio.run(parallel_fetch(items, base / f"parallel-{rep}"))
                par.plan_seconds = plan_seconds
                results.parallel.append(par)
                say(f"[{rep}] parallel fetch: {par.seconds:.1f} s ({par.files} files, {mb(par.bytes)})")
                shutil.rmtree(base / f"parallel-{rep}")
                aio = asyncio.run(parallel_fetch(items, base / f"parallel-{rep}", aionet=True))
                results.parallel_aionet.append(aio)
                say(f"[{rep}] parallel fetch through mirrorctl's transport: {aio.seconds:.1f} s")
                shutil.rmtree(base / f"parallel-{rep}")
            shutil.rmtree(work.path)
            if "pip" not in args.skip:
                pip = pip_download(
                    base / f"pip-{rep}", work.settings.upstream("pypi").url, profile["requirements"], targets
                )
                results.pip.append(pip)
                say(
                    f"[{rep}] pip download: {pip.seconds:.1f} s ({pip.files} files, {mb(pip.bytes)}): "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in pip.per_target.items())
                )
                shutil.rmtree(base / f"pip-{rep}")
        if "mirrorctl" not in args.skip:
            results.startup = [run_child([*mirrorctl_argv(), "--help"], cwd=base).seconds for _ in range(3)]
        if "memory" not in args.skip:
            results.memory = large_file_memory(base)
            m = results.memory
            say(
                f"1 GiB wheel: snapshot {m.snapshot.seconds:.1f} s, peak RSS {m.snapshot.peak_rss_mb:.0f} MB "
                f"(lock {m.lock.peak_rss_mb:.0f} MB)"
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)

    print()
    print(table(MEASUREMENT_HEADER, measurement_rows(results)))
    print()
    print(table(("target", "measured", "ratio", "met"), target_rows(results)))
    print()
    for note in notes(results):
        print(f"- {note}")
    if args.out:
        write_report(args.out, render(results, profile))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    sys.exit(main())
