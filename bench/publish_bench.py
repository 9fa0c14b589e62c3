"""The issue-3 benchmark: `mirrorctl publish` of the bench profile's files into the real Pulp 3 and devpi of
scripts/services.sh, beside each server's own client, in one run on this machine.

The content is made by the real flow in a temporary folder: outside, `mirrorctl init` (upstream from pip's own
settings), bench/profiles/bench.toml, `lock`, `snapshot`, `key generate`, `bundle export`; inside, a store that
trusts the key and `mirrorctl import`. Then, side by side:

* Pulp: `mirrorctl publish --to pulp` into a fresh repository (cold, then again with nothing new), and the
  baseline, a loop of `pulp python content upload` (pulp-cli), one call per file, into another fresh repository;
* devpi: `devpi upload --from-dir` (devpi-client) into a fresh index (bases= volatile=False), and
  `mirrorctl publish --to devpi` into another fresh user/index (cold, then again with nothing new).

Run it (about 6 minutes; the services must run: `bash scripts/services.sh start`)::

    .venv/bin/python bench/publish_bench.py                                 # table on stdout
    .venv/bin/python bench/publish_bench.py --out docs/benchmarks.md        # and the "publish" section
    .venv/bin/python bench/publish_bench.py --skip pulp-loop                # quick: without the ~4 min loop

pulp-cli is not a mirrorctl dependency; it lives in its own venv (default .services/bench-venv)::

    python3 -m venv .services/bench-venv
    env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \\
        .services/bench-venv/bin/python -m pip install pulp-cli==0.41.1

Everything the run creates in Pulp and devpi carries a random suffix and is deleted afterwards (--keep keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from publish_report import Measured, Report, render  # noqa: E402
from sections import update_section  # noqa: E402

from mirrorctl.config import TargetSettings  # noqa: E402
from mirrorctl.inside.store import Store  # noqa: E402
from mirrorctl.lockfile import Artifact  # noqa: E402
from mirrorctl.targets.pulp.api import PulpApi  # noqa: E402

PROFILE = ROOT / "bench" / "profiles" / "bench.toml"
PREFIX = "mctl-bench-"  # every Pulp repository and devpi user this script makes starts with it
STEPS = ("pulp", "pulp-loop", "devpi", "devpi-upload")
PULP_PACKAGES = "content/python/packages/"


# -- running things ------------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    client_cpu: float  # user + system time of the command and its children
    server_cpu: float  # user + system time the server's processes spent meanwhile
    output: str


def server_pids(services: Path, names: Sequence[str]) -> list[int]:
    pids = []
    for name in names:
        pidfile = services / "run" / f"{name}.pid"
        if pidfile.exists():
            pids.append(int(pidfile.read_text().split()[0]))
    return pids


def server_cpu(pids: Sequence[int]) -> float:
    """CPU seconds so far of the server processes and all their children (gunicorn workers)."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


class Runner:
    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> Run:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        srv = server_cpu(self.pids)
        started = time.perf_counter()
        done = subprocess.run(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"failed ({done.returncode}): {shlex.join(argv)}\n{(done.stdout + done.stderr)[-4000:]}")
        cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        return Run(seconds, cpu, server_cpu(self.pids) - srv, done.stdout + done.stderr)

    def loop(self, argvs: Sequence[Sequence[str]], *, cwd: Path, env: Mapping[str, str]) -> Run:
        """Several commands one after the other, timed as one."""
        runs = [self.run(a, cwd=cwd, env=env) for a in argvs]
        return Run(
            sum(r.seconds for r in runs),
            sum(r.client_cpu for r in runs),
            sum(r.server_cpu for r in runs),
            "".join(r.output for r in runs[-3:]),
        )


def result_line(output: str) -> str:
    """The row `mirrorctl publish` prints per ecosystem in its results table (`pypi  NAME  changed  ...`),
    without the progress."""
    found = re.search(r"^pypi\s.*$", output, re.M)
    return found.group(0) if found else output.strip().splitlines()[-1] if output.strip() else ""


def mirrorctl_argv() -> list[str]:
    exe = Path(sys.executable).parent / "mirrorctl"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from mirrorctl.cli.app import main; main()"]


