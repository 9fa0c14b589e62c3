"""``mirrorctl.toml`` -> frozen :class:`Settings`, passed explicitly to every service.

Example::

    [store]
    path = ".mirrorctl/store"          # relative paths are relative to this file

    [upstreams.pypi]
    url = "https://pypi.mirror.internal/simple/"
    username-env = "PYPI_USER"         # credentials only by environment-variable reference
    password-env = "PYPI_PASSWORD"

    [upstreams.apt]                    # keys beyond url and credentials are the ecosystem adapter's own
    url = "http://deb.mirror.internal/debian/"
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

    [fetch]
    concurrency = 16
    retries = 4                        # 0-10 more attempts for a transient failure (429, 5xx, a dropped connection)
    timeout = 60

    [signing]
    key = "keys/mirrorctl.key"         # outside: the private key that signs bundles

    [trust]
    keys = ["keys/mirrorctl.key.pub"]      # inside: public keys whose bundles are imported

    [targets.pulp]                     # inside: internal mirrors that `mirrorctl publish --to pulp` fills
    kind = "pulp"
    url = "http://pulp.internal:24817"
    content-url = "http://pulp.internal:24816"
    username-env = "PULP_USERNAME"
    password-env = "PULP_PASSWORD"
    repositories = { pypi = "team-pypi" }
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from mirrorctl.errors import UserError

CONFIG_ENV = "MIRRORCTL_CONFIG"
DEFAULT_CONFIG_NAME = "mirrorctl.toml"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where one ecosystem's artifacts come from, outside. Credentials are names of environment variables."""

    ecosystem: str
    url: str
    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    # What the ecosystem adapter's parse_upstream made of the table's other keys (None: it has none); only
    # that adapter reads it (ecosystems.base.own_options).
    options: object = None

    def auth(self, environ: Mapping[str, str]) -> tuple[str, str] | None:
        if self.username_env and self.password_env:
            user, password = environ.get(self.username_env), environ.get(self.password_env)
            if user is None or password is None:
                raise UserError(
                    f"upstreams.{self.ecosystem}: environment variable "
                    f"{self.username_env if user is None else self.password_env} is not set",
                    hint="export it, or remove username-env/password-env from mirrorctl.toml",
                )
            return (user, password)
        return None

    def token(self, environ: Mapping[str, str]) -> str | None:
        if not self.token_env:
            return None
        value = environ.get(self.token_env)
        if value is None:
            raise UserError(
                f"upstreams.{self.ecosystem}: environment variable {self.token_env} is not set",
                hint="export it, or remove token-env from mirrorctl.toml",
            )
        return value


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """A publish target inside: a Pulp 3 or devpi server. Credentials are names of environment variables.

    ``repositories`` maps an ecosystem to the target's name for it: a Pulp repository/distribution base name,
    or a devpi ``user/index``.
    """

    name: str
    kind: str
    url: str
    username_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    content_url: str | None = None  # Pulp: the content app's origin, when it differs from url
    repositories: Mapping[str, str] = field(default_factory=dict)
    # The table's other keys, as written: the target kind checks them when it is made (Pulp: its publish
    # strategies' settings, e.g. the pulp_deb signing service), naming ``config_path`` and the key.
    options: Mapping[str, object] = field(default_factory=dict)
    config_path: Path | None = None

    def credentials(self, environ: Mapping[str, str]) -> tuple[str, str] | None:
        return Upstream(f"targets.{self.name}", self.url, self.username_env, self.password_env).auth(environ)

    def check_options(self, allowed: Iterable[str]) -> ConfigRef:
        """Refuse a key of the table that neither the core nor the target kind knows (``allowed``: the kind's
        own keys), naming the file and key; returns the table's ConfigRef for checking the values."""
        ref = ConfigRef(self.config_path or Path(DEFAULT_CONFIG_NAME), f"targets.{self.name}")
        _no_unknown({**self.options}, set(allowed) | _TARGET_KEYS, ref.path, f"{ref.table}.")
        return ref


# [fetch] retries above this is refused (mirrorctl.net.RetryPolicy never does more).
FETCH_MAX_RETRIES = 10


@dataclass(frozen=True, slots=True)
class FetchSettings:
    concurrency: int = 16
    retries: int = 4
    timeout: float = 60.0
    # HTTP/1.1 by default: with keep-alive and a pool of `concurrency` connections it was faster here than
    # the pure-Python HTTP/2 stack, which spent much CPU on large index pages.
    http2: bool = False


LOCK_MAX_ROUNDS, LOCK_MAX_SECONDS = 20000, 600


