"""What one mirrorctl invocation works with: settings, the store, the registered ecosystems, the HTTP client
factory and progress, built once (by the CLI, per command) and passed down explicitly.

The parts that cost something are built on first use and then kept: ``mirrorctl --help`` reads no
configuration and loads no ecosystem, ``mirrorctl key generate`` never needs a ``mirrorctl.toml``, and a
command that uses the store twice opens it once. Services take the runtime, or only the parts they need;
nothing reads configuration from a global.

Example::

    rt = Runtime(progress=SILENT, environ=os.environ, config_path=Path("mirrorctl.toml"))
    async with rt.client() as client:
        ctx = rt.resolve_context("pypi", client, profile_name="web")

    rt = Runtime.for_settings(settings, ecosystems=load_ecosystems())   # a library user or a test
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mirrorctl.config import Settings, find_config_path, load_settings
from mirrorctl.progress import SILENT, Progress

if TYPE_CHECKING:  # the HTTP stack, the store and the adapters load only when a command uses them
    import httpx

    from mirrorctl.ecosystems.base import Ecosystem, FetchContext, FetchItem, ResolveContext
    from mirrorctl.inside.store import Store
    from mirrorctl.net import RetryPolicy


@dataclass(frozen=True, eq=False)
class Runtime:
    """One invocation's runtime. Fields are what the caller knows at start; the properties are built lazily,
    once: :attr:`settings` (from ``config_path``, else ``$MIRRORCTL_CONFIG``, else ``./mirrorctl.toml``, as
    :func:`mirrorctl.config.find_config_path` says), :attr:`store`, :attr:`ecosystems`. :meth:`client` is the
    factory of HTTP clients (one per ``async with``, inside the command's event loop)."""

    progress: Progress = SILENT
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    config_path: Path | None = None
    cwd: Path = field(default_factory=Path.cwd)
    # Tests: every client this runtime builds sends its requests through this transport.
    transport: httpx.AsyncBaseTransport | None = None

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        *,
        progress: Progress = SILENT,
        environ: Mapping[str, str] | None = None,
        ecosystems: Mapping[str, Ecosystem] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Runtime:
        """A runtime over settings already loaded (and, if given, ecosystems already loaded)."""
        rt = cls(
            progress=progress, environ=dict(os.environ) if environ is None else environ,
            config_path=settings.config_path, transport=transport,
        )
        # Seeds the lazy parts: cached_property keeps its value in the instance dict, frozen or not.
        rt.__dict__["settings"] = settings
        if ecosystems is not None:
            rt.__dict__["ecosystems"] = ecosystems
        return rt

    @cached_property
    def settings(self) -> Settings:
        """mirrorctl.toml, read once; UserError naming the file and field when it cannot be used."""
        path = find_config_path(self.config_path, self.environ, self.cwd)
        # The ecosystem adapters check their own tables ([upstreams.<name>], [serve.<name>]).
        return load_settings(path, cwd=self.cwd, ecosystems=self.ecosystems)

    @cached_property
    def store(self) -> Store:
        from mirrorctl.inside.store import Store

        # Records written before artifact paths (an old inside's views) are read with the adapters, loaded then.
        return Store(self.settings.store_path, adapters=lambda: self.ecosystems)

    @cached_property
    def ecosystems(self) -> Mapping[str, Ecosystem]:
        """The registered ecosystem adapters by name (entry points), loaded once."""
        from mirrorctl.ecosystems.base import load_ecosystems

        return load_ecosystems()

    @property
    def retry(self) -> RetryPolicy:
        """How upstream requests are retried, from ``[fetch]``."""
        from mirrorctl.net import RetryPolicy

        return RetryPolicy.of(self.settings.fetch)

    def client(self) -> httpx.AsyncClient:
        """A new HTTP client with the settings' pool, timeouts and per-upstream credentials; use it as
        ``async with rt.client() as client`` inside the command's event loop."""
        from mirrorctl.net import build_client

        return build_client(self.settings, self.environ, transport=self.transport)

    def resolve_context(
        self,
        ecosystem: str,
        client: httpx.AsyncClient,
        profile_name: str,
        *,
        prefetch: Callable[[FetchItem], None] | None = None,
    ) -> ResolveContext:
        """What ``Ecosystem.resolve`` gets: every field set from this runtime."""
        from mirrorctl.ecosystems.base import ResolveContext

        settings = self.settings
        return ResolveContext(
            client=client, upstream=settings.upstream(ecosystem), progress=self.progress,
            profile_name=profile_name, store=self.store, fetch=settings.fetch, prefetch=prefetch,
            lock=settings.lock,
        )

    def fetch_context(self, ecosystem: str, client: httpx.AsyncClient) -> FetchContext:
        """What ``Ecosystem.fetch_plan`` gets: every field set from this runtime."""
        from mirrorctl.ecosystems.base import FetchContext

        settings = self.settings
        return FetchContext(
            client=client, upstream=settings.upstream(ecosystem), progress=self.progress, store=self.store,
            fetch=settings.fetch,
        )
