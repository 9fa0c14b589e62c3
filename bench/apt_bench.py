"""The issue-5 benchmark (item 8): `mirrorctl lock` + `mirrorctl snapshot` of a developer toolchain (build-essential,
git, curl, python3-venv, openssh-client) for amd64 and arm64, beside the machine's apt doing `apt-get update` +
`apt-get install --download-only` of the same set for amd64 in a clean apt state (its own Dir::State and
Dir::Cache, an empty dpkg status), in one run on this machine. Also: the Packages parse time (the hot path), and
the amd64 set mirrorctl locked against what `apt-get install -s` says apt would install in that clean state.

Run it (a minute or so; it downloads about 300 MB for mirrorctl and 150 MB for apt)::

    .venv/bin/python bench/apt_bench.py                           # tables on stdout
    .venv/bin/python bench/apt_bench.py --out docs/benchmarks.md  # and the report's "apt" section

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
from mirrorctl.ecosystems.apt.spec import AptSpec
from mirrorctl.ecosystems.base import ResolveContext
from mirrorctl.net import build_client
from mirrorctl.progress import SILENT

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
    settings = load_settings(work / "mirrorctl.toml")
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
                        float(got.group(2)), files, size, up.url, str(up.keyring), source, suite)


async def _in_process_lock(work_cfg: Path, suite: str, recommends: bool) -> tuple[apt_lock.Timings, int]:
    settings = load_settings(work_cfg)
    spec = AptSpec(suite, ("main",), ARCHES, PACKAGES, recommends=recommends)
    async with build_client(settings, os.environ) as client:
        ctx = ResolveContext(client, settings.upstream("apt"), SILENT, NAME, fetch=settings.fetch)
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


def render(m: MirrorctlRun, a: AptRun, timings: apt_lock.Timings, norec: tuple[apt_lock.Timings, int],
           facts: list[tuple[str, str]]) -> str:
    ours = m.per_arch["amd64"]
    same = ours == a.installed
    only_ours = sorted(ours - a.installed)
    only_apt = sorted(a.installed - ours)
    two_step = m.lock.seconds + m.snapshot.seconds
    both = min(two_step, m.one_step.seconds)
    apt_total = a.update.seconds + a.download.seconds
    out = [
        "## apt: toolchain for amd64 and arm64 (issue 5)",
        "",
        f"`{', '.join(PACKAGES)}` with Recommends (apt's default), suite `{m.suite}` main, from the upstream "
        f"`mirrorctl init` found in {m.source} (URI and Signed-By keyring). "
        "mirrorctl: `lock` then `snapshot` into an empty store, for amd64 **and** arm64. apt: `apt-get update` then "
        "`apt-get install --download-only` for amd64 only, in a clean state (own Dir::State and Dir::Cache, empty "
        "dpkg status, only the bench's sources file; the machine's apt.conf.d kept). Same run, one after the other.",
        "",
        table(
            ["step", "wall", "CPU (user+sys)", "what"],
            [
                ["mirrorctl lock (amd64 + arm64)", secs(m.lock), cpu(m.lock),
                 f"InRelease verified, 2 Packages.gz checked and read, {m.artifacts} artifacts"],
                ["mirrorctl snapshot", secs(m.snapshot), cpu(m.snapshot),
                 f"{m.snap_files} .debs, {m.snap_mb:.1f} MB, each checked against the index sha256"],
                ["mirrorctl lock + snapshot", f"**{two_step:.2f} s**", cpu_sum(m.lock, m.snapshot),
                 "both architectures"],
                ["mirrorctl snapshot again", secs(m.warm_snapshot), cpu(m.warm_snapshot), "all present: no request"],
                ["mirrorctl lock --snapshot (fresh store)", secs(m.one_step), cpu(m.one_step),
                 "one command; " + ("same lock bytes" if m.one_step_same_lock else "**lock differs**")],
                ["apt-get update", secs(a.update), cpu(a.update), "amd64 lists"],
                ["apt-get install --download-only", secs(a.download), cpu(a.download),
                 f"{a.debs} .debs, {a.deb_bytes / 1e6:.1f} MB"],
                ["apt-get update + download", f"**{apt_total:.2f} s**", cpu_sum(a.update, a.download),
                 f"amd64 only (issue 5 measured about {ISSUE_APT_SECONDS} s here)"],
            ],
        ),
        "",
        "Target (both architectures in at most the time apt needs for one; mirrorctl's better of the two ways): "
        + f"{'met' if both <= apt_total else 'not met'} in this run ({both:.2f} s against {apt_total:.2f} s). "
        f"mirrorctl carries both architectures: {m.snap_files} .debs / {m.snap_mb:.0f} MB against apt's {a.debs} / "
        f"{a.deb_bytes / 1e6:.0f} MB, and checks and reads two full Packages indexes (the lock's CPU, "
        f"{m.lock.cpu_seconds:.1f} s for {m.lock.seconds:.1f} s wall, is mostly that: decompression in threads "
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
    opts = parser.parse_args(argv)
    suite = opts.suite or codename()
    if shutil.which("apt-get") is None:
        raise SystemExit("apt-get is needed for the baseline")
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    load_start = os.getloadavg()
    commit = code_version()
    with tempfile.TemporaryDirectory(prefix="apt-bench-") as tmp:
        base = Path(tmp)
        m = run_mirrorctl(base, suite)
        a = run_apt(base, m.url, m.keyring, suite)
        cfg = base / "mirrorctl" / "mirrorctl.toml"
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
    text = render(m, a, timings, norec, facts)
    print(text)
    if opts.out:
        update_section(opts.out, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
