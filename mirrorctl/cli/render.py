"""Progress and messages for a terminal (rich) or a log (plain lines)."""

from __future__ import annotations

import sys
import time
from functools import cache
from typing import TYPE_CHECKING, TextIO

from mirrorctl.errors import MirrorctlError
from mirrorctl.progress import Progress, ProgressTask

if TYPE_CHECKING:  # rich is imported when first used: a command run from a script or CI never needs it
    from rich.console import Console
    from rich.progress import Progress as RichBars


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def error_lines(err: MirrorctlError) -> list[str]:
    """How a library error reads for a person, rendered from its data: what went wrong, then what to do.
    The one place that turns an error into words for the terminal (``mirrorctl.cli.app`` prints these)."""
    lines = [f"error: {err.message}"]
    if err.hint:
        lines.append(f"hint: {err.hint}")
    return lines


def print_error(err: MirrorctlError) -> None:
    first, *rest = error_lines(err)
    err_console().print(first, style="bold red", markup=False, soft_wrap=True)
    for line in rest:
        err_console().print(line, markup=False, soft_wrap=True)


def print_unexpected(exc: BaseException) -> None:
    """An error no layer foresaw (a bug, or an environment problem): its kind and text, and what to do."""
    err_console().print(f"error: unexpected {type(exc).__name__}: {exc}", style="bold red", markup=False)
    err_console().print("hint: run again with -v for the traceback, and report it", markup=False)


class _RichTask:
    def __init__(self, bars: RichBars, task_id: int, owner: RichProgress) -> None:
        self._bars, self._id, self._owner = bars, task_id, owner

    def advance(self, amount: float = 1) -> None:
        self._bars.advance(self._id, amount)  # type: ignore[arg-type]

    def close(self) -> None:
        self._bars.update(self._id, visible=False)  # type: ignore[arg-type]
        self._owner._closed()


class RichProgress:
    """Bars on stderr while any task is open."""

    def __init__(self) -> None:
        self._bars: RichBars | None = None
        self._open = 0

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> ProgressTask:
        if self._bars is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import (
                Progress as RichBars,
            )

            self._bars = RichBars(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn() if unit == "bytes" else MofNCompleteColumn(),
                TransferSpeedColumn() if unit == "bytes" else TextColumn(""),
                TimeRemainingColumn(),
                console=err_console(),
                transient=True,
            )
            self._bars.start()
        self._open += 1
        return _RichTask(self._bars, self._bars.add_task(description, total=total), self)

    def _closed(self) -> None:
        self._open -= 1
        if self._open <= 0 and self._bars is not None:
            self._bars.stop()
            self._bars = None

    def note(self, message: str) -> None:
        err_console().print(message)


class _PlainTask:
    def __init__(self, out: TextIO, description: str, total: float | None, unit: str) -> None:
        self._out, self._desc, self._total, self._unit = out, description, total, unit
        self._done = 0.0
        self._last = time.monotonic()
        self._started = self._last
        print(f"{description}: started" + (f" ({_amount(total, unit)})" if total else ""), file=out, flush=True)

    def advance(self, amount: float = 1) -> None:
        self._done += amount
        now = time.monotonic()
        if now - self._last >= 5:
            self._last = now
            of = f"/{_amount(self._total, self._unit)}" if self._total else ""
            print(f"{self._desc}: {_amount(self._done, self._unit)}{of}", file=self._out, flush=True)

    def close(self) -> None:
        took = time.monotonic() - self._started
        print(f"{self._desc}: done, {_amount(self._done, self._unit)} in {took:.1f}s", file=self._out, flush=True)


class PlainProgress:
    """One line when a task starts, every few seconds while it runs, and when it ends."""

    def __init__(self, out: TextIO | None = None) -> None:
        # Looked up now, not when the module was imported: the stderr of this run (a test's runner swaps it).
        self._out = out if out is not None else sys.stderr

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> ProgressTask:
        return _PlainTask(self._out, description, total, unit)

    def note(self, message: str) -> None:
        print(message, file=self._out, flush=True)


def _amount(n: float | None, unit: str) -> str:
    if n is None:
        return "?"
    if unit == "bytes":
        for u in ("B", "KB", "MB", "GB"):
            if n < 1000 or u == "GB":
                return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
            n /= 1000
    return f"{n:.0f}"


def make_progress(quiet: bool = False) -> Progress:
    if quiet:
        from mirrorctl.progress import SILENT

        return SILENT
    return RichProgress() if sys.stderr.isatty() else PlainProgress()
