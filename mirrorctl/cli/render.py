"""Progress, messages and tables for a terminal (rich) or a log (plain lines).

Tables: every listing command (``snapshots list``, ``channels list``, ``history``, a publish's results) prints
through :func:`print_table`, so they align the same way: a rich table on a terminal, plain columns separated by
two spaces otherwise (what a script or a log reads; no trailing spaces, header first). Sizes go through
:func:`mirrorctl.progress.human_size`. Cells are text as given: nothing in them is read as rich markup.

Example::

    print_table([Column("id"), Column("size", right=True)], [["20261127T1530", human_size(12_300_000)]])
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, TextIO

from mirrorctl.errors import MirrorctlError
from mirrorctl.progress import BYTE_UNITS, Progress, ProgressTask, human_size

if TYPE_CHECKING:  # rich is imported when first used: a command run from a script or CI never needs it
    from rich.console import Console
    from rich.progress import Progress as RichBars


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# --- tables ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    header: str
    right: bool = False  # numbers and sizes: right-aligned so their digits line up


Cell = object  # str() of it is shown; None shows as "-"


def _cell(value: Cell) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("\n", " ")  # one row is one line, whatever a name holds


def _columns(columns: Sequence[Column | str]) -> list[Column]:
    return [c if isinstance(c, Column) else Column(c) for c in columns]


def table_lines(columns: Sequence[Column | str], rows: Iterable[Sequence[Cell]]) -> list[str]:
    """The plain form: a header line, then one line per row, columns two spaces apart, no trailing spaces.

    Example: ``table_lines(["name", Column("n", right=True)], [["a", 1], ["bb", 10]])`` gives
    ``["name   n", "a      1", "bb    10"]``.
    """
    cols = _columns(columns)
    body = [[_cell(v) for v in row] for row in rows]
    for row in body:
        if len(row) != len(cols):
            raise ValueError(f"a table row has {len(row)} cells for {len(cols)} columns: {row}")
    widths = [max([len(c.header)] + [len(r[i]) for r in body]) for i, c in enumerate(cols)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if col.right else cell.ljust(w) for cell, col, w in zip(cells, cols, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line([c.header for c in cols]), *(line(r) for r in body)]


def print_table(
    columns: Sequence[Column | str],
    rows: Iterable[Sequence[Cell]],
    *,
    out: TextIO | None = None,
    rich: bool | None = None,
) -> None:
    """Print a table on stdout (or ``out``): rich on a terminal (``rich=None`` asks ``isatty``), plain aligned
    lines (:func:`table_lines`) otherwise."""
    stream = out if out is not None else sys.stdout
    body = [list(r) for r in rows]
    use_rich = stream.isatty() if rich is None else rich
    if not use_rich:
        for text in table_lines(columns, body):
            print(text, file=stream)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in _columns(columns):
        table.add_column(c.header, justify="right" if c.right else "left", no_wrap=True)
    for row in body:
        table.add_row(*(Text(_cell(v)) for v in row))
    Console(file=stream, highlight=False).print(table)


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

            sizes = unit in BYTE_UNITS
            self._bars = RichBars(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn() if sizes else MofNCompleteColumn(),
                TransferSpeedColumn() if sizes else TextColumn(""),
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
    if unit in BYTE_UNITS:
        return human_size(n)
    return f"{n:.0f}"


def make_progress(quiet: bool = False) -> Progress:
    if quiet:
        from mirrorctl.progress import SILENT

        return SILENT
    return RichProgress() if sys.stderr.isatty() else PlainProgress()
