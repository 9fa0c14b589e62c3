"""Watching the backtracking search of one target: what it goes back on, how often, for how long.

resolvelib reports every round, every conflict and every rejected candidate to a reporter. This one counts
them per project, so that

* progress on a terminal says, while the search goes on, which projects it is backtracking on (a note at
  most every ``every`` seconds, only once it has started going back);
* a search that meets the ``[lock]`` bound (``max-rounds``, ``max-seconds`` in mirrorctl.toml) stops with a
  message naming the projects in conflict, the chain of requirements of the last conflict and what to
  constrain, instead of running on silently;
* the benchmark and the tests can read the figures (``rounds``, ``rejected``).

Example::

    watch = SearchWatch("py3.11-manylinux_2_28_x86_64", limits, note=progress.note)
    resolver = Resolver(provider, watch)          # watch.inner: the reporter it forwards pins to
    ...
    except SearchStopped as stop: raise ResolutionError(stop_message(stop, chain_of))
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from resolvelib import BaseReporter

from mirrorctl.config import LockSettings

_NAMED = 5  # projects named in a progress note or a stop message


class SearchStopped(Exception):
    """Raised from inside the resolver when the search meets a ``[lock]`` bound."""

    def __init__(self, watch: SearchWatch, bound: str) -> None:
        super().__init__(bound)
        self.watch, self.bound = watch, bound


@dataclass
class SearchWatch(BaseReporter[Any, Any, str]):
    target_id: str
    limits: LockSettings
    note: Callable[[str], None] = lambda _msg: None
    inner: BaseReporter[Any, Any, str] | None = None  # gets pinning() (lock --snapshot's prefetch)
    every: float = 10.0  # seconds between progress notes
    clock: Callable[[], float] = time.monotonic
    rounds: int = 0
    conflicts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # project -> candidates rejected
    causes: Counter[str] = field(default_factory=Counter)  # project -> conflicts it took part in
    last_causes: Sequence[Any] = ()
    started: float = 0.0
    _noted: float = 0.0

    def starting(self) -> None:
        self.started = self._noted = self.clock()

    def starting_round(self, index: int) -> None:
        self.rounds = index + 1  # rounds begun, the current one included
        if index % 16:  # the clock is cheap, but a round is cheaper still
            return
        now = self.clock()
        if self.limits.max_seconds and now - self.started > self.limits.max_seconds:
            raise SearchStopped(self, f"[lock] max-seconds = {self.limits.max_seconds}")
        if self.conflicts and now - self._noted >= self.every:
            self._noted = now
            self.note(
                f"pypi {self.target_id}: still resolving after {now - self.started:.0f} s, round {self.rounds}; "
                f"backtracking ({self.conflicts} conflicts so far), {self.top()}"
            )

    def resolving_conflicts(self, causes: Collection[Any]) -> None:
        self.conflicts += 1
        self.last_causes = list(causes)
        for name in sorted(_names(causes)):
            self.causes[name] += 1

    def rejecting_candidate(self, criterion: Any, candidate: Any) -> None:
        self.rejected[str(candidate.name)] += 1

    def pinning(self, candidate: Any) -> None:
        if self.inner is not None:
            self.inner.pinning(candidate)

    def top(self, n: int = _NAMED) -> str:
        """The projects the search went back on most: how many conflicts each took part in, and how many of
        its candidates were rejected (the candidates were tried, their metadata read, and dropped)."""
        def ranked(counts: Counter[str]) -> str:
            best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
            return ", ".join(f"{name} ({count})" for name, count in best)

        parts = []
        if self.causes:
            parts.append(f"in conflict: {ranked(self.causes)}")
        if self.rejected:
            parts.append(f"candidates rejected: {ranked(self.rejected)}")
        return "; ".join(parts) or "nothing yet"

    @property
    def seconds(self) -> float:
        return self.clock() - self.started


def _names(causes: Collection[Any]) -> set[str]:
    out: set[str] = set()
    for c in causes:
        out.add(str(c.requirement.name))
        if c.parent is not None:
            out.add(str(c.parent.name))
    return out


def stop_message(watch: SearchWatch, bound: str, chain: Callable[[Any], str]) -> tuple[str, str]:
    """The message and hint of a search stopped by ``bound``: the projects it went back on, the chains of
    the last conflict, and what to constrain. ``chain(cause)`` renders one requirement's chain."""
    lines = [
        f"pypi target {watch.target_id}: stopped after {watch.rounds} rounds and {watch.seconds:.0f} s of "
        f"backtracking ({bound} in mirrorctl.toml); no consistent set of versions found yet",
        f"  backtracked on ({watch.conflicts} conflicts): {watch.top()}",
    ]
    # One line per distinct requirement of the last conflict: a dozen parents asking for the same range
    # would otherwise hide the one that asks for another.
    distinct: dict[str, Any] = {}
    for c in watch.last_causes:
        distinct.setdefault(f"{c.requirement.name} {c.requirement.specifier}", c)
    if distinct:
        lines.append("  the last conflict:")
        lines.extend(f"    {chain(c)}" for c in list(distinct.values())[: _NAMED * 2])
    required = sorted({str(c.requirement.name) for c in watch.last_causes})
    in_conflict = required + sorted(_names(watch.last_causes) - set(required))
    in_conflict = in_conflict or [n for n, _ in watch.rejected.most_common(_NAMED)]
    example = in_conflict[0] if in_conflict else "a project"
    hint = (
        f"constrain the projects in conflict ({', '.join(in_conflict[:_NAMED])}) in the profile's [pypi] "
        f'constraints (e.g. "{example}<X" with the version the other side needs), or raise the bound: '
        "[lock] max-rounds / max-seconds in mirrorctl.toml"
    )
    return "\n".join(lines), hint
