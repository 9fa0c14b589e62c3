"""How long work reports progress without the core knowing about terminals.

Services take a :class:`Progress`; the CLI passes one that draws rich bars on a terminal and prints plain
lines otherwise. Library users and tests pass :data:`SILENT` (or their own recorder).
"""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...
    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None, *, unit: str = "") -> ProgressTask:
        """Start a unit of work; ``unit="bytes"`` asks for a transfer display."""
        ...

    def note(self, message: str) -> None:
        """A line worth keeping in the log (a warning, a skipped item, a summary)."""
        ...


class _SilentTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def close(self) -> None:
        pass


class SilentProgress:
    def task(self, description: str, total: float | None = None, *, unit: str = "") -> ProgressTask:
        return _SilentTask()

    def note(self, message: str) -> None:
        pass


SILENT: Progress = SilentProgress()

BYTE_UNITS = frozenset({"bytes", "B"})
"""The ``unit=`` values that mean a task counts bytes (shown as sizes, with a transfer rate)."""


def human_size(n: float, *, signed: bool = False) -> str:
    """Decimal units, as a ticket reader expects: 999 B, 1.5 kB, 12 kB, 3.4 MB. The one size format of every
    report, table and progress line, so a diff, ``snapshots list`` and a publish say the same number alike.

    Example: ``human_size(12_345_678)`` is ``"12 MB"``; ``human_size(-1_500, signed=True)`` is ``"-1.5 kB"``.
    """
    sign = ("-" if n < 0 else "+") if signed else ("-" if n < 0 else "")
    v = float(abs(n))
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if v < 1000 or unit == "TB":
            if unit == "B":
                return f"{sign}{int(v)} B"
            return f"{sign}{v:.1f} {unit}" if v < 10 else f"{sign}{v:.0f} {unit}"
        v /= 1000
    raise AssertionError("unreachable")
