"""bench/npm_report.py ``closure_check``: the benchmark's verdict that every declared platform's esbuild and
rollup (or rolldown) binary is in mirrorctl's lock, and its comparison with npm's own lock and install."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="module")
def report() -> Any:
    # The bench scripts import each other by plain module name (they run as scripts from bench/).
    sys.path.insert(0, str(BENCH))
    try:
        import npm_report

        yield npm_report
    finally:
        sys.path.remove(str(BENCH))


PLATFORMS = ["linux-x64", "linux-arm64"]


def art(name: str, version: str, targets: list[str], size: int = 10) -> dict[str, Any]:
    return {"ecosystem": "npm", "name": name, "version": version, "targets": targets, "size": size}


def complete_lock() -> list[dict[str, Any]]:
    return [
        art("esbuild", "0.21.5", PLATFORMS),
        art("@esbuild/linux-x64", "0.21.5", ["linux-x64"]),
        art("@esbuild/linux-arm64", "0.21.5", ["linux-arm64"], size=20),
        art("rollup", "4.18.0", PLATFORMS),
        art("@rollup/rollup-linux-x64-gnu", "4.18.0", ["linux-x64"]),
        art("@rollup/rollup-linux-arm64-gnu", "4.18.0", ["linux-arm64"]),
        {"ecosystem": "pypi", "name": "idna", "version": "3.10", "targets": ["py3.11"], "size": 5},
    ]


def results(report: Any, arts: list[dict[str, Any]], baseline: list[Any] | None = None) -> Any:
    cold = report.ColdRun.__new__(report.ColdRun)  # only lock_doc is read
    cold.lock_doc = {"artifacts": arts}
    return report.Results(
        reps=1, packages=["esbuild", "rollup"], platforms=PLATFORMS, cold=[cold], baseline=baseline or []
    )


def test_every_platform_binary_present(report: Any) -> None:
    c = report.closure_check(results(report, complete_lock()))
    assert c.ok, c.rows
    assert ("`esbuild@0.21.5` on linux-arm64", "`@esbuild/linux-arm64@0.21.5`", "yes") in c.rows
    assert c.per_platform == {"linux-x64": (4, 40), "linux-arm64": (4, 50)}, "npm artifacts only, per target"


def test_a_missing_platform_binary_fails(report: Any) -> None:
    arts = [a for a in complete_lock() if a["name"] != "@rollup/rollup-linux-arm64-gnu"]
    c = report.closure_check(results(report, arts))
    assert not c.ok
    assert ("`rollup@4.18.0` on linux-arm64", "`@rollup/rollup-linux-arm64-gnu@4.18.0`", "**no**") in c.rows


def test_neither_rollup_nor_rolldown_fails(report: Any) -> None:
    arts = [a for a in complete_lock() if "rollup" not in a["name"]]
    c = report.closure_check(results(report, arts))
    assert not c.ok and ("rollup or rolldown", "neither is in the closure", "**no**") in c.rows


def test_compared_with_npm_lock_and_install(report: Any) -> None:
    def pkg(name: str, version: str, os: list[str] | None = None, cpu: list[str] | None = None) -> dict[str, Any]:
        return {"name": name, "version": version, "os": os or [], "cpu": cpu or [], "optional": bool(os)}

    baseline = report.BaselineRun.__new__(report.BaselineRun)
    baseline.lock_packages = [
        pkg("esbuild", "0.21.5"),
        pkg("@esbuild/linux-x64", "0.21.5", ["linux"], ["x64"]),
        pkg("@esbuild/linux-arm64", "0.21.5", ["linux"], ["arm64"]),
        pkg("@esbuild/win32-x64", "0.21.5", ["win32"], ["x64"]),  # fits no declared platform: not wanted
        pkg("rollup", "4.18.0"),
        pkg("@rollup/rollup-linux-x64-gnu", "4.18.0", ["linux"], ["x64"]),
        pkg("@rollup/rollup-linux-arm64-gnu", "4.18.0", ["linux"], ["arm64"]),
        pkg("missing-dep", "1.0.0"),
    ]
    baseline.installed = [("esbuild", "0.21.5"), ("@esbuild/linux-x64", "0.21.5"), ("missing-dep", "1.0.0")]
    c = report.closure_check(results(report, complete_lock(), [baseline]))
    assert c.missing_vs_npm == ["missing-dep@1.0.0"]
    assert c.extra_vs_npm == [], "only npm artifacts are compared (idna is not)"
    assert c.missing_vs_ci == ["missing-dep@1.0.0"]
    assert c.extra_vs_ci == ["@rollup/rollup-linux-x64-gnu@4.18.0", "rollup@4.18.0"]
