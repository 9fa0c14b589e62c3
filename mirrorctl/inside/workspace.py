"""``mirrorctl workspace-config``: every ecosystem's client configuration, rendered into one folder.

The folder is what a workspace template (a container image, a VM image, a dev-container feature) copies to
``--install-dir`` and loads::

    out/pip.conf  out/uv.toml  ...   each ecosystem's files (names chosen by the ecosystem)
    out/mirrorctl.env                KEY=VALUE lines: `set -a; . mirrorctl.env; set +a`, docker --env-file,
                                     or systemd EnvironmentFile=
    out/README.txt                   how to use them, one line per ecosystem (and each one left out, and why)

Values in mirrorctl.env are restricted to characters that need no quoting, so the same file means the same
thing to sh, docker and systemd.

An ecosystem whose served content does not work yet (``Ecosystem.serve_problems``: apt packages served but no
archive key) is left out, and the others are still written: the result names it as skipped with the problem and
its fix, and the CLI exits 3 (docs/workspace-templates.md), so a partial folder never passes for a whole one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from mirrorctl.ecosystems.base import INSTALL_DIR, Ecosystem, ServedContent, ServeProblem
from mirrorctl.errors import UserError
from mirrorctl.inside.store import atomic_write

ENV_FILE = "mirrorctl.env"
README_FILE = "README.txt"
DEFAULT_INSTALL_DIR = Path("/etc/mirrorctl")

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+=,~\[\]-]*$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # npm also reads lowercase npm_config_*
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def validate_mirror_url(url: str) -> str:
    """The mirror's base URL as clients should see it, without a trailing slash; UserError if unusable.

    Example: ``validate_mirror_url("http://pypi.mirror.internal:8080/")`` -> ``"http://pypi.mirror.internal:8080"``
    """
    where = f"--mirror-url {url!r}"
    if url != url.strip() or any(c.isspace() for c in url):
        raise UserError(f"{where}: contains whitespace", hint="pass the bare URL, e.g. http://mirror.internal:8080")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UserError(f"{where}: must be an http or https URL", hint="e.g. http://mirror.internal:8080")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UserError(
            f"{where}: carries credentials",
            hint="the generated files are copied into workspace images; keep credentials out of them",
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise UserError(f"{where}: has an invalid port") from None
    if not parts.hostname or not _valid_host(parts.hostname):
        raise UserError(f"{where}: has no valid host name", hint="e.g. http://mirror.internal:8080")
    if parts.query or parts.fragment or url.endswith(("?", "#")) or ";" in parts.path:
        raise UserError(
            f"{where}: has a query, fragment or parameters after the path",
            hint="pass only the mirror's base URL; mirrorctl adds /pypi/simple/ and the like",
        )
    path = parts.path.rstrip("/")
    segments = path.split("/")[1:]
    if any(not re.fullmatch(r"[A-Za-z0-9._~-]+", seg) or seg in (".", "..") for seg in segments):
        raise UserError(f"{where}: the path {parts.path!r} is not a plain path prefix")
    return f"{parts.scheme}://{parts.netloc}{path}"


def validate_endpoint(url: str, ecosystem: str) -> None:
    """A target's endpoint (e.g. a devpi ``/user/index/+simple/``) goes into client files as is: refuse
    credentials, whitespace and anything that would need quoting."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or not _SAFE_VALUE.match(url)
    ):
        raise UserError(
            f"{ecosystem} endpoint {url!r}: not a plain http(s) URL without credentials",
            hint="check the target's url and repositories in mirrorctl.toml",
        )


def _check_install_dir(install_dir: Path) -> str:
    text = str(install_dir)
    if not install_dir.is_absolute():
        raise UserError(
            f"--install-dir {text!r}: must be an absolute path",
            hint="it is where the workspace will find the files, e.g. /etc/mirrorctl",
        )
    if not _SAFE_VALUE.match(text):
        raise UserError(
            f"--install-dir {text!r}: contains characters that would need quoting in {ENV_FILE}",
            hint="use letters, digits and . _ - / only",
        )
    return text.rstrip("/") or "/"


def _relative_file(name: str, ecosystem: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts) or "\\" in name:
        raise UserError(f"ecosystem {ecosystem}: client config file {name!r} is not a plain relative path")
    if name in (ENV_FILE, README_FILE):
        raise UserError(f"ecosystem {ecosystem}: client config file {name!r} clashes with mirrorctl's own")
    return p


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """What ``render_workspace_config`` did: the files written, and each ecosystem left out with why."""

    written: list[Path]
    skipped: Mapping[str, tuple[ServeProblem, ...]] = field(default_factory=dict)