def read_env_file(path: Path) -> dict[str, str]:
    """`.services/env`: lines `export NAME=value` with shell quoting."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: start the services first (bash scripts/services.sh start)")
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """No PIP_* settings of this machine, a private HOME (no pulp-cli or devpi-client config of the user)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "DEVPI_", "PULP_"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache")})
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra or {})
    return env


# -- the content: the real flow ------------------------------------------------------------------------------


@dataclass
class Content:
    inside: Path  # folder with mirrorctl.toml and the imported store
    files: Path  # the same artifacts as plain files (for the baselines)
    artifacts: list[Artifact]
    source: str  # where `mirrorctl init` found the upstream (a description, not the host)
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)


def make_content(base: Path, runner: Runner) -> Content:
    outside, inside = base / "outside", base / "inside"
    (outside / "profiles").mkdir(parents=True)
    (inside / "keys").mkdir(parents=True)
    (outside / "keys").mkdir()
    shutil.copyfile(PROFILE, outside / "profiles" / "bench.toml")
    m = mirrorctl_argv()
    steps: dict[str, float] = {}

    def step(name: str, cwd: Path, *args: str) -> Run:
        r = runner.run([*m, *args], cwd=cwd)
        steps[name] = r.seconds
        return r

    init = step("init", outside, "init")
    found = re.search(r"^\s+pypi: \S+\s+\(from (.*)\)\s*$", init.output, re.M)
    if not found:
        raise SystemExit(f"mirrorctl init found no PyPI upstream:\n{init.output}")
    step("key generate", outside, "key", "generate", "--out", "keys/mirrorctl.key")
    step("lock", outside, "lock", "bench")
    step("snapshot", outside, "snapshot", "bench")
    bundle = base / "bench.bundle"
    step("bundle export", outside, "bundle", "export", "--out", str(bundle), "bench")
    shutil.copyfile(outside / "keys" / "mirrorctl.key.pub", inside / "keys" / "trusted.pub")
    (inside / "mirrorctl.toml").write_text(
        '[store]\npath = "store"\n\n[trust]\nkeys = ["keys/trusted.pub"]\n', encoding="utf-8"
    )
    step("import", inside, "import", str(bundle))
    bundle.unlink()
    shutil.rmtree(outside)  # the outside store: the inside one holds the same bytes

    store = Store(inside / "store")
    view = store.current_view()
    if view is None:
        raise SystemExit("the import left no current view")
    artifacts = sorted(view.for_ecosystem("pypi"), key=lambda a: a.filename)
    files = base / "files"
    files.mkdir()
    for a in artifacts:
        shutil.copyfile(store.blob_path(a.sha256), files / a.filename)
    return Content(inside, files, artifacts, found.group(1), steps)


def add_targets(content: Content, services: Mapping[str, str], pulp_repo: str, devpi_index: str) -> None:
    """The inside mirrorctl.toml gains [targets.pulp] and [targets.devpi] with this run's fresh names."""
    text = (content.inside / "mirrorctl.toml").read_text(encoding="utf-8").split("\n[targets.")[0].rstrip("\n")
    text += (
        f'\n\n[targets.pulp]\nkind = "pulp"\nurl = "{services["PULP_URL"]}"\n'
        f'content-url = "{services["PULP_CONTENT_URL"]}"\n'
        'username-env = "BENCH_PULP_USER"\npassword-env = "BENCH_PULP_PASSWORD"\n'
        f'repositories = {{ pypi = "{pulp_repo}" }}\n'
        f'\n[targets.devpi]\nkind = "devpi"\nurl = "{services["DEVPI_URL"]}"\n'
        'username-env = "BENCH_DEVPI_USER"\npassword-env = "BENCH_DEVPI_PASSWORD"\n'
        f'repositories = {{ pypi = "{devpi_index}" }}\n'
    )
    (content.inside / "mirrorctl.toml").write_text(text, encoding="utf-8")


# -- Pulp ------------------------------------------------------------------------------------------------------