@dataclass(frozen=True, slots=True)
class LockSettings:
    """``[lock]``: how long a resolver may search before it stops and names what it was going back on.

    ``max_rounds``: rounds of the backtracking search per target (a round pins or undoes one version);
    ``max_seconds``: wall time per target, 0 for no time bound. A lock that resolves without
    conflicts needs about one round per locked project, so the default leaves room for real backtracking."""

    max_rounds: int = LOCK_MAX_ROUNDS
    max_seconds: int = LOCK_MAX_SECONDS


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a service needs to know about the installation; built once, passed down explicitly."""

    config_path: Path | None
    store_path: Path
    profiles_dir: Path
    upstreams: Mapping[str, Upstream] = field(default_factory=dict)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    lock: LockSettings = field(default_factory=LockSettings)
    signing_key: Path | None = None
    trusted_keys: tuple[Path, ...] = ()
    serve_host: str = "127.0.0.1"
    serve_port: int = 8080
    # [serve] front: a front server mirrorctl serve starts for package files ("nginx"), None for none; and
    # [serve] nginx: the nginx binary to start (None: found on PATH).
    serve_front: str | None = None
    serve_nginx: Path | None = None
    # [serve] default-channel: the channel the plain layout (/<ecosystem>/...) serves; None: `current`
    # (mirrorctl/inside/channels.py plain_channel).
    serve_default_channel: str | None = None
    targets: Mapping[str, TargetSettings] = field(default_factory=dict)
    # [serve.<ecosystem>] tables as that ecosystem's adapter parsed them (parse_serve_options); its server reads
    # them back through ServedContent.options.
    serve_options: Mapping[str, object] = field(default_factory=dict)

    def target(self, name: str) -> TargetSettings:
        try:
            return self.targets[name]
        except KeyError:
            where = self.config_path or DEFAULT_CONFIG_NAME
            known = ", ".join(sorted(self.targets)) or "none"
            raise UserError(
                f"{where}: no target named {name!r} (configured: {known})",
                hint=f'add [targets.{name}] with kind = "pulp" or "devpi", url and repositories',
            ) from None

    def upstream(self, ecosystem: str) -> Upstream:
        try:
            return self.upstreams[ecosystem]
        except KeyError:
            where = self.config_path or DEFAULT_CONFIG_NAME
            raise UserError(
                f"{where}: no upstream configured for {ecosystem} ([upstreams.{ecosystem}] url = ...)",
                hint="run `mirrorctl init` to take it from the local client's settings, or add it by hand",
            ) from None


SERVE_FRONTS = ("nginx",)  # [serve] front / serve --front: the front servers mirrorctl serve can start
_TOP_KEYS = {"store", "profiles", "upstreams", "fetch", "lock", "signing", "trust", "serve", "targets"}
_TARGET_KEYS = {"kind", "url", "username-env", "password-env", "token-env", "content-url", "repositories"}
TARGET_KINDS = ("pulp", "devpi")
COMMON_UPSTREAM_KEYS = frozenset({"url", "username-env", "password-env", "token-env"})


@dataclass(frozen=True, slots=True)
class ConfigRef:
    """One table of mirrorctl.toml, for the code that checks it (an ecosystem adapter, a target kind): names the
    file and field in errors (``mirrorctl.toml: upstreams.apt.keyring must be ...``) and resolves paths the way
    every other path of the file is resolved (relative to the file, ``~`` expanded)."""

    path: Path  # the settings file
    table: str  # "upstreams.apt", "serve.apt", "targets.pulp"
    common_upstream_keys: frozenset[str] = COMMON_UPSTREAM_KEYS

    def field(self, key: str) -> str:
        return f"{self.table}.{key}"

    def error(self, key: str, problem: str, *, hint: str | None = None) -> UserError:
        """``<file>: <table>.<key> <problem>``, e.g. ``ref.error("valid-days", "must be >= 1, got 0")``."""
        return UserError(f"{self.path}: {self.table}.{key} {problem}", hint=hint)

    def no_unknown(self, table: Mapping[str, object], allowed: Iterable[str]) -> None:
        """Refuse a key outside ``allowed``, naming it and listing the known ones; returns None."""
        _no_unknown(table, set(allowed), self.path, f"{self.table}.")

    def path_value(self, value: object, key: str) -> Path:
        """A path setting: a non-empty string, relative to the settings file's folder."""
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string (a path)")
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.path.parent.resolve() / p


class SettingsParser(Protocol):
    """What checks the ecosystem tables of mirrorctl.toml: an ecosystem adapter (ecosystems/base.py
    ``Ecosystem.parse_upstream`` / ``parse_serve_options``), by the ecosystem's name."""

    def parse_upstream(self, table: Mapping[str, object], ref: ConfigRef) -> object: ...
    def parse_serve_options(self, table: Mapping[str, object], ref: ConfigRef) -> object: ...


