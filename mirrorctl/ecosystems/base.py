"""The ecosystem adapter Protocol: what every ecosystem (PyPI, npm, Go, Maven, apt, editor extensions,
model weights) provides, and nothing more. Adapters never import each other, the CLI or the server core.

The four parts, in the order the workflow uses them:

1. ``parse_profile`` + ``resolve``: a profile section -> exact, hashed artifacts (the lock), per target.
2. ``fetch_plan``: locked artifacts -> URLs on the configured upstream (the lock names no host).
3. ``serve_app``: an ASGI app, mounted at ``/<name>``, that serves the current view the way the real client
   expects (PyPI simple API, npm packuments, a GOPROXY tree, a Maven layout, a signed apt repository, ...).
4. ``client_config``: the files and environment that make the real client resolve only from the mirror.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mirrorctl.config import FetchSettings, Upstream
from mirrorctl.errors import UserError
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import Progress
from mirrorctl.store import Store

if TYPE_CHECKING:  # keep adapter discovery cheap: the HTTP stack loads only when something fetches
    import httpx

ENTRY_POINT_GROUP = "mirrorctl.ecosystems.v1"

# An ASGI application; kept structural so this module does not depend on the server framework.
ASGIApp = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Names a place in a profile for error messages: ``profiles/web.toml: pypi.requirements[2] (line 7)``."""

    path: Path
    field: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.field}" + (f" (line {self.line})" if self.line else "")


class ProfileSource(Protocol):
    """What an adapter gets to name fields of the profile it parses."""

    path: Path

    def ref(self, field: str, index: int | None = None) -> FieldRef: ...


@dataclass(frozen=True, slots=True)
class ResolveContext:
    """What ``resolve`` gets, built from the invocation's runtime (``Runtime.resolve_context``): the HTTP
    client, the configured upstream, progress, the profile's name, the store (where an adapter may keep caches
    and files it had to download whole, verified, while resolving) and ``[fetch]`` (how many requests it may
    have in flight, how often to retry)."""

    client: httpx.AsyncClient
    upstream: Upstream
    progress: Progress
    profile_name: str
    store: Store
    fetch: FetchSettings
    # Optional (``mirrorctl lock --snapshot``): an adapter may hand each file it pins for a target to this
    # callable, on the event loop thread, so the download starts while resolution goes on. Speculative: a
    # file later dropped is a harmless extra blob; the snapshot after the lock still checks every locked one.
    prefetch: Callable[[FetchItem], None] | None = None


@dataclass(frozen=True, slots=True)
class FetchContext:
    """What ``fetch_plan`` gets (``Runtime.fetch_context``): the store holds the caches the adapter keeps
    (e.g. where lock saw each file); ``fetch`` says how often to retry."""

    client: httpx.AsyncClient
    upstream: Upstream
    progress: Progress
    store: Store
    fetch: FetchSettings


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One file to download: where from (resolved against the configured upstream), and what it must be."""

    url: str
    filename: str
    size: int
    sha256: str
    label: str  # names the artifact in messages, e.g. "pypi requests 2.32.3 (requests-2.32.3-py3-none-any.whl)"
    extra_hashes: Mapping[str, str] = field(default_factory=dict)  # e.g. {"sha512": "<hex>"} checked too


class ServedView(Protocol):
    """The content a server sees at one moment: immutable; replaced as a whole when an import commits."""

    view_id: str

    def artifacts(self, ecosystem: str) -> Sequence[Artifact]: ...
    def blob_path(self, sha256: str) -> Path: ...


class ServedContent(Protocol):
    def current(self) -> ServedView | None:
        """The view being served now (None before the first import). Cheap; call it per request."""
        ...

    def keys_dir(self) -> Path:
        """The inside's own serving keys (e.g. ``<store>/keys/apt`` for the apt archive key); never carried."""
        ...

    def options(self, ecosystem: str) -> Mapping[str, Any]:
        """The ``[serve.<ecosystem>]`` table of mirrorctl.toml (empty when absent), for ``serve_app`` to validate
        when it is called (so a bad value stops ``mirrorctl serve`` at start, naming the field)."""
        ...


# In ClientConfig env values (and file texts), stands for the folder where the workspace installs the files
# (``mirrorctl workspace-config --install-dir``), e.g. ``{"PIP_CONFIG_FILE": INSTALL_DIR + "/pip.conf"}``.
INSTALL_DIR = "{install_dir}"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Files (relative path -> text), environment variables, and one line on how a template uses them.

    ``INSTALL_DIR`` in an env value or a file is replaced by the folder the files are installed into."""

    files: Mapping[str, str]
    env: Mapping[str, str]
    usage: str


@dataclass(frozen=True, slots=True)
class DiscoveredUpstream:
    url: str
    source: str  # where it was found, e.g. "pip config (global.index-url)"
    keyring: str | None = None  # apt: the keyring the client trusts for it (Signed-By), written as upstreams.*.keyring


@runtime_checkable
class Ecosystem(Protocol):
    name: str

    def parse_profile(self, table: Mapping[str, Any], source: ProfileSource) -> Any:
        """Validate a profile section (``[pypi]``, ...); raise ProfileError naming the field. Returns a spec."""
        ...

    async def resolve(self, spec: Any, ctx: ResolveContext) -> list[Artifact]:
        """The full closure for every target the spec declares; deterministic; raises ResolutionError."""
        ...

    def check_lock(self, spec: Any, artifacts: Sequence[Artifact], *, targets: Collection[str]) -> list[str]:
        """Problems that make a lock no longer match its profile (empty when it still does).

        ``targets``: the ecosystem's targets the lock records as resolved (its ``targets`` list, without the
        ``<ecosystem>:`` prefix). A recorded target that no artifact names is an empty closure (every
        requirement's marker excludes it, say): a valid result, not a missing target."""
        ...

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        """Where each locked blob (artifact and companions) is downloaded from on the configured upstream."""
        ...

    def validate_artifact(self, artifact: Artifact) -> None:
        """Refuse names and versions outside the ecosystem's grammar (raise BundleRefused or ProfileError)."""
        ...

    def serve_app(self, content: ServedContent) -> ASGIApp:
        """An ASGI app mounted at ``/<name>`` that serves the current view to the real client."""
        ...

    def client_config(
        self, mirror_url: str, *, endpoint: str | None = None, content: ServedContent | None = None
    ) -> ClientConfig:
        """Config that makes the real client resolve only from the mirror: ``mirror_url`` + ``/<name>`` as laid
        out by ``serve_app``, or, for content published elsewhere (Pulp, devpi), the exact ``endpoint`` the
        client must use (for PyPI, the simple index URL).

        ``content``: the inside store's current content, when known, for ecosystems whose config depends on
        what is served or on the inside's keys (apt: suites, components, architectures, the archive keyring).
        An ecosystem with nothing served may return an empty ClientConfig."""
        ...

    def discover_upstream(self, environ: Mapping[str, str]) -> DiscoveredUpstream | None:
        """The upstream the local client is configured to use (for ``mirrorctl init``), or None."""
        ...


def load_ecosystems() -> dict[str, Ecosystem]:
    """All registered ecosystems by name; refuses two registrations under one name."""
    found: dict[str, Ecosystem] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found:
            raise UserError(f"two ecosystem plugins are registered as {ep.name!r} ({ep.value})")
        adapter = ep.load()()
        if adapter.name != ep.name:
            raise UserError(f"ecosystem plugin {ep.value} calls itself {adapter.name!r}, registered as {ep.name!r}")
        found[ep.name] = adapter
    return found
