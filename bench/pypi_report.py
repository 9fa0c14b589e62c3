"""Results of bench/pypi_snapshot.py and their rendering: the tables on stdout and docs/benchmarks.md.

Example::

    print(table(("target", "measured", "ratio", "met"), target_rows(results)))
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from machine import host_facts

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = 16
# The issue-2 targets: cold lock + snapshot against the two baselines (ratios), warm re-run, peak memory.
TARGETS = {"cold_vs_pip": 0.25, "cold_vs_parallel": 1.5, "warm_s": 2.0, "peak_mb": 200.0}


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float  # of the child and the descendants it waited for
    output: str
    cpu_seconds: float = 0.0  # user + system: what the run cost, whatever else the machine was doing


@dataclass
class ColdRun:
    lock: Run
    snapshot: Run
    warm_snapshot: Run
    warm_lock: Run
    artifacts: int  # in the lock
    files: int  # blobs in the store after the snapshot
    bytes: int
    snap_files: int  # what the snapshot itself downloaded (the lock may keep whole files it had to read)
    snap_bytes: int
    one_step: Run | None = None  # `mirrorctl lock --snapshot bench` in another fresh folder


@dataclass
class PipRun:
    per_target: dict[str, float]
    files: int
    bytes: int
    cpu_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return sum(self.per_target.values())


@dataclass
class FetchRun:
    seconds: float
    files: int
    bytes: int
    plan_seconds: float = 0.0  # the adapter's fetch_plan (project pages) before it, not in `seconds`
    cpu_seconds: float = 0.0


@dataclass
class MemoryRun:
    lock: Run
    snapshot: Run
    size: int


@dataclass
class Results:
    reps: int
    cold: list[ColdRun] = field(default_factory=list)
    pip: list[PipRun] = field(default_factory=list)
    parallel: list[FetchRun] = field(default_factory=list)
    # the same plain fetch through mirrorctl's HTTP transport (mirrorctl.aionet): for reference only
    parallel_aionet: list[FetchRun] = field(default_factory=list)
    memory: MemoryRun | None = None
    source: str = ""
    unique_files: int = 0
    unique_bytes: int = 0
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)  # os.getloadavg() when the run began
    code_version: str = ""  # code_version() when the run began
    started: str = ""  # UTC date and time when the run began
    startup: list[float] = field(default_factory=list)  # `mirrorctl --help`: interpreter + imports


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_runs(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


MEASUREMENT_HEADER = ("measurement", "median", "each run (s)", "CPU (median)", "data")


def measurement_rows(r: Results) -> list[tuple[str, str, str, str, str]]:
    """(what, median wall seconds, each run, median CPU seconds, data) rows."""
    rows: list[tuple[str, str, str, str, str]] = []

    def add(name: str, values: list[float], data: str, cpu: list[float] | None = None) -> None:
        if values:
            cpu_text = f"{med(cpu):.1f} s" if cpu else ""
            rows.append((name, f"{med(values):.2f} s", fmt_runs(values), cpu_text, data))

    if r.pip:
        add(
            "`pip download`, 4 targets (total)",
            [p.seconds for p in r.pip],
            f"{r.pip[0].files} files, {mb(r.pip[0].bytes)}",
            [p.cpu_seconds for p in r.pip],
        )
        for tid in r.pip[0].per_target:
            add(f"&nbsp;&nbsp;`pip download` {tid}", [p.per_target[tid] for p in r.pip], "")
    add(
        f"plain {PARALLEL}-way parallel fetch",
        [p.seconds for p in r.parallel],
        f"{r.parallel[0].files} files, {mb(r.parallel[0].bytes)}" if r.parallel else "",
        [p.cpu_seconds for p in r.parallel],
    )
    add(
        "&nbsp;&nbsp;the same, through mirrorctl's HTTP transport (reference, not a target)",
        [p.seconds for p in r.parallel_aionet],
        "asyncio streams under httpx (`mirrorctl/aionet.py`)",
        [p.cpu_seconds for p in r.parallel_aionet],
    )
    add(
        "&nbsp;&nbsp;(not timed above: the PyPI `fetch_plan`, in-process)",
        [p.plan_seconds for p in r.parallel],
        "reads the project pages for the files' URLs",
    )
    if r.cold:
        c0 = r.cold[0]
        add(
            "`mirrorctl lock bench` (cold)",
            [c.lock.seconds for c in r.cold],
            f"{c0.artifacts} artifacts locked",
            [c.lock.cpu_seconds for c in r.cold],
        )
        add(
            "`mirrorctl snapshot bench` (cold)",
            [c.snapshot.seconds for c in r.cold],
            f"store: {c0.files} files, {mb(c0.bytes)} (the snapshot downloaded {c0.snap_files} files, "
            f"{mb(c0.snap_bytes)}; the lock kept the rest)",
            [c.snapshot.cpu_seconds for c in r.cold],
        )
        add(
            "cold lock + snapshot",
            [c.lock.seconds + c.snapshot.seconds for c in r.cold],
            "",
            [c.lock.cpu_seconds + c.snapshot.cpu_seconds for c in r.cold],
        )
        add(
            "`mirrorctl snapshot bench` (warm)",
            [c.warm_snapshot.seconds for c in r.cold],
            "0 files downloaded",
            [c.warm_snapshot.cpu_seconds for c in r.cold],
        )
        add(
            "`mirrorctl lock bench` (again)",
            [c.warm_lock.seconds for c in r.cold],
            "",
            [c.warm_lock.cpu_seconds for c in r.cold],
        )
        add("warm lock + snapshot", [c.warm_lock.seconds + c.warm_snapshot.seconds for c in r.cold], "")
    one = [c.one_step.seconds for c in r.cold if c.one_step]
    add(
        "`mirrorctl lock --snapshot bench` (cold, one command)",
        one,
        "downloads overlap resolution; same lock and store",
        [c.one_step.cpu_seconds for c in r.cold if c.one_step],
    )
    add("`mirrorctl --help` (CLI start-up, in every figure above)", r.startup, "")
    if r.memory:
        m = r.memory
        rows.append(
            (
                "`mirrorctl snapshot` of a 1 GiB wheel (loopback)",
                f"{m.snapshot.seconds:.2f} s",
                "",
                f"{m.snapshot.cpu_seconds:.1f} s",
                f"peak RSS {m.snapshot.peak_rss_mb:.0f} MB (lock: {m.lock.peak_rss_mb:.0f} MB)",
            )
        )
    return rows


def target_rows(r: Results) -> list[tuple[str, str, str, str]]:
    """(target, measured, ratio or value against the limit, met) rows."""
    rows: list[tuple[str, str, str, str]] = []
    if r.cold:
        cold = med([c.lock.seconds + c.snapshot.seconds for c in r.cold])
        if r.pip:
            pip = med([p.seconds for p in r.pip])
            ratio = cold / pip
            rows.append(
                (
                    f"cold lock + snapshot <= {TARGETS['cold_vs_pip']}x `pip download` total",
                    f"{cold:.1f} s vs {pip:.1f} s",
                    f"{ratio:.2f}x",
                    verdict(ratio, TARGETS["cold_vs_pip"], "x", f"{pip * TARGETS['cold_vs_pip']:.1f} s"),
                )
            )
        if r.parallel:
            par = med([p.seconds for p in r.parallel])
            ratio = cold / par
            rows.append(
                (
                    f"cold lock + snapshot <= {TARGETS['cold_vs_parallel']}x plain parallel fetch",
                    f"{cold:.1f} s vs {par:.1f} s",
                    f"{ratio:.2f}x",
                    verdict(ratio, TARGETS["cold_vs_parallel"], "x", f"{par * TARGETS['cold_vs_parallel']:.1f} s"),
                )
            )
        one = [c.one_step.seconds for c in r.cold if c.one_step]
        if one:
            o = med(one)
            if r.pip:
                pip = med([p.seconds for p in r.pip])
                rows.append(
                    (
                        f"`lock --snapshot` (one command) <= {TARGETS['cold_vs_pip']}x `pip download` total",
                        f"{o:.1f} s vs {pip:.1f} s",
                        f"{o / pip:.2f}x",
                        verdict(o / pip, TARGETS["cold_vs_pip"], "x", f"{pip * TARGETS['cold_vs_pip']:.1f} s"),
                    )
                )
            if r.parallel:
                par = med([p.seconds for p in r.parallel])
                rows.append(
                    (
                        f"`lock --snapshot` (one command) <= {TARGETS['cold_vs_parallel']}x plain parallel fetch",
                        f"{o:.1f} s vs {par:.1f} s",
                        f"{o / par:.2f}x",
                        verdict(
                            o / par, TARGETS["cold_vs_parallel"], "x", f"{par * TARGETS['cold_vs_parallel']:.1f} s"
                        ),
                    )
                )
        warm = med([c.warm_snapshot.seconds for c in r.cold])
        rows.append(
            (
                f"warm re-run (`snapshot`) < {TARGETS['warm_s']:.0f} s",
                f"{warm:.2f} s",
                "",
                verdict(warm, TARGETS["warm_s"], " s"),
            )
        )
        both = med([c.warm_lock.seconds + c.warm_snapshot.seconds for c in r.cold])
        rows.append(
            (
                f"warm re-run (`lock` + `snapshot`) < {TARGETS['warm_s']:.0f} s",
                f"{both:.2f} s",
                "",
                verdict(both, TARGETS["warm_s"], " s"),
            )
        )
    if r.memory:
        peak = r.memory.snapshot.peak_rss_mb
        rows.append(
            (
                f"peak memory snapshotting 1 GiB < {TARGETS['peak_mb']:.0f} MB",
                f"{peak:.0f} MB",
                "",
                verdict(peak, TARGETS["peak_mb"], " MB"),
            )
        )
    return rows


def verdict(value: float, limit: float, unit: str, allowed: str = "") -> str:
    """ "yes", or "no" with how far off: the factor, and what the limit allows."""
    if value <= limit:
        return "yes"
    return f"**no**: {value / limit:.1f}x over the limit ({allowed or f'{limit:g}{unit}'} allowed)"


def machine(r: Results) -> list[tuple[str, str]]:
    pip_v = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout.split()
    return [
        *host_facts(),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("pip (baseline)", pip_v[1] if len(pip_v) > 1 else "?"),
        ("httpx", httpx.__version__),
        ("mirrorctl commit at start", r.code_version),
        ("load average (1/5/15 min) at start", " / ".join(f"{x:.1f}" for x in r.load_start)),
        ("load average at end", " / ".join(f"{x:.1f}" for x in os.getloadavg())),
        ("date (UTC)", f"{r.started} to {dt.datetime.now(dt.UTC).strftime('%H:%M')}"),
    ]


def code_version() -> str:
    """The commit the measured mirrorctl came from; others work in the same tree, so say if it is dirty."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "mirrorctl"], capture_output=True, text=True
    ).stdout.strip()
    return (commit.stdout.strip() or "?") + (" + uncommitted changes in mirrorctl/" if dirty else "")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# The figures issue 2 gives for "this kind of machine", to compare against what this run measured.
