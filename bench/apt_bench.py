"""The issue-5 benchmark (item 8): `mirrorctl lock` + `mirrorctl snapshot` of a developer toolchain (build-essential,
git, curl, python3-venv, openssh-client) for amd64 and arm64, beside the machine's apt doing `apt-get update` +
`apt-get install --download-only` of the same set for amd64 in a clean apt state (its own Dir::State and
Dir::Cache, an empty dpkg status), in one run on this machine. Also: the Packages parse time (the hot path), and
the amd64 set mirrorctl locked against what `apt-get install -s` says apt would install in that clean state.

Run it (about 40 s per repetition; each downloads about 560 MB for mirrorctl and 150 MB for apt)::

    .venv/bin/python bench/apt_bench.py                           # tables on stdout, 3 repetitions
    .venv/bin/python bench/apt_bench.py --out docs/benchmarks.md  # and the report's "apt" section
    .venv/bin/python bench/apt_bench.py --repeat 1                # a quick check

The upstream's speed varies from run to run, so mirrorctl and apt run as pairs, several times, alternating which
goes first; the report gives each step's median and every run, and judges the target on the medians.

The upstream and its keyring are what `mirrorctl init` writes into a temporary mirrorctl.toml (it takes both from
the machine's /etc/apt sources: URIs and Signed-By); apt gets a sources file with the same URI, suite, component
and Signed-By. No host is named here. mirrorctl runs as subprocesses of its CLI, as users run it; the parse
figures come from one more lock run in this process (indexes fetched again).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from machine import host_facts
from pypi_report import Run, code_version, table
from pypi_snapshot import dir_size, mirrorctl_argv, run_child
from sections import update_section

from mirrorctl.config import load_settings
from mirrorctl.ecosystems.apt import lock as apt_lock
from mirrorctl.ecosystems.apt.settings import upstream_keyring
from mirrorctl.ecosystems.apt.spec import AptSpec
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
NAME = "apt-bench"
SECTION = "apt"
PACKAGES = ("build-essential", "git", "curl", "python3-venv", "openssh-client")
ARCHES = ("amd64", "arm64")
# The figure issue 5 gives for this kind of machine: apt-get update + install --download-only, amd64, 229 packages.
ISSUE_APT_SECONDS = 3.5


def codename() -> str:
    found = re.search(r"^VERSION_CODENAME=(\S+)", Path("/etc/os-release").read_text(), re.M)
    if not found:
        raise SystemExit("no VERSION_CODENAME in /etc/os-release; pass --suite")
    return found.group(1).strip('"')


def profile_text(suite: str) -> str:
    # recommends = true: apt-get installs Recommends by default, and the comparison is with apt's default.
    pkgs = ", ".join(f'"{p}"' for p in PACKAGES)
    arches = ", ".join(f'"{a}"' for a in ARCHES)
    return f'[apt]\nsuite = "{suite}"\narchitectures = [{arches}]\npackages = [{pkgs}]\nrecommends = true\n'


# -- mirrorctl ----------------------------------------------------------------------------------------------


@dataclass
class MirrorctlRun:
    lock: Run
    snapshot: Run
    warm_snapshot: Run
    one_step: Run  # `lock --snapshot` in a fresh folder and store
    one_step_same_lock: bool
    artifacts: int
    per_arch: dict[str, set[tuple[str, str]]]
    snap_files: int
    snap_mb: float
    store_files: int
    store_bytes: int
    url: str
    keyring: str
    source: str
    suite: str


def make_workdir(parent: Path, suite: str, name: str = "mirrorctl") -> tuple[Path, str]:
    path = parent / name
    (path / "profiles").mkdir(parents=True)
    (path / "profiles" / f"{NAME}.toml").write_text(profile_text(suite))
    init = run_child([*mirrorctl_argv(), "init", "--out", str(path / "mirrorctl.toml")], cwd=path)
    found = re.search(r"^\s+apt: \S+\s+\(from (.*)\)\s*$", init.output, re.M)
    if not found:
        raise SystemExit(f"mirrorctl init found no apt upstream:\n{init.output}")
    return path, found.group(1)


def mirrorctl(work: Path, *args: str) -> Run:
    return run_child([*mirrorctl_argv(), "--config", str(work / "mirrorctl.toml"), *args], cwd=work)


def run_mirrorctl(base: Path, suite: str) -> MirrorctlRun:
    work, source = make_workdir(base, suite)
    settings = load_settings(work / "mirrorctl.toml", ecosystems=load_ecosystems())
    up = settings.upstream("apt")
    lock = mirrorctl(work, "lock", NAME)
    snap = mirrorctl(work, "snapshot", NAME)
    warm = mirrorctl(work, "snapshot", NAME)
    got = re.search(r"downloaded (\d+) files / ([\d.]+) MB", snap.output)
    if not got or "downloaded 0 files" not in warm.output:
        raise SystemExit(f"unexpected mirrorctl output:\n{snap.output[-1500:]}\n{warm.output[-1500:]}")
    doc = tomllib.loads((work / "profiles" / f"{NAME}.lock").read_text(encoding="utf-8"))
    per_arch: dict[str, set[tuple[str, str]]] = {a: set() for a in ARCHES}
    for art in doc.get("artifacts", []):
        for t in art["targets"]:
            per_arch[t].add((art["name"], art["version"]))
    files, size = dir_size(settings.store_path / "blobs")
    one_work, _ = make_workdir(base, suite, "mirrorctl-one-step")
    one = mirrorctl(one_work, "lock", "--snapshot", NAME)
    same = (one_work / "profiles" / f"{NAME}.lock").read_bytes() == (work / "profiles" / f"{NAME}.lock").read_bytes()
    shutil.rmtree(one_work)
    return MirrorctlRun(lock, snap, warm, one, same, len(doc.get("artifacts", [])), per_arch, int(got.group(1)),
                        float(got.group(2)), files, size, up.url, str(upstream_keyring(up)), source, suite)


async def _in_process_lock(work_cfg: Path, suite: str, recommends: bool) -> tuple[apt_lock.Timings, int]:
    settings = load_settings(work_cfg, ecosystems=load_ecosystems())
    spec = AptSpec(suite, ("main",), ARCHES, PACKAGES, recommends=recommends)
    rt = Runtime.for_settings(settings, environ=os.environ)
    async with rt.client() as client:
        ctx = rt.resolve_context("apt", client, NAME)
        arts = await apt_lock.resolve_spec(spec, ctx)
    return apt_lock.last_timings, len(arts)


# -- apt ----------------------------------------------------------------------------------------------------


@dataclass
class AptRun:
    update: Run
    download: Run
    simulate: Run
    installed: set[tuple[str, str]]
    debs: int
    deb_bytes: int


def apt_args(root: Path) -> list[str]:
    """A clean apt state: own lists, cache and an empty dpkg status; only the bench's sources file. The machine's
    apt.conf.d (languages, index targets) stays: that is how apt runs here."""
    return [
        "-o", f"Dir::State={root / 'state'}",
        "-o", f"Dir::State::status={root / 'state' / 'status'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={root / 'sources.list.d'}",
        "-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64",
        "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
    ]


def run_apt(base: Path, url: str, keyring: str, suite: str) -> AptRun:
    root = base / "apt"
    for sub in ("state/lists/partial", "cache/archives/partial", "sources.list.d"):
        (root / sub).mkdir(parents=True)
    (root / "state" / "status").write_text("")
    (root / "sources.list").write_text("")
    (root / "sources.list.d" / "bench.sources").write_text(
        f"Types: deb\nURIs: {url}\nSuites: {suite}\nComponents: main\nSigned-By: {keyring}\n"
    )
    args = apt_args(root)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
    update = run_child(["apt-get", *args, "update"], cwd=root, env=env)
    download = run_child(["apt-get", *args, "install", "--download-only", "-y", *PACKAGES], cwd=root, env=env)
    simulate = run_child(["apt-get", *args, "install", "-s", *PACKAGES], cwd=root, env=env)
    installed = {(m.group(1), m.group(2)) for m in re.finditer(r"^Inst (\S+) \((\S+) ", simulate.output, re.M)}
    installed = {(name.split(":")[0], version) for name, version in installed}
    debs = list((root / "cache" / "archives").glob("*.deb"))
    return AptRun(update, download, simulate, installed, len(debs), sum(p.stat().st_size for p in debs))


# -- report -------------------------------------------------------------------------------------------------


def secs(run: Run) -> str:
    return f"{run.seconds:.2f} s"


def cpu(run: Run) -> str:
    return f"{run.cpu_seconds:.2f} s"


def med(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def row(name: str, runs: list[Run], what: str, *, bold: bool = False) -> list[str]:
    value = f"{med(runs):.2f} s"
    return [name, f"**{value}**" if bold else value, ", ".join(f"{r.seconds:.2f}" for r in runs),
            f"{statistics.median(r.cpu_seconds for r in runs):.2f} s", what]


def summed(runs: list[tuple[Run, Run]]) -> list[Run]:
    return [Run(a.seconds + b.seconds, max(a.peak_rss_mb, b.peak_rss_mb), a.output + b.output,
                a.cpu_seconds + b.cpu_seconds) for a, b in runs]


def render(ms: list[MirrorctlRun], aps: list[AptRun], timings: apt_lock.Timings,
           norec: tuple[apt_lock.Timings, int], facts: list[tuple[str, str]]) -> str:
    m, a = ms[0], aps[0]
    ours = m.per_arch["amd64"]
    same = ours == a.installed
    only_ours = sorted(ours - a.installed)
    only_apt = sorted(a.installed - ours)
    two_steps = summed([(x.lock, x.snapshot) for x in ms])
    one_steps = [x.one_step for x in ms]
    apt_totals = summed([(x.update, x.download) for x in aps])
    two_step, one_step, apt_total = med(two_steps), med(one_steps), med(apt_totals)
    both = min(two_step, one_step)
    paired = [min(t.seconds, o.seconds) / p.seconds for t, o, p in zip(two_steps, one_steps, apt_totals, strict=True)]
    same_locks = all(x.one_step_same_lock for x in ms)
    out = [
        "## apt: toolchain for amd64 and arm64 (issue 5)",
        "",
        f"`{', '.join(PACKAGES)}` with Recommends (apt's default), suite `{m.suite}` main, from the upstream "
        f"`mirrorctl init` found in {m.source} (URI and Signed-By keyring). "
        "mirrorctl: `lock` then `snapshot` into an empty store, for amd64 **and** arm64; then `lock --snapshot` in "
        "another fresh folder. apt: `apt-get update` then "
        "`apt-get install --download-only` for amd64 only, in a clean state (own Dir::State and Dir::Cache, empty "
        "dpkg status, only the bench's sources file; the machine's apt.conf.d kept). "
        f"{len(ms)} repetition(s) of the pair in one run, alternating which side goes first; medians, then each "
        "run in order.",
        "",
        table(
            ["step", "median", "each run (s)", "CPU (median)", "what"],
            [
                row("mirrorctl lock (amd64 + arm64)", [x.lock for x in ms],
                    f"InRelease verified, 2 Packages.gz checked and read, {m.artifacts} artifacts"),
                row("mirrorctl snapshot", [x.snapshot for x in ms],
                    f"{m.snap_files} .debs, {m.snap_mb:.1f} MB, each checked against the index sha256"),
                row("mirrorctl lock + snapshot", two_steps, "both architectures", bold=True),
                row("mirrorctl snapshot again", [x.warm_snapshot for x in ms], "all present: no request"),
                row("mirrorctl lock --snapshot (fresh store)", one_steps,
                    "one command; " + ("same lock bytes" if same_locks else "**lock differs**"), bold=True),
                row("apt-get update", [x.update for x in aps], "amd64 lists"),
                row("apt-get install --download-only", [x.download for x in aps],
                    f"{a.debs} .debs, {a.deb_bytes / 1e6:.1f} MB"),
                row("apt-get update + download", apt_totals,
                    f"amd64 only (issue 5 measured about {ISSUE_APT_SECONDS} s here)", bold=True),
            ],
        ),
        "",
        "Target (both architectures in at most the time apt needs for one; mirrorctl's better of the two ways, "
        "medians): "
        + f"{'met' if both <= apt_total else 'not met'} in this run ({both:.2f} s against {apt_total:.2f} s, "
        f"{both / apt_total:.2f}x; paired by repetition: {', '.join(f'{r:.2f}x' for r in paired)}). "
        f"mirrorctl carries both architectures: {m.snap_files} .debs / {m.snap_mb:.0f} MB against apt's {a.debs} / "
        f"{a.deb_bytes / 1e6:.0f} MB, and checks and reads two full Packages indexes (the lock's CPU, "
        f"{statistics.median(x.lock.cpu_seconds for x in ms):.1f} s for {med([x.lock for x in ms]):.1f} s wall, "
        "is mostly that: decompression in threads "
        "and reading in one child process per architecture, both while the indexes download). With `--snapshot` "
        "an architecture's .debs start downloading as soon as it is resolved.",
        "",
        "### Parsing the Packages indexes (the hot path)",
        "",
        "One more `lock` in the benchmark's process (indexes fetched again), split by phase. Check = size and "
        "sha256 against the Release and gzip decompression, done while each index streams in (threads; summed over "
        "both indexes); read = the stanza fields resolution and the lock need (one regex over the text), in each "
        "architecture's child process as the pieces arrive, so mostly during the download; resolve = the closure, "
        "once every index checked out. The architectures run in parallel, so the total is less than the sum.",
        "",
        table(
            ["phase", "seconds"],
            [["InRelease + gpgv + indexes downloaded, checked and decompressed (wall)", f"{timings.fetch:.2f}"],
             ["check + decompress, both indexes (thread time, summed; includes waiting for the child to take the "
              "text)", f"{timings.check:.2f}"]]
            + [[f"read {arch} (in its child, overlapping the download)", f"{p:.2f}"] for arch, p, _ in timings.per_arch]
            + [[f"resolve {arch}", f"{r:.2f}"] for arch, _, r in timings.per_arch]
            + [["whole lock (wall)", f"{timings.total:.2f}"],
               [f"whole lock without Recommends (wall, {norec[1]} artifacts)", f"{norec[0].total:.2f}"]],
        ),
        "",
        "### Agreement with apt (amd64)",
        "",
        f"`apt-get install -s` in the same clean state installs {len(a.installed)} packages; mirrorctl locked "
        f"{len(ours)} for amd64 ({len(m.per_arch['arm64'])} for arm64). "
        + ("Same names and versions: **agree**." if same else
           f"**Differ**: only mirrorctl {only_ours[:10]}, only apt {only_apt[:10]}."),
        "",
        "### Machine",
        "",
        table(["", ""], [list(row) for row in facts]),
    ]
    return "\n".join(out) + "\n"


def cpu_sum(*runs: Run) -> str:
    return f"{sum(r.cpu_seconds for r in runs):.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the report's apt section into this Markdown file")
    parser.add_argument("--suite", default=None, help="default: this machine's VERSION_CODENAME")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the mirrorctl/apt pair (default 3)")
    opts = parser.parse_args(argv)
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    suite = opts.suite or codename()
    if shutil.which("apt-get") is None:
        raise SystemExit("apt-get is needed for the baseline")
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    load_start = os.getloadavg()
    commit = code_version()
    with tempfile.TemporaryDirectory(prefix="apt-bench-") as tmp:
        ms: list[MirrorctlRun] = []
        aps: list[AptRun] = []
        for i in range(opts.repeat):
            base = Path(tmp) / f"run{i + 1}"
            base.mkdir()
            if i % 2 == 0:  # alternate which side goes first: an upstream cache warmed by one helps the other
                ms.append(run_mirrorctl(base, suite))
                aps.append(run_apt(base, ms[-1].url, ms[-1].keyring, suite))
            else:  # run 1 went mirrorctl first: its init found the upstream apt uses too
                aps.append(run_apt(base, ms[0].url, ms[0].keyring, suite))
                ms.append(run_mirrorctl(base, suite))
            two = ms[-1].lock.seconds + ms[-1].snapshot.seconds
            apt = aps[-1].update.seconds + aps[-1].download.seconds
            print(f"run {i + 1}/{opts.repeat}: mirrorctl lock + snapshot {two:.2f} s, lock --snapshot "
                  f"{ms[-1].one_step.seconds:.2f} s; apt update + download {apt:.2f} s", file=sys.stderr, flush=True)
            if i > 0:  # the first run's folder stays for the in-process lock below; the others take 700 MB each
                shutil.rmtree(base)
        cfg = Path(tmp) / "run1" / "mirrorctl" / "mirrorctl.toml"
        timings, _ = asyncio.run(_in_process_lock(cfg, suite, True))
        norec = asyncio.run(_in_process_lock(cfg, suite, False))
    apt_version = subprocess.run(["apt-get", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    facts = [
        *host_facts(),
        ("apt (baseline)", apt_version),
        ("Python (mirrorctl)", f"{platform.python_implementation()} {platform.python_version()}"),
        ("mirrorctl commit at start", commit),
        ("load average (1/5/15 min) at start", " / ".join(f"{x:.1f}" for x in load_start)),
        ("load average at end", " / ".join(f"{x:.1f}" for x in os.getloadavg())),
        ("date (UTC)", f"{started} to {dt.datetime.now(dt.UTC).strftime('%H:%M')}"),
    ]
    text = render(ms, aps, timings, norec, facts)
    print(text)
    if opts.out:
        update_section(opts.out, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