class PulpAdmin:
    """Set-up, checks and clean-up around the measurements (never timed), through mirrorctl's own Pulp client."""

    def __init__(self, services: Mapping[str, str]) -> None:
        self.settings = TargetSettings(
            "bench", "pulp", services["PULP_URL"], username_env="U", password_env="P", content_url=None
        )
        self.environ = {"U": services["PULP_USERNAME"], "P": services["PULP_PASSWORD"]}

    async def _with_api(self, work: Any) -> Any:
        async with httpx.AsyncClient(timeout=120) as client:
            return await work(PulpApi(self.settings, client, self.environ))

    def run(self, work: Any) -> Any:
        return asyncio.run(self._with_api(work))

    @staticmethod
    async def holding(api: PulpApi, artifacts: Sequence[Artifact]) -> dict[str, str]:
        """sha256 -> href of the python content units Pulp already holds for these files."""
        found: dict[str, str] = {}
        shas = [a.sha256 for a in artifacts]
        for i in range(0, len(shas), 40):  # gunicorn's request line limit
            params = {"sha256__in": ",".join(shas[i : i + 40]), "fields": "pulp_href,sha256"}
            async for unit in api.paged(PULP_PACKAGES, what="looking up bench content", params=params):
                found[unit["sha256"]] = unit["pulp_href"]
        return found

    def clean(self, artifacts: Sequence[Artifact], own: Sequence[str] = ()) -> tuple[int, int]:
        """Delete this script's repositories and distributions (``own``, and leftovers of earlier runs with the
        prefix), then remove the bench files' content units if no repository holds them any more. Returns how
        many of the files Pulp held before and after."""

        async def go(api: PulpApi) -> tuple[int, int]:
            for kind in ("distributions/python/pypi/", "repositories/python/python/"):
                async for item in api.paged(kind, what="listing", params={"name__startswith": PREFIX}):
                    await api.request("DELETE", item["pulp_href"], what=f"deleting {item['name']}")
                for name in own:
                    async for item in api.paged(kind, what="listing", params={"name": name}):
                        await api.request("DELETE", item["pulp_href"], what=f"deleting {name}")
            before = await self.holding(api, artifacts)
            if before:
                # Only the bench's units, and only orphans (a unit some other repository holds stays). Protection
                # time 1 minute: others' uploads that are not yet in a repository version are left alone.
                body = {"content_hrefs": sorted(before.values()), "orphan_protection_time": 1}
                await api.run_task("POST", "orphans/cleanup/", body, what="removing orphaned bench content")
            after = await self.holding(api, artifacts)
            return len(before), len(after)

        result: tuple[int, int] = self.run(go)
        return result

    def create_repository(self, name: str) -> None:
        async def go(api: PulpApi) -> None:
            await api.post_json("repositories/python/python/", {"name": name}, what=f"creating {name}")

        self.run(go)

    def latest_files(self, name: str) -> tuple[int, set[str]]:
        """The latest version number of repository ``name`` and the sha256 of the files it holds."""

        async def go(api: PulpApi) -> tuple[int, set[str]]:
            repo = await api.find_one("repositories/python/python/", what="reading repository", name=name)
            if repo is None:
                return -1, set()
            href = str(repo["latest_version_href"])
            shas = set()
            params = {"repository_version": href, "fields": "sha256"}
            async for unit in api.paged(PULP_PACKAGES, what="reading content", params=params):
                shas.add(unit["sha256"])
            return int(href.rstrip("/").rsplit("/", 1)[1]), shas

        result: tuple[int, set[str]] = self.run(go)
        return result

    def status(self) -> tuple[dict[str, str], int]:
        """Component versions and the number of online workers, as Pulp's status API reports them."""

        async def go(api: PulpApi) -> tuple[dict[str, str], int]:
            status = await api.get_json("status/", what="reading status", auth=False)
            versions = {v["component"]: v["version"] for v in status.get("versions", [])}
            return versions, len(status.get("online_workers", []))

        result: tuple[dict[str, str], int] = self.run(go)
        return result


def pulp_cli_base(pulp: Path, services: Mapping[str, str]) -> list[str]:
    return [
        str(pulp),
        "--base-url",
        services["PULP_URL"],
        "--api-root",
        services.get("PULP_API_ROOT", "/pulp/"),
        "--username",
        services["PULP_USERNAME"],
        "--password",
        services["PULP_PASSWORD"],
    ]


# -- devpi -----------------------------------------------------------------------------------------------------