def render_workspace_config(
    mirror_url: str,
    out_dir: Path,
    ecosystems: Mapping[str, Ecosystem],
    install_dir: Path = DEFAULT_INSTALL_DIR,
    *,
    endpoints: Mapping[str, str] | None = None,
    content: ServedContent | None = None,
) -> WorkspaceConfig:
    """Write every ecosystem's client files, ``mirrorctl.env`` and ``README.txt`` into ``out_dir``.

    ``endpoints`` (ecosystem -> URL): content published to a target (devpi, Pulp); only those ecosystems are
    configured, each at its exact endpoint, and ``mirror_url`` is the target's URL.
    ``content``: the inside store's served content, for ecosystems whose config depends on it (apt's keyring).
    Served by ``mirrorctl serve`` (no ``endpoints``), an ecosystem whose ``serve_problems`` are not empty is
    skipped (``WorkspaceConfig.skipped``) and the others are written; README.txt names what was left out.
    Everything is rendered and checked before the first write; each file is written atomically.
    Example: ``render_workspace_config("http://mirror.internal:8080", Path("ws"), load_ecosystems())``
    """
    base = validate_mirror_url(mirror_url)
    if endpoints is not None:
        missing = sorted(set(endpoints) - set(ecosystems))
        if missing or not endpoints:
            raise UserError(f"no client configuration for {', '.join(missing) or 'any ecosystem'} on this target")
        ecosystems = {name: ecosystems[name] for name in endpoints}
        for name, url in endpoints.items():
            validate_endpoint(url, name)
    install = _check_install_dir(install_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder")

    files: dict[PurePosixPath, tuple[str, str]] = {}  # path -> (text, ecosystem)
    env: dict[str, tuple[str, str]] = {}  # key -> (value, ecosystem)
    usage: list[str] = []
    skipped: dict[str, tuple[ServeProblem, ...]] = {}
    for name in sorted(ecosystems):
        adapter = ecosystems[name]
        if content is not None and endpoints is None:
            # Clients would fail against what `mirrorctl serve` offers now (apt: no archive key, InRelease 503).
            # A target's endpoint is served (and signed) by the target: this host's problems do not apply.
            problems = tuple(adapter.serve_problems(content))
            if problems:
                skipped[name] = problems
                continue
        cfg = adapter.client_config(base, endpoint=endpoints[name] if endpoints else None, content=content)
        if not cfg.files and not cfg.env:
            continue  # nothing of this ecosystem is served (e.g. no apt content): nothing to configure
        for rel, text in cfg.files.items():
            p = _relative_file(rel, name)
            if p in files:
                raise UserError(f"ecosystems {files[p][1]} and {name} both write {rel}")
            files[p] = (text.replace(INSTALL_DIR, install), name)
        for key, raw in cfg.env.items():
            value = raw.replace(INSTALL_DIR, install)
            if not _ENV_KEY.match(key):
                raise UserError(f"ecosystem {name}: environment variable name {key!r} is not valid")
            if not _SAFE_VALUE.match(value):
                raise UserError(
                    f"ecosystem {name}: {key}={value!r} would need quoting in {ENV_FILE}",
                    hint="use a mirror URL and install dir made of letters, digits and . _ - / : only",
                )
            if key in env and env[key][0] != value:
                raise UserError(f"ecosystems {env[key][1]} and {name} set {key} differently")
            env[key] = (value, name)
        usage.append(f"{name}: {cfg.usage.replace(INSTALL_DIR, install)}")

    env_lines = [
        f"# Generated by `mirrorctl workspace-config` for {base}.",
        f"# Load with: set -a; . {install}/{ENV_FILE}; set +a",
        "# (or docker --env-file, or systemd EnvironmentFile=).",
        "# Empty values are deliberate: they clear inherited settings that would add other package sources.",
    ]
    for eco in sorted({e for _, e in env.values()}):
        env_lines.append(f"# {eco}")
        env_lines += [f"{k}={v}" for k, (v, e) in sorted(env.items()) if e == eco]
    readme = [
        f"Client configuration for the mirror at {base}, generated by `mirrorctl workspace-config`.",
        f"Copy this folder to {install} in the workspace image and load {install}/{ENV_FILE}"
        " into the environment.",
        *usage,
        *(skipped_line(p) for ps in skipped.values() for p in ps),
    ]

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for rel_path, (text, _) in sorted(files.items()):
        atomic_write(out_dir / rel_path, text.encode())
        written.append(out_dir / rel_path)
    atomic_write(out_dir / ENV_FILE, ("\n".join(env_lines) + "\n").encode())
    atomic_write(out_dir / README_FILE, ("\n".join(readme) + "\n").encode())
    written += [out_dir / ENV_FILE, out_dir / README_FILE]
    return WorkspaceConfig(written, skipped)


def usage_line(out_dir: Path, install_dir: Path = DEFAULT_INSTALL_DIR) -> str:
    """The one line ``workspace-config`` prints: how a workspace template uses the folder."""
    return (
        f"copy {out_dir}/ to {install_dir} in the workspace image, then load the environment: "
        f"set -a; . {install_dir}/{ENV_FILE}; set +a"
    )


def skipped_line(problem: ServeProblem, config: Path | None = None) -> str:
    """How a left-out ecosystem is named (README.txt, the CLI's warning): ``apt: NOT CONFIGURED: <problem>;
    fix: run `mirrorctl archive-key generate` on the mirror host, then run workspace-config again``."""
    command = problem.command(config)
    fix = f"; fix: run `{command}` on the mirror host" if command else ""
    hint = f" ({problem.hint})" if problem.hint else ""
    return f"{problem.ecosystem}: NOT CONFIGURED: {problem.problem}{fix}{hint}, then run workspace-config again"
