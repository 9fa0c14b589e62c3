"""The publish-target Protocol: what every internal mirror kind (Pulp 3, devpi, ...) provides.

A target receives, per ecosystem, the exact set of artifacts a publish should expose (from the store's served
view) and makes the server expose exactly that set, atomically where the server can: on Pulp one new repository
version holding the whole set, and the distribution moved to it only once it is complete. Targets never import
ecosystems or each other; the publish service (mirrorctl/inside/publish.py) wires them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

import httpx

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import Progress

ENTRY_POINT_GROUP = "mirrorctl.targets.v1"


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """What `mirrorctl targets check` reports."""

    reachable: bool
    authenticated: bool
    server_version: str | None
    plugins: Mapping[str, str]  # plugin/component name -> version
    problems: tuple[str, ...] = ()  # each names what is wrong and what to do
    # Each names a setting that works but makes the target behave other than mirrorctl promises (Pulp: removed
    # files still served), and what to set; warnings do not make the check fail.
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reachable and self.authenticated and not self.problems


@dataclass(frozen=True, slots=True)
class PublishResult:
    ecosystem: str
    repository: str
    uploaded: int  # files sent to the server
    present: int  # files the server already had
    removed: int  # files no longer in the published set
    version: int | None  # the repository version now served (Pulp); None where the server has no versions
    changed: bool  # False: the server already served exactly this set; nothing was created
    endpoint: str  # the URL clients use (for PyPI: the simple index)
    seconds: float = 0.0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    ecosystem: str
    repository: str
    version: int
    created: str  # ISO 8601, as the server reports it
    artifacts: int
    served: bool  # the distribution points at this version now
    details: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class PublishTarget(Protocol):
    kind: str
    name: str  # the [targets.<name>] it was made from: names it in messages, the journal and the audit log
    ecosystems: frozenset[str]  # the ecosystems this kind can publish

    async def check(self) -> TargetCheck: ...

    async def publish(
        self, ecosystem: str, artifacts: Sequence[Artifact], store: Store, progress: Progress
    ) -> PublishResult:
        """Make the target serve exactly ``artifacts`` for ``ecosystem``; idempotent and incremental. Blobs are
        read from ``store`` (already verified by the caller). Per-item errors are collected and raised together
        as one TargetError; nothing is switched to a partial set."""
        ...

    async def history(self, ecosystem: str) -> list[PublishedVersion]: ...

    async def rollback(self, ecosystem: str, version: int) -> PublishedVersion:
        """Serve an earlier version again (Pulp: point the distribution at it). TargetError where unsupported."""
        ...

    def endpoint(self, ecosystem: str) -> str:
        """The URL the ecosystem's clients use on this target (for PyPI: the simple index URL)."""
        ...

    async def trust_files(self, ecosystem: str) -> Mapping[str, str]:
        """Files (path relative to the workspace folder -> text) a workspace needs, beside the client config,
        to trust what the target serves for ``ecosystem`` (Pulp's apt: the signing service's public key, at the
        path the apt client config's Signed-By names); empty for a target that ships none. Written by
        ``mirrorctl workspace-config --target``."""
        ...


class TargetFactory(Protocol):
    def __call__(
        self,
        settings: TargetSettings,
        client: httpx.AsyncClient,
        environ: Mapping[str, str],
        *,
        ecosystems: Mapping[str, Ecosystem],
    ) -> PublishTarget:
        """``ecosystems``: the installed adapters, which a target may need (Pulp: their static layouts)."""
        ...


def target_kinds() -> dict[str, TargetFactory]:
    found: dict[str, TargetFactory] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found:
            raise UserError(f"two target plugins are registered as {ep.name!r} ({ep.value})")
        found[ep.name] = ep.load()
    return found


def make_target(
    settings: TargetSettings,
    client: httpx.AsyncClient,
    environ: Mapping[str, str],
    *,
    ecosystems: Mapping[str, Ecosystem],
) -> PublishTarget:
    kinds = target_kinds()
    try:
        factory = kinds[settings.kind]
    except KeyError:
        raise UserError(
            f"targets.{settings.name}.kind: no target plugin {settings.kind!r} is installed",
            hint=f"installed kinds: {', '.join(sorted(kinds)) or 'none'}",
        ) from None
    return factory(settings, client, environ, ecosystems=ecosystems)
