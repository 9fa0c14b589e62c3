"""The issue-4 benchmark (item 9): `mirrorctl lock` + `mirrorctl snapshot` of bench/profiles/npm-bench.toml
for linux-x64 and linux-arm64, beside the machine's npm making a package-lock.json of the same packages
(`npm install --package-lock-only`) and fetching that lock's tarballs into an empty cache (`npm ci`), for
linux-x64 alone, in one run on this machine, with repetitions and medians.

Run it (a minute or two; it downloads about 150 MB per repetition from the upstream npm uses here)::

    .venv/bin/python bench/npm_bench.py                           # tables on stdout
    .venv/bin/python bench/npm_bench.py --out docs/benchmarks.md  # and the report's "npm" section
    .venv/bin/python bench/npm_bench.py --repeat 1                # a quick check

The upstream is what `mirrorctl init` writes into a temporary mirrorctl.toml (it takes it from
`npm config get registry`); npm is pointed at the same URL. No host is named here. mirrorctl runs as
subprocesses of its CLI, as users run it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

from npm_report import (
    BaselineRun,
    ColdRun,
    Results,
    closure_check,
    npm_lock_packages,
    render,
    summary_lines,
)
from pypi_report import Run, code_version
from pypi_snapshot import dir_size, mirrorctl_argv, run_child

from mirrorctl.config import load_settings
from mirrorctl.ecosystems.base import load_ecosystems

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "bench" / "profiles" / "npm-bench.toml"
NAME = "npm-bench"
SECTION = "npm"


# -- mirrorctl ----------------------------------------------------------------------------------------------


def make_workdir(parent: Path, name: str) -> tuple[Path, str, str]:
    """A fresh folder with the mirrorctl.toml `mirrorctl init` writes and the profile: no store, no lock.

    Returns the folder, the npm upstream URL (kept in memory only) and where init found it."""
    path = parent / name
    if path.exists():
        shutil.rmtree(path)
    (path / "profiles").mkdir(parents=True)
    shutil.copy(PROFILE, path / "profiles" / f"{NAME}.toml")
    init = run_child([*mirrorctl_argv(), "init", "--out", str(path / "mirrorctl.toml")], cwd=path)
    found = re.search(r"^\s+npm: \S+\s+\(from (.*)\)\s*$", init.output, re.M)
    if not found:
        raise SystemExit(f"mirrorctl init found no npm upstream:\n{init.output}")
    settings = load_settings(path / "mirrorctl.toml", ecosystems=load_ecosystems())
    return path, settings.upstream("npm").url, found.group(1)


def mirrorctl(work: Path, *args: str) -> Run:
    return run_child([*mirrorctl_argv(), "--config", str(work / "mirrorctl.toml"), *args], cwd=work)


def store_size(work: Path) -> tuple[int, int]:
    settings = load_settings(work / "mirrorctl.toml", ecosystems=load_ecosystems())
    blobs = settings.store_path / "blobs"
    return dir_size(blobs) if blobs.exists() else (0, 0)


def mirrorctl_cold(base: Path, rep: int) -> ColdRun:
    work, _, source = make_workdir(base, f"mirrorctl-{rep}")
    lock = mirrorctl(work, "lock", NAME)
    snap = mirrorctl(work, "snapshot", NAME)
    locked = re.search(rf"{NAME}: (\d+) artifacts, (\d+) targets, ([\d.]+) MB", lock.output)
    got = re.search(r"downloaded (\d+) files / ([\d.]+) MB.*?(\d+) already present", snap.output)
    if not locked or not got:
        raise SystemExit(f"unexpected mirrorctl output:\n{lock.output[-1500:]}\n{snap.output[-1500:]}")
    lock_path = work / "profiles" / f"{NAME}.lock"
    lock_text = lock_path.read_text(encoding="utf-8")
    lock_doc = tomllib.loads(lock_text)
    files, size = store_size(work)
    warm = mirrorctl(work, "snapshot", NAME)
    if not re.search(r"downloaded 0 files", warm.output):
        raise SystemExit(f"the warm snapshot downloaded something:\n{warm.output[-2000:]}")
    shutil.rmtree(work)

    one_work, _, _ = make_workdir(base, f"mirrorctl-{rep}-one-step")
    one = mirrorctl(one_work, "lock", "--snapshot", NAME)
    one_files, one_size = store_size(one_work)
    one_lock = (one_work / "profiles" / f"{NAME}.lock").read_text(encoding="utf-8")
    if not re.search(rf"{NAME}: (\d+) artifacts", one.output):
        raise SystemExit(f"unexpected `lock --snapshot` output:\n{one.output[-1500:]}")
    shutil.rmtree(one_work)
    return ColdRun(
        lock=lock,
        snapshot=snap,
        warm_snapshot=warm,
        one_step=one,
        artifacts=int(locked.group(1)),
        lock_mb=float(locked.group(3)),
        snap_files=int(got.group(1)),
        snap_mb=float(got.group(2)),
        store_files=files,
        store_bytes=size,
        one_step_store_files=one_files,
        one_step_store_bytes=one_size,
        lock_doc=lock_doc,
        source=source,
        one_step_same_lock=one_lock == lock_text,
    )


# -- the npm baseline ---------------------------------------------------------------------------------------


def npm_env(home: Path, cache: Path, registry: str) -> dict[str, str]:
    """A clean npm environment: a fresh HOME (no user .npmrc: this machine's sets
    omit-lockfile-registry-resolved, which leaves the tarball URLs out of the lock), the configured upstream
    as the registry, the given cache folder. The global npmrc (the machine's CA file) is kept: it is trust,
    not a package source."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "npm_config_cache": str(cache),
        "npm_config_registry": registry,
        "npm_config_update_notifier": "false",
        "npm_config_loglevel": "warn",
    }
    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def npm_baseline(base: Path, rep: int, registry: str, packages: list[str]) -> BaselineRun:
    root = base / f"npm-{rep}"
    if root.exists():
        shutil.rmtree(root)
    project = root / "project"
    home = root / "home"
    project.mkdir(parents=True)
    home.mkdir()
    manifest = {
        "name": "npm-bench",
        "version": "1.0.0",
        "private": True,
        "dependencies": dict.fromkeys(packages, "latest"),
    }
    (project / "package.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    lock_only = run_child(
        ["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"],
        cwd=project,
        env=npm_env(home, root / "cache-lock", registry),
    )
    lock_path = project / "package-lock.json"
    if not lock_path.exists():
        raise SystemExit(f"npm wrote no package-lock.json:\n{lock_only.output[-2000:]}")
    lock_doc = json.loads(lock_path.read_text(encoding="utf-8"))
    ci_cache = root / "cache-ci"
    ci = run_child(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=project,
        env=npm_env(home, ci_cache, registry),
    )
    content = ci_cache / "_cacache" / "content-v2"
    cache_files, cache_bytes = dir_size(content) if content.exists() else (0, 0)
    installed = installed_packages(project / "node_modules")
    shutil.rmtree(root)
    return BaselineRun(
        lock_only=lock_only,
        ci=ci,
        lock_packages=npm_lock_packages(lock_doc),
        cache_files=cache_files,
        cache_bytes=cache_bytes,
        installed=installed,
    )


