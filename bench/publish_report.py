"""The Markdown of the publish benchmark (bench/publish_bench.py): what was measured, the figures, the targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# The issue's figures for this kind of machine, and its targets.
ISSUE_PULP_LOOP = 250.0
ISSUE_DEVPI_UPLOAD = 5.0
PULP_RATIO = 0.1
DEVPI_RATIO = 1.2
REPUBLISH_LIMIT = 5.0

PULP_COLD = "mirrorctl publish --to pulp (cold)"
PULP_AGAIN = "mirrorctl publish --to pulp (nothing new)"
PULP_LOOP = "`pulp python content upload` loop, one call per file"
DEVPI_COLD = "mirrorctl publish --to devpi (cold)"
DEVPI_AGAIN = "mirrorctl publish --to devpi (nothing new)"
DEVPI_UPLOAD = "`devpi upload --from-dir`"


class RunLike(Protocol):
    seconds: float
    client_cpu: float
    server_cpu: float


@dataclass
class Measured:
    group: str  # "pulp" or "devpi"
    label: str
    run: RunLike
    load: float  # 1-minute load average when it started
    note: str = ""


@dataclass
class Report:
    started: str
    code_version: str
    load_start: tuple[float, float, float]
    machine: dict[str, str]
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    versions: dict[str, str] = field(default_factory=dict)
    pulp_workers: str = "?"
    devpi_repeat: int = 1
    files: int = 0
    bytes: int = 0
    source: str = ""
    flow: dict[str, float] = field(default_factory=dict)
    pulp_held_before: tuple[int, int] | None = None
    measured: list[Measured] = field(default_factory=list)

    def add(self, m: Measured) -> None:
        self.measured.append(m)

    def seconds(self, label: str) -> float | None:
        return next((m.run.seconds for m in self.measured if m.label == label), None)


def _load(t: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in t)


def _met(ok: bool, over: str = "") -> str:
    return "yes" if ok else f"**no**{': ' + over if over else ''}"


def target_rows(r: Report) -> list[tuple[str, str, str, str, str]]:
    rows = []
    cold, loop = r.seconds(PULP_COLD), r.seconds(PULP_LOOP)
    if cold is not None and loop is not None:
        ratio = cold / loop
        rows.append(
            (
                "Pulp: cold publish vs the pulp-cli loop",
                f"{cold:.1f} s vs {loop:.1f} s",
                f"{ratio:.3f}x",
                f"<= {PULP_RATIO}x",
                _met(ratio <= PULP_RATIO, f"{ratio / PULP_RATIO:.1f}x over ({loop * PULP_RATIO:.1f} s allowed)"),
            )
        )
    cold, upload = r.seconds(DEVPI_COLD), r.seconds(DEVPI_UPLOAD)
    if cold is not None and upload is not None:
        ratio = cold / upload
        rows.append(
            (
                "devpi: cold publish vs `devpi upload --from-dir`",
                f"{cold:.1f} s vs {upload:.1f} s",
                f"{ratio:.2f}x",
                f"<= {DEVPI_RATIO}x",
                _met(ratio <= DEVPI_RATIO, f"{ratio / DEVPI_RATIO:.2f}x over ({upload * DEVPI_RATIO:.1f} s allowed)"),
            )
        )
    for label, name in ((PULP_AGAIN, "Pulp"), (DEVPI_AGAIN, "devpi")):
        again = r.seconds(label)
        if again is not None:
            rows.append(
                (
                    f"{name}: republish with nothing new",
                    f"{again:.2f} s",
                    "",
                    f"< {REPUBLISH_LIMIT:.0f} s",
                    _met(again < REPUBLISH_LIMIT, f"{again / REPUBLISH_LIMIT:.1f}x the limit"),
                )
            )
    return rows


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def notes(r: Report) -> list[str]:
    out = []
    cold, loop = r.seconds(PULP_COLD), r.seconds(PULP_LOOP)
    if loop is not None:
        m = next(m for m in r.measured if m.label == PULP_LOOP)
        out.append(
            f"The issue measured the pulp-cli loop at about {ISSUE_PULP_LOOP:.0f} s; here it took {loop:.0f} s, "
            f"{loop / max(r.files, 1):.1f} s per file: each call is a new process ({m.run.client_cpu:.0f} s of client "
            f"CPU in all) that authenticates with Basic auth on every request (Pulp hashes the password each time) "
            f"and makes its own repository version ({m.run.server_cpu:.0f} s of Pulp's CPU in all)."
        )
    if cold is not None:
        out.append(
            f"Against the issue's {ISSUE_PULP_LOOP:.0f} s, the cold Pulp publish is {cold / ISSUE_PULP_LOOP:.3f}x "
            f"(target {PULP_RATIO}x: {'met' if cold / ISSUE_PULP_LOOP <= PULP_RATIO else 'not met'})."
        )
    cold, upload = r.seconds(DEVPI_COLD), r.seconds(DEVPI_UPLOAD)
    if upload is not None:
        out.append(f"The issue measured `devpi upload --from-dir` at about {ISSUE_DEVPI_UPLOAD:.0f} s; here it took "
                   f"{upload:.1f} s.")  # fmt: skip
    if cold is not None:
        ratio = cold / ISSUE_DEVPI_UPLOAD
        out.append(
            f"Against the issue's {ISSUE_DEVPI_UPLOAD:.0f} s, the cold devpi publish is {ratio:.2f}x "
            f"(target {DEVPI_RATIO}x: {'met' if ratio <= DEVPI_RATIO else 'not met'})."
        )
    cpus = r.machine.get("nproc", "?")
    out.append(
        f"The machine was shared with other work during the run (load average {r.load_start[0]:.1f} at the start and "
        f"{r.load_end[0]:.1f} at the end, on {cpus} CPUs), so wall times are noisy; the CPU columns are steadier."
    )
    return out


def render(r: Report) -> str:
    mb = r.bytes / 1e6
    rows = [
        (
            m.label,
            f"{m.run.seconds:.2f}",
            f"{m.run.client_cpu:.1f}",
            f"{m.run.server_cpu:.1f}",
            f"{m.load:.2f}",
            m.note.replace("\n", "; ").replace("|", "/"),
        )
        for m in r.measured
    ]
    held = ""
    if r.pulp_held_before is not None:
        before, after = r.pulp_held_before
        held = (
            f" Before the cold Pulp publish, Pulp held {before} of the {r.files} files as content (from earlier runs); "
            f"after removing the orphaned ones, {after}: the cold publish had to upload "
            + (
                "every file."
                if after == 0
                else f"{r.files - after} files (the rest sit in repositories it does not own)."
            )
        )
    flow = ", ".join(f"`{k}` {v:.1f} s" for k, v in r.flow.items())
    parts = [
        "## Publishing into Pulp and devpi (issue 3, item 8)",
        "",
        f"Measured by `bench/publish_bench.py` on {r.started}, code {r.code_version}. Every figure comes from one "
        "run of the script, on the machine below.",
        "",
        "### What is measured",
        "",
        f"The content is the bench profile (`bench/profiles/bench.toml`): {r.files} files, {mb:.1f} MB, made by the "
        f"real flow in a temporary folder: `mirrorctl init` (upstream {r.source}), `lock`, `snapshot`, `key "
        f"generate`, `bundle export`, then an inside store that trusts the key and `mirrorctl import` ({flow}). "
        "The baselines upload the same files, copied from the imported store under their file names.",
        "",
        "- **Pulp, mirrorctl**: `mirrorctl publish --to pulp` (a CLI subprocess, start-up and verification of every "
        "blob included) into a fresh repository and distribution: one repository version with all files, then the "
        "distribution switched to it. Then the same command again (nothing new: no upload, no version)." + held,
        "- **Pulp, baseline**: a fresh repository (made before the clock starts), then a loop of `pulp python "
        "content upload --relative-path FILE --file PATH --repository NAME` (pulp-cli), one process per file, one "
        "after the other; each call makes a repository version. Run after mirrorctl's publish, so Pulp already "
        "stores the bytes; pulp-cli sends every file anyway, and any saving on the server goes to the baseline.",
        f"- **devpi**: the two below run as a pair {r.devpi_repeat} time(s), alternating which goes first, each into "
        "fresh users and indexes; the table gives the median and each run.",
        "- **devpi, baseline**: `devpi use`, `devpi user -c`, `devpi login`, `devpi index -c NAME bases= "
        "volatile=False`, `devpi use NAME` (not timed), then `devpi upload --from-dir DIR` (timed).",
        "- **devpi, mirrorctl**: `mirrorctl publish --to devpi` into a fresh user/index: it creates the user and the "
        "index (no bases, volatile=False), uploads 8 files at a time, then reads the index back and checks every "
        "sha256. Then the same command again.",
        "",
        "After each measurement the script checks the result (Pulp: the latest version holds exactly these files' "
        "sha256; devpi: the index lists them). Client CPU is user + system time of the measured commands; server CPU "
        "is that of the Pulp processes (API, content app, workers) or of devpi-server meanwhile, from their pid "
        "files. All names carry a random suffix; the repositories, distributions and users are deleted afterwards.",
        "",
        "### How to run it",
        "",
        "```",
        "bash scripts/services.sh start                                  # Pulp + devpi on 127.0.0.1",
        "python3 -m venv .services/bench-venv && env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \\",
        "    PIP_CONFIG_FILE=/dev/null .services/bench-venv/bin/python -m pip install pulp-cli==0.41.1",
        ".venv/bin/python bench/publish_bench.py --out docs/benchmarks.md   # writes this section only",
        ".venv/bin/python bench/publish_bench.py --skip pulp-loop           # quick: without the pulp-cli loop",
        "```",
        "",
        "It needs the upstream pip uses (for the content), about 600 MB in the temp folder, and a few minutes.",
        "",
        "### Results",
        "",
        table(("measurement", "seconds", "client CPU (s)", "server CPU (s)", "load at start", "result"), rows),
        "",
        "### Targets",
        "",
        table(("target", "measured", "ratio", "target", "met"), target_rows(r)),
        "",
    ]
    extra = notes(r)
    if extra:
        parts += ["### Reading the numbers", "", *[f"- {n}" for n in extra], ""]
    parts += [
        "### Machine",
        "",
        table(
            ("fact", "value"),
            [
                *r.machine.items(),
                ("load average (1/5/15 min) at start", _load(r.load_start)),
                ("load average at the end", _load(r.load_end)),
                ("Pulp workers online", r.pulp_workers),
                *((k, v) for k, v in r.versions.items()),
            ],
        ),
    ]
    return "\n".join(parts)
