"""apt's keys of mirrorctl.toml: ``[upstreams.apt]`` (the keyring that vouches for the upstream) and
``[serve.apt]`` (the served Release's fields, checked by serve.release_options)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mirrorctl.config import ConfigRef, Upstream
from mirrorctl.ecosystems.base import own_options


@dataclass(frozen=True, slots=True)
class AptUpstreamOptions:
    # The OpenPGP keyring that vouches for the upstream's InRelease (apt's Signed-By), e.g.
    # ``keyring = "/usr/share/keyrings/upstream-archive-keyring.gpg"``; relative to mirrorctl.toml.
    keyring: Path | None = None


UPSTREAM_KEYS = ("keyring",)


def parse_upstream(table: Mapping[str, object], ref: ConfigRef) -> AptUpstreamOptions:
    ref.no_unknown(table, {*ref.common_upstream_keys, *UPSTREAM_KEYS})
    return AptUpstreamOptions(ref.path_value(table["keyring"], "keyring") if "keyring" in table else None)


def upstream_keyring(upstream: Upstream) -> Path | None:
    return own_options(upstream.options, AptUpstreamOptions, AptUpstreamOptions()).keyring


@dataclass(frozen=True, slots=True)
class ReleaseOptions:
    """What the Release files say about the archive. ``valid_until``: None means no Valid-Until field."""

    origin: str = "mirrorctl"
    label: str = "mirrorctl"
    description: str = "mirrorctl internal mirror"
    valid_until: timedelta | None = None


_OPTION_KEYS = {"origin", "label", "description", "valid-days"}


def release_options(table: Mapping[str, object], ref: ConfigRef) -> ReleaseOptions:
    """``[serve.apt]`` of mirrorctl.toml -> the Release fields; refuses what it does not know, naming the key.

    ``valid-days``: adds ``Valid-Until`` (the view's creation time + that many days), after which apt refuses
    the repository until a newer import: freeze protection for the inside. Absent: no Valid-Until."""
    unknown = sorted(set(table) - _OPTION_KEYS)
    if unknown:
        raise ref.error(unknown[0], "is not a setting", hint=f"known: {', '.join(sorted(_OPTION_KEYS))}")
    texts: dict[str, str] = {}
    for key in ("origin", "label", "description"):
        value = table.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise ref.error(key, f"must be a one-line text, got {value!r}")
        texts[key] = value.strip()
    days = table.get("valid-days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise ref.error("valid-days", f"must be a whole number of days >= 1, got {days!r}")
    defaults = ReleaseOptions()
    return ReleaseOptions(
        origin=texts.get("origin", defaults.origin),
        label=texts.get("label", defaults.label),
        description=texts.get("description", defaults.description),
        valid_until=timedelta(days=days) if isinstance(days, int) else None,
    )
