"""The ecosystem adapter Protocol: what every ecosystem (PyPI, npm, Go, Maven, apt, editor extensions,
model weights) provides, and nothing more. Adapters never import each other, the CLI or the server core.

The four parts, in the order the workflow uses them:

1. ``parse_profile`` + ``resolve``: a profile section -> exact, hashed artifacts (the lock), per target.
2. ``fetch_plan``: locked artifacts -> URLs on the configured upstream (the lock names no host).
3. ``serve_app``: an ASGI app, mounted at ``/<name>``, that serves the current view the way the real client
   expects (PyPI simple API, npm packuments, a GOPROXY tree, a Maven layout, a signed apt repository, ...);
   ``serve_problems`` says what on the mirror host keeps that from working (apt: no archive key yet).
4. ``client_config``: the files and environment that make the real client resolve only from the mirror.

Beside them, everything else the core needs to know about an ecosystem is asked here, never spelled out in
the core: how versions order and names fold (``diff``), the package URL (the SBOM), the keys of its
``[upstreams.<name>]`` and ``[serve.<name>]`` tables, the local client's settings (``init``), and the files it
serves as a static tree (``static_layout``, which publishing through a plain file repository uses). Commands
an ecosystem adds to the CLI are data registered as entry points of their own (ecosystems/commands.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from mirrorctl.config import ConfigRef, FetchSettings, LockSettings, Upstream
from mirrorctl.errors import UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, LegacyRecord
from mirrorctl.progress import Progress

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


class ProfileSpec(Protocol):
    """What the core uses of the spec an adapter parsed from a profile section; everything else in it is the
    adapter's own. The core hands a spec back only to the adapter that made it (see :func:`own_spec`)."""

    def target_ids(self) -> Sequence[str]:
        """The targets the section declares (``py3.12-manylinux_2_28_x86_64``, ``linux-x64``, ``amd64``), in the
        order the lock lists them; a target whose closure is empty is still declared."""
        ...


SpecT = TypeVar("SpecT", bound=ProfileSpec)


def own_spec(spec: ProfileSpec, kind: type[SpecT], ecosystem: str) -> SpecT:
    """``spec`` as the adapter's own type. The core only ever passes back what ``parse_profile`` returned, so a
    mismatch is a bug in the caller, not bad input."""
    if not isinstance(spec, kind):
        raise TypeError(f"{ecosystem}: given a {type(spec).__name__}, which its parse_profile did not make")
    return spec


OptionsT = TypeVar("OptionsT")


def own_options(options: object, kind: type[OptionsT], default: OptionsT) -> OptionsT:
    """Parsed settings (``Upstream.options``, ``ServedContent.options``) as the adapter's own type: what its
    ``parse_upstream`` / ``parse_serve_options`` returned, or ``default`` when the table was absent."""
    return options if isinstance(options, kind) else default


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
    # ``[lock]``: how long a resolver that backtracks may search before it stops, naming what it went back on.
    lock: LockSettings = field(default_factory=LockSettings)


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

    @property
    def view_id(self) -> str: ...

    @property
    def created(self) -> str:
        """When the view was made (ISO 8601 UTC, ``2026-01-31T12:00:00Z``); the same for every request."""
        ...

    def artifacts(self, ecosystem: str) -> Sequence[Artifact]: ...
    def blob_path(self, sha256: str) -> Path: ...

    def cache_dir(self, ecosystem: str, purpose: str) -> Path | None:
        """A folder where ``ecosystem`` may keep disposable data derived from blobs (``<store>/cache/
        <ecosystem>-<purpose>``, e.g. ``npm-manifests``); None where nothing may be written."""
        ...


@dataclass(frozen=True, slots=True)
class StoredSet:
    """A :class:`ServedView` over a chosen set of artifacts in a store: what a publish sends (the Pulp target
    hands it to ``static_layout``)."""

    store: Store
    view_id: str
    created: str
    chosen: Mapping[str, Sequence[Artifact]]  # ecosystem -> its artifacts

    def artifacts(self, ecosystem: str) -> Sequence[Artifact]:
        return self.chosen.get(ecosystem, ())

    def blob_path(self, sha256: str) -> Path:
        return self.store.blob_path(sha256)

    def cache_dir(self, ecosystem: str, purpose: str) -> Path | None:
        return self.store.root / "cache" / f"{ecosystem}-{purpose}"