def installed_packages(node_modules: Path) -> list[tuple[str, str]]:
    """(name, version) of each package npm ci put on disk: node_modules/<name>, node_modules/@scope/<name>,
    and nested node_modules folders, read from each package's own package.json."""
    out: list[tuple[str, str]] = []
    if not node_modules.is_dir():
        return out
    for entry in sorted(node_modules.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        folders = sorted(p for p in entry.iterdir() if p.is_dir()) if entry.name.startswith("@") else [entry]
        for folder in folders:
            manifest = folder / "package.json"
            if manifest.is_file():
                meta = json.loads(manifest.read_text(encoding="utf-8"))
                out.append((str(meta.get("name", folder.name)), str(meta.get("version", ""))))
            out += installed_packages(folder / "node_modules")
    return out


def tool_version(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


# -- main ---------------------------------------------------------------------------------------------------


def write_report(path: Path, markdown: str) -> None:
    from sections import update_section  # bench/sections.py, shared by the benchmarks

    if not path.exists() or not path.read_text(encoding="utf-8").strip():
        path.write_text("# Benchmarks\n\nEach section is written by one script in bench/.\n", encoding="utf-8")
    update_section(path, SECTION, markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the report's npm section here, e.g. docs/benchmarks.md")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--workdir", type=Path, help="where to work (default: a new temp folder, removed after)")
    args = parser.parse_args(argv)

    profile = tomllib.loads(PROFILE.read_text(encoding="utf-8"))["npm"]
    base = args.workdir or Path(tempfile.mkdtemp(prefix="mirrorctl-npm-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    results = Results(
        reps=args.repeat,
        packages=list(profile["packages"]),
        platforms=list(profile["platforms"]),
        load_start=os.getloadavg(),
        code_version=code_version(),
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        node=tool_version("node", "--version"),
        npm=tool_version("npm", "--version"),
    )
    try:
        _, registry, _ = make_workdir(base, "probe")
        shutil.rmtree(base / "probe")
        for rep in range(1, args.repeat + 1):
            # mirrorctl first: if the upstream caches what was just asked, the baseline profits, not mirrorctl.
            cold = mirrorctl_cold(base, rep)
            results.cold.append(cold)
            print(
                f"[{rep}] mirrorctl: lock {cold.lock.seconds:.2f} s + snapshot {cold.snapshot.seconds:.2f} s "
                f"({cold.artifacts} artifacts, {cold.lock_mb:.1f} MB; snapshot downloaded {cold.snap_files}); "
                f"lock --snapshot {cold.one_step.seconds:.2f} s",
                flush=True,
            )
            npm = npm_baseline(base, rep, registry, results.packages)
            results.baseline.append(npm)
            print(
                f"[{rep}] npm: install --package-lock-only {npm.lock_only.seconds:.2f} s "
                f"({len(npm.lock_packages)} packages) + ci {npm.ci.seconds:.2f} s "
                f"({npm.cache_files} cached files, {npm.cache_bytes / 1e6:.1f} MB)",
                flush=True,
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    results.load_end = os.getloadavg()
    results.ended = dt.datetime.now(dt.UTC).strftime("%H:%M")
    results.closure = closure_check(results)

    print()
    for line in summary_lines(results):
        print(line)
    if args.out:
        write_report(args.out, render(results))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
