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