class ServedContent(Protocol):
    def current(self) -> ServedView | None:
        """The view being served now (None before the first import). Cheap; call it per request."""
        ...

    def loaded(self) -> ServedView | None:
        """The view being served now if it is already parsed, else None (nothing imported, or a switch since):
        one readlink, so a handler may call it on the event loop and go to a worker thread for
        :meth:`current` only when it gets None."""
        ...

    def keys_dir(self) -> Path:
        """The inside's own serving keys (e.g. ``<store>/keys/apt`` for the apt archive key); never carried."""
        ...

    def options(self, ecosystem: str) -> object:
        """What the adapter's ``parse_serve_options`` made of ``[serve.<ecosystem>]`` when mirrorctl.toml was
        read (a bad value stops every command there, naming the file and field); None when the table is absent.
        Read it with :func:`own_options`."""
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
    # More keys of [upstreams.<name>] the client's settings give (apt: {"keyring": "<its Signed-By>", "archives":
    # {...}}); written by ``mirrorctl init`` as they are (TOML values, tables too), so they must be keys
    # ``parse_upstream`` accepts.
    settings: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of a static layout: a blob of the view (``sha256``) or bytes the adapter generated (``data``).

    ``artifact`` is the locked artifact a blob file is (None for generated files)."""

    sha256: str
    size: int
    artifact: Artifact | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class ServeProblem:
    """Something that keeps clients from using what an ecosystem serves, found on the mirror host (apt: packages
    served but no archive key, so InRelease answers 503), with what fixes it. ``import`` and ``serve`` print it
    as a warning, ``/healthz`` answers ``degraded`` naming it, and ``workspace-config`` leaves the ecosystem out.

    ``fix``: the arguments of the mirrorctl command that fixes it on the mirror host (``("archive-key",
    "generate")``); empty when no command does. ``hint``: anything else worth saying (an alternative command)."""

    ecosystem: str
    problem: str
    fix: tuple[str, ...] = ()
    hint: str = ""

    def command(self, config: Path | None = None) -> str:
        """The fix as a person types it, with the ``--config`` the invocation was given:
        ``mirrorctl --config /srv/mirror/mirrorctl.toml archive-key generate``; "" when no command fixes it."""
        if not self.fix:
            return ""
        import shlex

        return shlex.join(["mirrorctl", *(["--config", str(config)] if config is not None else []), *self.fix])

    def line(self, config: Path | None = None) -> str:
        """One line for a person: ``apt: <problem>; fix: run `mirrorctl archive-key generate` on the mirror host``."""
        command = self.command(config)
        fix = f"; fix: run `{command}` on the mirror host" if command else ""
        return f"{self.ecosystem}: {self.problem}{fix}" + (f" ({self.hint})" if self.hint else "")


@runtime_checkable
class Ecosystem(Protocol):
    name: str

    # --- profile and lock (outside) ---------------------------------------------------------------------------

    def parse_profile(self, table: Mapping[str, Any], source: ProfileSource) -> ProfileSpec:
        """Validate a profile section (``[pypi]``, ...); raise ProfileError naming the field. Returns a spec."""
        ...

    async def resolve(self, spec: ProfileSpec, ctx: ResolveContext) -> list[Artifact]:
        """The full closure for every target the spec declares; deterministic; raises ResolutionError."""
        ...

    def check_lock(self, spec: ProfileSpec, artifacts: Sequence[Artifact], *, targets: Collection[str]) -> list[str]:
        """Problems that make a lock no longer match its profile (empty when it still does).

        ``targets``: the ecosystem's targets the lock records as resolved (its ``targets`` list, without the
        ``<ecosystem>:`` prefix). A recorded target that no artifact names is an empty closure (every
        requirement's marker excludes it, say): a valid result, not a missing target."""
        ...

    async def fetch_plan(self, artifacts: Sequence[Artifact], ctx: FetchContext) -> list[FetchItem]:
        """Where each locked blob (artifact and companions) is downloaded from on the configured upstream."""
        ...

    def validate_artifact(self, artifact: Artifact) -> None:
        """Refuse names and versions outside the ecosystem's grammar (raise BundleRefused or ProfileError),
        and a ``path`` that is not the one this ecosystem gives that artifact (it would be served elsewhere)."""
        ...

    def legacy_path(self, record: LegacyRecord) -> str:
        """The ``path`` of an artifact recorded before paths (lock-version 1, bundle format-version 1, an old
        view.json), from its v1 fields: the same path ``resolve`` gives it now. Raise ValueError or KeyError
        when the record cannot have one (the reader names the record)."""
        ...

    # --- what the core reports about artifacts --------------------------------------------------------------

    def compare_versions(self, a: str, b: str) -> int | None:
        """<0, 0 or >0 as the ecosystem's clients order ``a`` and ``b``; None when either is not a version of its
        grammar (``diff`` then says "changed" rather than guess up or down)."""
        ...

    def fold_name(self, name: str) -> str:
        """The spelling two names of one project share (PyPI: PEP 503 normalization; most: ``name``)."""
        ...

    def purl(self, artifact: Artifact) -> str:
        """The package URL (purl-spec) naming this exact file, e.g.
        ``pkg:pypi/requests@2.32.3?file_name=requests-2.32.3-py3-none-any.whl``: the SBOM's component id."""
        ...

    # --- mirrorctl.toml ---------------------------------------------------------------------------------------

    def parse_upstream(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        """Check ``[upstreams.<name>]`` beyond the keys every upstream has (``ref.common_upstream_keys``: url and
        credentials, which the core checks after this) and return the adapter's parsed extra settings, stored
        as ``Upstream.options`` (read back with :func:`own_options`); errors through ``ref`` name file and field.
        An adapter without extra keys returns ``ref.no_unknown(table, ref.common_upstream_keys)``."""
        ...

    def parse_serve_options(self, table: Mapping[str, object], ref: ConfigRef) -> object:
        """Check ``[serve.<name>]`` and return what ``serve_app`` reads through ``ServedContent.options``."""
        ...

    def discover_upstream(self, environ: Mapping[str, str]) -> DiscoveredUpstream | None:
        """The upstream the local client is configured to use (for ``mirrorctl init``), or None."""
        ...

    # --- inside -----------------------------------------------------------------------------------------------

    def serve_app(self, content: ServedContent) -> ASGIApp:
        """An ASGI app mounted at ``/<name>`` that serves the current view to the real client."""
        ...

    def serve_problems(self, content: ServedContent) -> Sequence[ServeProblem]:
        """What keeps clients from using what ``serve_app`` serves from ``content`` now (apt: packages in the
        view but no archive key in ``content.keys_dir()``); empty when nothing is wrong or nothing of this
        ecosystem is served. Cheap and without side effects: ``/healthz`` asks it on every probe (read a small
        file; start no process, write nothing)."""
        ...

    def static_layout(self, view: ServedView, base_url: str) -> Mapping[str, StaticFile] | None:
        """The ecosystem's repository as plain files: relative path -> file, for a server that can only serve
        static files (Pulp's pulp_file). ``base_url`` is where the tree will be served (ending in ``/``), for
        documents that must carry absolute links (npm's tarball URLs). Every path is a safe relative POSIX path.
        None when the ecosystem's clients cannot use a static tree (they need a server that answers queries)."""
        ...

    def served_blobs(self, view: ServedView) -> Mapping[str, StaticFile]:
        """Every URL path under ``/<name>/`` at which ``serve_app`` answers a GET with the bytes of one blob of
        ``view`` as they are (whatever the request's headers): path -> that blob (``sha256``, ``size``, the
        ``artifact``; never ``data``). PyPI's ``files/<sha256>/<file>`` and its ``.metadata``, npm's tarballs,
        apt's pool. ``mirrorctl serve --front nginx`` links exactly these into the view's file tree
        (mirrorctl/inside/filetree.py) and lets nginx send them; every other URL still reaches ``serve_app``.
        Every path is a safe relative POSIX path (``lockfile.check_path``); refuse (IntegrityError) a view whose
        records ``serve_app`` would refuse too."""
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


def package_url(purl_type: str, name: str, version: str, filename: str) -> str:
    """A purl naming one file, encoded the one way every adapter's ``purl`` uses:
    ``package_url("pypi", "requests", "2.32.3", "requests-2.32.3-py3-none-any.whl")`` ->
    ``pkg:pypi/requests@2.32.3?file_name=requests-2.32.3-py3-none-any.whl`` (a scope's ``/`` kept)."""
    from urllib.parse import quote

    return f"pkg:{purl_type}/{quote(name, safe='/')}@{quote(version, safe='')}?file_name={quote(filename, safe='')}"


def no_settings(table: Mapping[str, object], ref: ConfigRef) -> None:
    """``parse_upstream`` of an ecosystem whose upstream has only the common keys (url, credentials)."""
    ref.no_unknown(table, ref.common_upstream_keys)


def no_serve_options(table: Mapping[str, object], ref: ConfigRef) -> None:
    """``parse_serve_options`` of an ecosystem whose server has no settings."""
    ref.no_unknown(table, ())


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