ISSUE_PIP_S = 23.0
ISSUE_PARALLEL_S = 3.0


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def notes(r: Results) -> list[str]:
    """Plain statements that help read the tables: reference figures, where the cold time goes, noise."""
    out: list[str] = []
    cold = med([c.lock.seconds + c.snapshot.seconds for c in r.cold]) if r.cold else None
    if r.pip and cold is not None:
        pip = med([p.seconds for p in r.pip])
        ratio = cold / ISSUE_PIP_S
        met = "met" if ratio <= TARGETS["cold_vs_pip"] else "**not met**"
        out.append(
            f"The issue measured `pip download` of these 4 targets at about {ISSUE_PIP_S:.0f} s; here it took "
            f"{pip:.0f} s, {med([p.cpu_seconds for p in r.pip]):.0f} s of it CPU (user + system time "
            f"of the pip processes). Against the issue's {ISSUE_PIP_S:.0f} s the cold run would be {ratio:.2f}x "
            f"(target {TARGETS['cold_vs_pip']}x: {met})."
        )
    if r.parallel and r.parallel_aionet:
        par, aio = med([p.seconds for p in r.parallel]), med([p.seconds for p in r.parallel_aionet])
        par_cpu = med([p.cpu_seconds for p in r.parallel])
        out.append(
            f"The plain parallel fetch is CPU-bound here ({par_cpu:.1f} s of CPU in {par:.1f} s): httpx's default "
            "transport decrypts one 16 KiB TLS record per read. mirrorctl's own client uses asyncio's TLS streams "
            f"under httpx (`mirrorctl/aionet.py`); the same plain fetch through it took {aio:.1f} s. The targets "
            "are measured against the plain fetch as the issue defines it (plain httpx); against the faster one "
            f"`lock --snapshot` would be {med([c.one_step.seconds for c in r.cold if c.one_step] or [0]) / aio:.2f}x."
        )
    if r.parallel and r.cold and len(r.parallel) == len(r.cold):
        # Each repetition's mirrorctl runs and its parallel fetch ran within the same minute or two: their
        # ratio is steadier than the ratio of medians when other work shares the machine.
        pairs = [(c.lock.seconds + c.snapshot.seconds) / p.seconds for c, p in zip(r.cold, r.parallel, strict=True)]
        ones = [c.one_step.seconds / p.seconds for c, p in zip(r.cold, r.parallel, strict=True) if c.one_step]
        text = "Paired by repetition (each mirrorctl run against the parallel fetch of the same repetition): "
        text += f"cold lock + snapshot {', '.join(f'{x:.2f}x' for x in pairs)} (median {med(pairs):.2f}x)"
        if ones:
            text += f"; `lock --snapshot` {', '.join(f'{x:.2f}x' for x in ones)} (median {med(ones):.2f}x)"
        out.append(text + ".")
    if r.parallel and cold is not None:
        par = med([p.seconds for p in r.parallel])
        allowed = par * TARGETS["cold_vs_parallel"]
        out.append(
            f"The plain parallel fetch took {par:.1f} s (the issue: under {ISSUE_PARALLEL_S:.0f} s), so the 1.5x "
            f"target allows {allowed:.1f} s for lock and snapshot together. Against the issue's "
            f"{ISSUE_PARALLEL_S:.0f} s the cold run would be {cold / ISSUE_PARALLEL_S:.2f}x."
        )
        if r.cold:
            lock = med([c.lock.seconds for c in r.cold])
            snap = med([c.snapshot.seconds for c in r.cold])
            snap_cpu = med([c.snapshot.cpu_seconds for c in r.cold])
            par_cpu = med([p.cpu_seconds for p in r.parallel])
            busy = snap_cpu / snap > 0.8 and par_cpu / par > 0.8
            out.append(
                f"The cold lock alone took {lock:.1f} s ({'more' if lock > allowed else 'less'} than those "
                f"{allowed:.1f} s). The cold snapshot took {snap:.1f} s and {snap_cpu:.1f} s of CPU for the "
                f"same bytes the plain fetch got in {par:.1f} s with {par_cpu:.1f} s of CPU"
                + (
                    ": both kept about one CPU busy the whole time, so here they are bound by CPU (TLS and "
                    "the Python event loop; for mirrorctl also sha256, fsync and its start-up), not by the network."
                    if busy
                    else "."
                )
            )
    if r.cold and r.startup:
        start = med(r.startup)
        warm = med([c.warm_snapshot.seconds for c in r.cold])
        out.append(
            f"The CLI's start-up (`mirrorctl --help`, {start:.2f} s) is paid by every command above; it is "
            f"{start / warm:.0%} of the warm snapshot's {warm:.2f} s."
        )
        lock_again = med([c.warm_lock.seconds for c in r.cold])
        lock_again_cpu = med([c.warm_lock.cpu_seconds for c in r.cold])
        out.append(
            f"`mirrorctl lock` run again, with the lock and store in place, took {lock_again:.1f} s "
            f"({lock_again_cpu:.1f} s of CPU)."
        )
    if r.parallel:
        plan = med([p.plan_seconds for p in r.parallel])
        out.append(
            f"Finding the URLs of the locked files from the project pages (the adapter's `fetch_plan` without "
            f"the lock's record of URLs) took {plan:.1f} s in-process; it is not part of the plain fetch's time."
        )
    out.append(
        f"The machine was shared with other work during the run (load average {r.load_start[0]:.1f} at the "
        f"start, on {_cpus()} CPUs), so wall times are noisy; the CPU column (user + system time of each "
        "process) is steadier."
    )
    return out