def find_config_path(explicit: Path | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to use: ``--config``, then ``$MIRRORCTL_CONFIG``, then ``./mirrorctl.toml`` if present."""
    if explicit is not None:
        return explicit
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    candidate = cwd / DEFAULT_CONFIG_NAME
    return candidate if candidate.exists() else None


def load_settings(
    path: Path | None, *, ecosystems: Mapping[str, SettingsParser], cwd: Path | None = None
) -> Settings:
    """Read and validate ``mirrorctl.toml``; with no file, defaults relative to ``cwd``. ``ecosystems`` (the
    installed adapters, by name) check their own tables.

    Example: ``load_settings(Path("mirrorctl.toml"), ecosystems=runtime.ecosystems)``"""
    base = cwd or Path.cwd()
    if path is None:
        return Settings(None, base / ".mirrorctl" / "store", base / "profiles")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: configuration file not found", hint="run `mirrorctl init` to write one") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc
    return parse_settings(data, path, ecosystems)


def parse_settings(data: Mapping[str, Any], path: Path, ecosystems: Mapping[str, SettingsParser]) -> Settings:
    """``ecosystems``: as for :func:`load_settings`."""
    root = path.parent.resolve()
    _no_unknown(data, _TOP_KEYS, path, "")

    def table(name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise UserError(f"{path}: [{name}] must be a table")
        return value

    def rel(value: Any, field_name: str) -> Path:
        if not isinstance(value, str) or not value:
            raise UserError(f"{path}: {field_name} must be a non-empty string (a path)")
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else root / p

    store = table("store")
    _no_unknown(store, {"path"}, path, "store.")
    profiles = table("profiles")
    _no_unknown(profiles, {"dir"}, path, "profiles.")

    upstreams: dict[str, Upstream] = {}
    for eco, up in table("upstreams").items():
        if not isinstance(up, dict):
            raise UserError(f"{path}: [upstreams.{eco}] must be a table")
        ref = ConfigRef(path, f"upstreams.{eco}")
        adapter = ecosystems.get(eco)
        if adapter is None:
            _no_unknown(up, set(COMMON_UPSTREAM_KEYS), path, f"upstreams.{eco}.")
            options = None
        else:
            options = adapter.parse_upstream(up, ref)
        url = up.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https", "file"):
            raise UserError(f"{path}: upstreams.{eco}.url must be an http(s) or file URL, got {url!r}")
        if urlsplit(url).username or urlsplit(url).password:
            raise UserError(
                f"{path}: upstreams.{eco}.url carries credentials",
                hint="remove them from the URL and use username-env/password-env or token-env",
            )
        for key in ("username-env", "password-env", "token-env"):
            if key in up and not isinstance(up[key], str):
                raise UserError(f"{path}: upstreams.{eco}.{key} must be the name of an environment variable")
        upstreams[eco] = Upstream(
            eco, url, up.get("username-env"), up.get("password-env"), up.get("token-env"), options=options
        )

    fetch_t = table("fetch")
    _no_unknown(fetch_t, {"concurrency", "retries", "timeout", "http2"}, path, "fetch.")
    if not isinstance(fetch_t.get("http2", False), bool):
        raise UserError(f"{path}: fetch.http2 must be true or false")
    fetch = FetchSettings(
        concurrency=_int(fetch_t, "concurrency", 16, path, "fetch.", minimum=1),
        retries=_int(fetch_t, "retries", 4, path, "fetch.", minimum=0, maximum=FETCH_MAX_RETRIES),
        timeout=float(_int(fetch_t, "timeout", 60, path, "fetch.", minimum=1)),
        http2=bool(fetch_t.get("http2", False)),
    )
    lock_t = table("lock")
    _no_unknown(lock_t, {"max-rounds", "max-seconds"}, path, "lock.")
    lock = LockSettings(
        max_rounds=_int(lock_t, "max-rounds", LOCK_MAX_ROUNDS, path, "lock.", minimum=100),
        max_seconds=_int(lock_t, "max-seconds", LOCK_MAX_SECONDS, path, "lock.", minimum=0),
    )
    signing = table("signing")
    _no_unknown(signing, {"key"}, path, "signing.")
    trust = table("trust")
    _no_unknown(trust, {"keys"}, path, "trust.")
    keys = trust.get("keys", [])
    if not isinstance(keys, list):
        raise UserError(f"{path}: trust.keys must be a list of paths to public keys")
    serve = table("serve")
    serve_tables = {k: v for k, v in serve.items() if isinstance(v, dict)}  # [serve.<ecosystem>]
    serve_keys = {"host", "port", "front", "nginx", "default-channel"}
    _no_unknown({k: v for k, v in serve.items() if k not in serve_tables}, serve_keys, path, "serve.")
    front = serve.get("front")
    if front is not None and front not in SERVE_FRONTS:
        raise UserError(
            f"{path}: serve.front must be one of {', '.join(repr(f) for f in SERVE_FRONTS)}, got {front!r}",
            hint='front = "nginx" hands package files to nginx; leave it out for the embedded server alone',
        )
    serve_options: dict[str, object] = {}
    for eco, table_ in serve_tables.items():
        adapter = ecosystems.get(eco)
        if adapter is None:
            raise UserError(
                f"{path}: [serve.{eco}]: no ecosystem {eco!r} is installed",
                hint=f"installed ecosystems: {', '.join(sorted(ecosystems)) or 'none'}",
            )
        serve_options[eco] = adapter.parse_serve_options(table_, ConfigRef(path, f"serve.{eco}"))
    targets = {name: _parse_target(name, t, path) for name, t in table("targets").items()}
    default_channel = _default_channel(serve, path)

    return Settings(
        config_path=path,
        store_path=rel(store.get("path", ".mirrorctl/store"), "store.path"),
        profiles_dir=rel(profiles.get("dir", "profiles"), "profiles.dir"),
        upstreams=upstreams,
        fetch=fetch,
        lock=lock,
        signing_key=rel(signing["key"], "signing.key") if "key" in signing else None,
        trusted_keys=tuple(rel(k, "trust.keys") for k in keys),
        serve_host=str(serve.get("host", "127.0.0.1")),
        serve_port=_int(serve, "port", 8080, path, "serve.", minimum=1),
        serve_options=serve_options,
        serve_front=front,
        serve_nginx=rel(serve["nginx"], "serve.nginx") if "nginx" in serve else None,
        serve_default_channel=default_channel,
        targets=targets,
    )


def _default_channel(serve: Mapping[str, Any], path: Path) -> str | None:
    if "default-channel" not in serve:
        return None
    from mirrorctl.inside.channels import validate_channel_name  # the one rule for channel names

    value = serve["default-channel"]
    if not isinstance(value, str):
        raise UserError(
            f"{path}: serve.default-channel must be a channel name, got {value!r}",
            hint='e.g. default-channel = "prod" under [serve]',
        )
    try:
        return validate_channel_name(value)
    except UserError as exc:
        raise UserError(f"{path}: serve.default-channel: {exc.message}", hint=exc.hint) from None


def _parse_target(name: str, t: Any, path: Path) -> TargetSettings:
    where = f"targets.{name}"
    if not isinstance(t, dict):
        raise UserError(f"{path}: [{where}] must be a table")
    kind = t.get("kind")
    if kind not in TARGET_KINDS:
        raise UserError(f"{path}: {where}.kind must be one of {', '.join(TARGET_KINDS)}, got {kind!r}")
    urls: dict[str, str | None] = {}
    for key in ("url", "content-url"):
        value = t.get(key)
        if value is None and key == "content-url":
            urls[key] = None
            continue
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"{path}: {where}.{key} must be an http(s) URL, got {value!r}")
        if parts.username or parts.password:
            raise UserError(
                f"{path}: {where}.{key} carries credentials",
                hint="remove them from the URL and use username-env/password-env",
            )
        urls[key] = value
    for key in ("username-env", "password-env", "token-env"):
        if key in t and not isinstance(t[key], str):
            raise UserError(f"{path}: {where}.{key} must be the name of an environment variable")
    repos = t.get("repositories", {})
    if not isinstance(repos, dict) or not all(isinstance(v, str) and v for v in repos.values()):
        raise UserError(f'{path}: {where}.repositories must be a table like {{ pypi = "team-pypi" }}')
    return TargetSettings(
        name=name,
        kind=kind,
        url=str(urls["url"]),
        username_env=t.get("username-env"),
        password_env=t.get("password-env"),
        token_env=t.get("token-env"),
        content_url=urls["content-url"],
        repositories=dict(repos),
        options={k: v for k, v in t.items() if k not in _TARGET_KEYS},
        config_path=path,
    )


def _no_unknown(table: Mapping[str, Any], allowed: set[str], path: Path, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise UserError(
                f"{path}: unknown setting {prefix}{key}",
                hint=f"known settings here: {', '.join(sorted(prefix + a for a in allowed))}",
            )


def _int(
    table: Mapping[str, Any], key: str, default: int, path: Path, prefix: str, *, minimum: int,
    maximum: int | None = None,
) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserError(f"{path}: {prefix}{key} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise UserError(
            f"{path}: {prefix}{key} must be at most {maximum}, got {value!r}",
            hint=f"past {maximum} retries an upstream is down, not flaky; fix the upstream or raise [fetch] timeout",
        )
    return value
