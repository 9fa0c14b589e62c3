"""``mirrorctl init``: write a mirrorctl.toml whose upstreams come from the local clients' own settings."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from mirrorctl.config import parse_settings
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import UserError
from mirrorctl.inside.store import atomic_write


@dataclass(frozen=True, slots=True)
class InitResult:
    path: Path
    upstreams: Mapping[str, tuple[str, str]]  # ecosystem -> (url, where it came from)
    missing: tuple[str, ...]  # ecosystems for which no upstream was found


def init_config(
    path: Path,
    ecosystems: Mapping[str, Ecosystem],
    environ: Mapping[str, str],
    *,
    overrides: Mapping[str, str] | None = None,
    store: str = ".mirrorctl/store",
    signing_key: str | None = "keys/mirrorctl.key",
    trusted_keys: tuple[str, ...] = ("keys/mirrorctl.key.pub",),
    force: bool = False,
) -> InitResult:
    """Write ``path``; refuses to overwrite unless ``force``. Credentials found in a client's URL are never
    written: the URL is stripped and the user is told to reference environment variables instead."""
    if path.exists() and not force:
        raise UserError(f"{path}: already exists", hint="pass --force to overwrite it, or edit it by hand")
    upstreams: dict[str, tuple[str, str]] = {}
    more: dict[str, Mapping[str, object]] = {}  # other keys the client's settings give (DiscoveredUpstream.settings)
    missing: list[str] = []
    for name, eco in sorted(ecosystems.items()):
        if overrides and name in overrides:
            upstreams[name] = (overrides[name], "--upstream")
            continue
        found = eco.discover_upstream(environ)
        if found is None:
            missing.append(name)
        else:
            upstreams[name] = (found.url, found.source)
            more[name] = found.settings
    for name in overrides or {}:
        if name not in ecosystems:
            raise UserError(f"--upstream {name}=...: unknown ecosystem", hint=f"known: {', '.join(sorted(ecosystems))}")

    doc: dict[str, object] = {"store": {"path": store}, "profiles": {"dir": "profiles"}}
    ups: dict[str, dict[str, object]] = {}
    for name, (url, _source) in upstreams.items():
        parts = urlsplit(url)
        if parts.username or parts.password:
            # Never persist a secret: strip it and point at environment variables instead.
            host = parts.hostname or ""
            if parts.port:
                host += f":{parts.port}"
            url = urlunsplit(parts._replace(netloc=host))
            ups[name] = {
                "url": url,
                "username-env": f"{name.upper()}_USERNAME",
                "password-env": f"{name.upper()}_PASSWORD",
            }
        else:
            ups[name] = {"url": url}
        ups[name].update(more.get(name, {}))
        upstreams[name] = (url, upstreams[name][1])
    doc["upstreams"] = ups
    doc["fetch"] = {"concurrency": 16, "retries": 4, "timeout": 60}
    if signing_key:
        doc["signing"] = {"key": signing_key}
    if trusted_keys:
        doc["trust"] = {"keys": list(trusted_keys)}
    text = (
        "# mirrorctl settings, written by `mirrorctl init`. Credentials go in environment variables named here\n"
        "# (username-env / password-env / token-env), never in this file.\n" + tomli_w.dumps(doc)
    )
    parse_settings(tomllib.loads(text), path, ecosystems)  # what we write must load
    atomic_write(path, text.encode())
    return InitResult(path, upstreams, tuple(missing))