def render(r: Results, profile: dict[str, list[str]]) -> str:
    meas = table(MEASUREMENT_HEADER, measurement_rows(r))
    targ = table(("target", "measured", "ratio", "met"), target_rows(r))
    mach = table(("", ""), machine(r))
    reqs = ", ".join(f"`{x}`" for x in profile["requirements"])
    notes_text = "\n".join(f"- {n}" for n in notes(r))
    return f"""## PyPI: lock + snapshot beside `pip download` and a plain parallel fetch (issue 2)

Measured by `bench/pypi_snapshot.py` (issue 2, item 11), in one run on the machine below. The upstream's speed
varies from run to run, so each measurement except the 1 GiB one was repeated {r.reps} times and the median is
reported beside each run.

### What is measured

The profile `bench/profiles/bench.toml`:
{reqs};
for CPython {" and ".join(profile["python"])} on {" and ".join(f"`{p}`" for p in profile["platforms"])} (4 targets).
The upstream is the one `mirrorctl init` writes into a fresh `mirrorctl.toml` ({r.source}); all sides use it.

- **`pip download`** once per target, each into its own empty folder: `--only-binary=:all: --implementation cp
  --python-version X --platform ...` with every manylinux tag the target accepts (from
  `mirrorctl.ecosystems.pypi.targets`, so both sides accept the same wheels), `--no-cache-dir --isolated`,
  `--index-url` the configured upstream, with a clean environment and `PIP_CONFIG_FILE=/dev/null` (this
  machine's pip settings add find-links, an extra index and a constraint). The total of the 4 runs, and the
  files and bytes of the 4 folders (files shared by targets are counted once per target).
- **plain parallel fetch**: the unique files the mirrorctl lock names (URLs from the PyPI adapter's
  `fetch_plan`, looked up before the clock starts), {PARALLEL} concurrent streamed GETs with httpx into an
  empty folder: no hashing, no verification, no retries.
- **mirrorctl cold**: fresh work folder, empty store, no lock: `mirrorctl lock bench` then
  `mirrorctl snapshot bench`, each a subprocess of the CLI as users run it (start-up included).
- **mirrorctl warm**: `mirrorctl snapshot bench` again right after (it must download nothing), and
  `mirrorctl lock bench` again.
- **one command**: `mirrorctl lock --snapshot bench` in another fresh folder (downloads start while the
  lock resolves): the same cold lock and snapshot, as one command. The targets are checked for both ways.
- **peak memory**: a generated 1 GiB wheel (stored zip, streamed, never held in memory) served from a loopback
  fixture upstream (`tests/fixtures/upstream.py`), locked and snapshotted by mirrorctl subprocesses; the
  snapshot process's peak RSS from `os.wait4`, taken by a small launcher process (Linux carries the parent's
  peak RSS into an exec'd child's `ru_maxrss`, so measuring from the benchmark process itself, which serves
  the 1 GiB file, would overstate it; the launcher's own floor is about 12 MB).

Order in each repetition: mirrorctl, then the parallel fetch, then `pip download` (if the upstream caches, the
baselines profit, not mirrorctl).

### How to run it

```
.venv/bin/python bench/pypi_snapshot.py --out docs/benchmarks.md      # full run, 3 repetitions
.venv/bin/python bench/pypi_snapshot.py --repeat 1 --skip pip memory  # a quick check
```

It needs network access to the upstream pip uses, and about 1.5 GB of free space in the temp folder.

### Results

{meas}

### Targets

{targ}

### Reading the numbers

{notes_text}

### Machine

{mach}
"""
