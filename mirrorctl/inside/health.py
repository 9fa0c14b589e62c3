"""What keeps the mirror's content from working for clients, as the ecosystems report it
(``Ecosystem.serve_problems``): ``import`` and ``serve`` print it as warnings, ``/healthz`` answers ``degraded``,
``workspace-config`` leaves the ecosystem out. The core names no ecosystem and no problem: the adapters do.

``/healthz`` (docs/platform-engineers.md, "Health checks"):

* ``200 ok``: nothing wrong;
* ``200 degraded`` and one line per problem: the mirror serves, but some of what it serves fails for clients
  (apt without an archive key). 200, not 503, because every worker and every replica over the same store has the
  same problem: a load balancer that took them out would take PyPI and npm down with apt;
* ``/healthz?strict``: the same body, ``503`` when degraded, for a monitor that only sees status codes.

Example::

    problems = serve_problems([StoreContent(store)], runtime.ecosystems)
    for p in problems:
        print("WARNING:", p.line(config))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mirrorctl.ecosystems.base import Ecosystem, ServedContent, ServedView, ServeProblem, StoredSet
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact

OK = "ok"
DEGRADED = "degraded"


def serve_problems(contents: Iterable[ServedContent], ecosystems: Mapping[str, Ecosystem]) -> list[ServeProblem]:
    """Every problem any ecosystem reports for any of ``contents`` (the channels served), each once, in
    ecosystem order."""
    found: list[ServeProblem] = []
    for content in contents:
        for name in sorted(ecosystems):
            for problem in ecosystems[name].serve_problems(content):
                if problem not in found:
                    found.append(problem)
    return found


def health_text(problems: Sequence[ServeProblem]) -> str:
    """The ``/healthz`` body: ``ok``, or ``degraded`` then one line per problem."""
    if not problems:
        return OK + "\n"
    return DEGRADED + "\n" + "".join(p.line() + "\n" for p in problems)


@dataclass(frozen=True, slots=True)
class SnapshotContent:
    """A :class:`~mirrorctl.ecosystems.base.ServedContent` over one snapshot of a store (the one an import just
    made), to ask the ecosystems about it before any server does."""

    store: Store
    view: ServedView
    serve_options: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, store: Store, view_id: str, serve_options: Mapping[str, object] | None = None) -> SnapshotContent:
        view = store.load_view(view_id)
        grouped: dict[str, list[Artifact]] = {}
        for a in view.artifacts:
            grouped.setdefault(a.ecosystem, []).append(a)
        return cls(store, StoredSet(store, view.view_id, view.created, grouped), dict(serve_options or {}))

    def current(self) -> ServedView:
        return self.view

    def loaded(self) -> ServedView:
        return self.view

    def keys_dir(self) -> Path:
        return self.store.root / "keys"  # where StoreContent, the server's, finds them

    def options(self, ecosystem: str) -> object:
        return self.serve_options.get(ecosystem)


def snapshot_problems(
    store: Store, view_id: str, ecosystems: Mapping[str, Ecosystem], serve_options: Mapping[str, object] | None = None
) -> list[ServeProblem]:
    """What the ecosystems report for serving snapshot ``view_id`` (``import`` warns with it)."""
    return serve_problems([SnapshotContent.of(store, view_id, serve_options)], ecosystems)