def devpi_listing(url: str, index: str) -> set[str]:
    """sha256 of every file the index lists (PEP 691 JSON of its simple pages)."""
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    shas: set[str] = set()
    with httpx.Client(timeout=60) as client:
        root = client.get(f"{url}/{index}/+simple/", headers=accept)
        root.raise_for_status()
        for project in root.json().get("projects", []):
            page = client.get(f"{url}/{index}/+simple/{project['name']}/", headers=accept)
            page.raise_for_status()
            shas.update(f["hashes"].get("sha256", "") for f in page.json().get("files", []))
    return shas


def devpi_delete_user(devpi: Path, url: str, user: str, password: str, home: Path) -> bool:
    """Remove a bench user and its index. devpi refuses to delete a non-volatile index (or a user holding one),
    so the index is made volatile first. Returns whether the user is gone."""
    env = clean_env(home)
    base = [str(devpi), "--clientdir", str(home / f"devpi-cleanup-{user}")]
    steps = (
        ["use", url],
        ["login", user, "--password", password],
        ["index", f"{user}/bench", "volatile=True"],
        ["-y", "index", "--delete", f"{user}/bench"],
        ["user", "--delete", user],
    )
    for args in steps:  # "yes": devpi asks before deleting, even with -y for users
        subprocess.run([*base, *args], env=env, input="yes\n", capture_output=True, text=True, check=False)
    with httpx.Client(timeout=30) as client:
        return client.get(f"{url}/{user}", headers={"Accept": "application/json"}).status_code == 404


def devpi_upload(
    devpi: Path,
    runner: Runner,
    url: str,
    user: str,
    password: str,
    content: Content,
    home: Path,
    wanted: set[str],
) -> tuple[Run, float]:
    """The devpi baseline: a fresh user and index (not timed), then `devpi upload --from-dir` (timed)."""
    env = clean_env(home)
    d = [str(devpi), "--clientdir", str(home / f"devpi-client-{user}")]
    for step in (
        ["use", url],
        ["user", "-c", user, f"password={password}"],
        ["login", user, "--password", password],
        ["index", "-c", f"{user}/bench", "bases=", "volatile=False"],
        ["use", f"{user}/bench"],
    ):
        runner.run([*d, *step], cwd=home, env=env)
    load = os.getloadavg()[0]
    upload = runner.run([*d, "upload", "--from-dir", str(content.files)], cwd=home, env=env)
    shas = devpi_listing(url, f"{user}/bench")
    if shas != wanted:
        raise SystemExit(f"devpi upload: the index lists {len(shas & wanted)} of {len(wanted)} files")
    return upload, load


def median_of(group: str, label: str, runs: Sequence[tuple[Run, float, str]]) -> Measured:
    """The median run (by seconds) of several, with every run's seconds in the note."""
    ordered = sorted(runs, key=lambda r: r[0].seconds)
    run, load, note = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        each = ", ".join(f"{r.seconds:.2f}" for r, _, _ in runs)
        note = f"median of {len(runs)} (each: {each} s)" + (f"; {note}" if note else "")
    return Measured(group, label, run, load, note)


# -- main ------------------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    return {
        "CPU": f"{os.cpu_count()} x {cpu}",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "nproc": str(len(os.sched_getaffinity(0))),
        "OS": platform.platform(),
        "Python (mirrorctl)": platform.python_version(),
    }


def code_version() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    rev = done.stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "mirrorctl"], capture_output=True)
    return rev + (" (mirrorctl/ modified)" if dirty.stdout.strip() else "")


def tool_version(argv: Sequence[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, env=dict(env), check=False)
    found = re.search(r"(\d+\.\d+(?:\.\d+)?)", done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help='write the "publish" section of this Markdown file')
    parser.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="measurements to leave out")
    parser.add_argument("--services-dir", type=Path, default=ROOT / ".services", help="scripts/services.sh's dir")
    parser.add_argument(
        "--pulp-cli", type=Path, default=ROOT / ".services" / "bench-venv" / "bin" / "pulp", help="pulp-cli's `pulp`"
    )
    parser.add_argument("--workdir", type=Path, help="where to work (default: a new temp folder, removed after)")
    parser.add_argument("--devpi-repeat", type=int, default=3, help="runs of the devpi pair (median reported)")
    parser.add_argument("--keep", action="store_true", help="keep the Pulp repositories and devpi users made")
    args = parser.parse_args(argv)
    say = lambda s: print(s, flush=True)  # noqa: E731

    services = read_env_file(args.services_dir / "env")
    devpi = Path(services["DEVPI_CLIENT"])
    if "pulp-loop" not in args.skip and not args.pulp_cli.exists():
        raise SystemExit(f"{args.pulp_cli} is missing: install pulp-cli (see this script's docstring)")
    names = ["pulp-api", "pulp-content", "pulp-worker-1", "pulp-worker-2", "devpi"]
    pulp_runner = Runner(server_pids(args.services_dir, [n for n in names if n.startswith("pulp")]))
    devpi_runner = Runner(server_pids(args.services_dir, ["devpi"]))
    admin = PulpAdmin(services)

    suffix = uuid.uuid4().hex[:8]
    pulp_repo, pulp_loop_repo = f"{PREFIX}{suffix}", f"{PREFIX}loop-{suffix}"
    devpi_users: list[str] = []
    devpi_password = uuid.uuid4().hex

    base = args.workdir or Path(tempfile.mkdtemp(prefix="mirrorctl-publish-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    home = base / "home"
    home.mkdir(exist_ok=True)
    report = Report(
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        code_version=code_version(),
        load_start=os.getloadavg(),
        machine=machine_facts(),
    )
    pulp_versions, workers = admin.status()
    report.versions = {f"Pulp {k}": v for k, v in pulp_versions.items() if k in ("core", "python")}
    report.versions["devpi-server"] = services.get("DEVPI_SERVER_VERSION", "unknown")
    report.versions["devpi-client"] = tool_version([str(devpi), "--version"], clean_env(home))
    if args.pulp_cli.exists():
        report.versions["pulp-cli"] = tool_version([str(args.pulp_cli), "--version"], clean_env(home))
    report.versions["PostgreSQL"] = services.get("POSTGRESQL_VERSION", "unknown")
    report.pulp_workers = str(workers)
    report.devpi_repeat = args.devpi_repeat
    try:
        say("making the content: init, lock, snapshot, key, bundle export, import ...")
        content = make_content(base / "flow", Runner([]))
        report.files, report.bytes, report.source, report.flow = (
            len(content.artifacts),
            content.size,
            content.source,
            content.steps,
        )
        say(
            f"  {report.files} files, {report.bytes / 1e6:.1f} MB; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in content.steps.items())
        )
        add_targets(content, services, pulp_repo, f"{PREFIX}{suffix}-0/bench")
        m = [*mirrorctl_argv(), "--config", str(content.inside / "mirrorctl.toml")]
        menv = {
            **os.environ,
            "BENCH_PULP_USER": services["PULP_USERNAME"],
            "BENCH_PULP_PASSWORD": services["PULP_PASSWORD"],
            "BENCH_DEVPI_USER": f"{PREFIX}{suffix}-0",
            "BENCH_DEVPI_PASSWORD": devpi_password,
        }
        wanted = {a.sha256 for a in content.artifacts}

        # ---- Pulp: mirrorctl first, on a Pulp that holds none of these files (else "cold" would skip them).
        if "pulp" in args.skip and "pulp-loop" in args.skip:
            pass
        else:
            before, after = admin.clean(content.artifacts)
            report.pulp_held_before = (before, after)
            say(f"pulp: {before} of the files were in Pulp before the run, {after} after the orphan clean-up")
        if "pulp" not in args.skip:
            load = os.getloadavg()[0]
            cold = pulp_runner.run([*m, "publish", "--to", "pulp"], cwd=content.inside, env=menv)
            again = pulp_runner.run([*m, "publish", "--to", "pulp"], cwd=content.inside, env=menv)
            version, shas = admin.latest_files(pulp_repo)
            if shas != wanted or "unchanged" not in again.output or version != 1:
                raise SystemExit(
                    f"pulp: publish left version {version} with {len(shas & wanted)} of {len(wanted)} files; "
                    f"second run: {again.output[-1000:]}"
                )
            report.add(Measured("pulp", "mirrorctl publish --to pulp (cold)", cold, load, result_line(cold.output)))
            report.add(
                Measured(
                    "pulp",
                    "mirrorctl publish --to pulp (nothing new)",
                    again,
                    os.getloadavg()[0],
                    result_line(again.output),
                )
            )
            say(f"pulp: mirrorctl publish cold {cold.seconds:.1f} s, again {again.seconds:.2f} s")
        if "pulp-loop" not in args.skip:
            cli = pulp_cli_base(args.pulp_cli, services)
            penv = clean_env(home)
            pulp_runner.run([*cli, "status"], cwd=base, env=penv)  # fetches and caches Pulp's API description
            admin.create_repository(pulp_loop_repo)
            load = os.getloadavg()[0]
            calls = [
                [*cli, "python", "content", "upload", "--relative-path", a.filename, "--file",
                 str(content.files / a.filename), "--repository", pulp_loop_repo]
                for a in content.artifacts
            ]  # fmt: skip
            loop = pulp_runner.loop(calls, cwd=base, env=penv)
            version, shas = admin.latest_files(pulp_loop_repo)
            if shas != wanted:
                raise SystemExit(f"pulp-cli loop: the repository holds {len(shas & wanted)} of {len(wanted)} files")
            report.add(Measured("pulp", "`pulp python content upload` loop, one call per file", loop, load,
                                f"{version} repository versions"))  # fmt: skip
            say(f"pulp: pulp-cli loop {loop.seconds:.1f} s ({version} versions)")

        # ---- devpi: both are short and devpi's write path is sensitive to the machine's load, so the pair runs
        # --devpi-repeat times, alternating which goes first, each into fresh users/indexes; medians reported.
        uploads: list[tuple[Run, float]] = []
        colds: list[tuple[Run, float, str]] = []
        agains: list[tuple[Run, float, str]] = []
        for rep in range(args.devpi_repeat):
            order = ["devpi-upload", "devpi"] if rep % 2 == 0 else ["devpi", "devpi-upload"]
            for what in (w for w in order if w not in args.skip):
                if what == "devpi-upload":
                    upload_user = f"{PREFIX}upload-{suffix}-{rep}"
                    devpi_users.append(upload_user)
                    uploads.append(devpi_upload(devpi, devpi_runner, services["DEVPI_URL"], upload_user,
                                                devpi_password, content, home, wanted))  # fmt: skip
                    say(f"devpi [{rep + 1}]: devpi upload --from-dir {uploads[-1][0].seconds:.1f} s")
                    continue
                user = f"{PREFIX}{suffix}-{rep}"
                devpi_users.append(user)
                add_targets(content, services, pulp_repo, f"{user}/bench")
                menv["BENCH_DEVPI_USER"] = user
                load = os.getloadavg()[0]
                cold = devpi_runner.run([*m, "publish", "--to", "devpi"], cwd=content.inside, env=menv)
                load_again = os.getloadavg()[0]
                again = devpi_runner.run([*m, "publish", "--to", "devpi"], cwd=content.inside, env=menv)
                shas = devpi_listing(services["DEVPI_URL"], f"{user}/bench")
                if shas != wanted or "unchanged" not in again.output:
                    raise SystemExit(
                        f"devpi: the index lists {len(shas & wanted)} of {len(wanted)} files; second run: "
                        f"{again.output[-1000:]}"
                    )
                colds.append((cold, load, result_line(cold.output)))
                agains.append((again, load_again, result_line(again.output)))
                say(f"devpi [{rep + 1}]: mirrorctl publish cold {cold.seconds:.1f} s, again {again.seconds:.2f} s")
        if uploads:
            report.add(median_of("devpi", "`devpi upload --from-dir`", [(r, load, "") for r, load in uploads]))
        if colds:
            report.add(median_of("devpi", "mirrorctl publish --to devpi (cold)", colds))
            report.add(median_of("devpi", "mirrorctl publish --to devpi (nothing new)", agains))
    finally:
        if not args.keep:
            try:
                if not ("pulp" in args.skip and "pulp-loop" in args.skip):
                    admin.clean([], own=[pulp_repo, pulp_loop_repo])
            except Exception as exc:  # clean-up must not hide the run's own error
                say(f"clean-up of Pulp failed: {exc}")
            left = [
                u for u in devpi_users if not devpi_delete_user(devpi, services["DEVPI_URL"], u, devpi_password, home)
            ]
            if left:
                say(f"clean-up of devpi left these users: {', '.join(left)}")
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    report.load_end = os.getloadavg()

    markdown = render(report)
    print()
    print(markdown)
    if args.out:
        update_section(args.out, "publish", markdown)
        print(f'\nwrote the "publish" section of {args.out}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
