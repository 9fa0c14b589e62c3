"""apt's keys of mirrorctl.toml: ``[upstreams.apt]`` (the keyring that vouches for the upstream, and more archives
with their own keyrings and suites) and ``[serve.apt]`` (the served Release's fields, checked by
serve.release_options)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from mirrorctl.config import ConfigRef, Upstream
from mirrorctl.ecosystems.base import own_options

# Example: a release and its -updates from one archive, its security suite from another (each its Signed-By)::
#
#     [upstreams.apt]
#     url = "http://deb.mirror.internal/debian/"
#     keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
#     suites = ["bookworm", "bookworm-updates"]          # optional; without it: any suite no archive names
#
#     [upstreams.apt.archives.security]
#     url = "http://deb.mirror.internal/debian-security/"
#     keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
#     suites = ["bookworm-security"]


@dataclass(frozen=True, slots=True)
class AptArchive:
    """One archive apt reads (one source of its sources.list): where it is, the keyring that vouches for its
    InRelease (its Signed-By) and the suites it carries.

    ``name`` is "" for ``[upstreams.apt]`` itself (locks before several archives name no archive), else the
    ``<name>`` of ``[upstreams.apt.archives.<name>]``, recorded in the lock as ``attrs.archive``.
    ``suites`` None: every suite no other archive names (``[upstreams.apt]`` without ``suites``)."""

    name: str
    url: str
    keyring: Path | None
    suites: tuple[str, ...] | None = None

    @property
    def table(self) -> str:
        return "upstreams.apt" + (f".archives.{self.name}" if self.name else "")


@dataclass(frozen=True, slots=True)
class AptUpstreamOptions:
    # The OpenPGP keyring that vouches for the upstream's InRelease (apt's Signed-By), e.g.
    # ``keyring = "/usr/share/keyrings/upstream-archive-keyring.gpg"``; relative to mirrorctl.toml.
    keyring: Path | None = None
    suites: tuple[str, ...] | None = None  # the suites [upstreams.apt] carries; None: any other archive lacks
    archives: tuple[AptArchive, ...] = ()  # [upstreams.apt.archives.<name>], by name


UPSTREAM_KEYS = ("keyring", "suites", "archives")
ARCHIVE_KEYS = ("url", "keyring", "suites")
_EXAMPLE = ('e.g. [upstreams.apt.archives.security] url = "http://deb.mirror.internal/debian-security/", '
            'keyring = "/usr/share/keyrings/debian-archive-keyring.gpg", suites = ["bookworm-security"]')


def _suite_list(value: object, ref: ConfigRef, key: str) -> tuple[str, ...]:
    from .spec import valid_suite

    if not isinstance(value, list) or not value or not all(isinstance(v, str) and valid_suite(v) for v in value):
        raise ref.error(key, f"must be a non-empty list of suite names, got {value!r}",
                        hint='e.g. suites = ["bookworm", "bookworm-updates"]')
    return tuple(dict.fromkeys(value))


def parse_upstream(table: Mapping[str, object], ref: ConfigRef) -> AptUpstreamOptions:
    """``[upstreams.apt]`` and its ``archives`` tables: several archives, each with its keyring and suites, as
    apt's sources.list names several sources (a release, its -updates, its security archive)."""
    from .spec import ARCHIVE_NAME

    ref.no_unknown(table, {*ref.common_upstream_keys, *UPSTREAM_KEYS})
    keyring = ref.path_value(table["keyring"], "keyring") if "keyring" in table else None
    suites = _suite_list(table["suites"], ref, "suites") if "suites" in table else None
    raw = table.get("archives", {})
    if not isinstance(raw, Mapping):
        raise ref.error("archives", "must be a table of [upstreams.apt.archives.<name>] tables", hint=_EXAMPLE)
    archives: list[AptArchive] = []
    owner: dict[str, str] = dict.fromkeys(suites or (), ref.table)
    for name, arch in sorted(raw.items()):
        key = f"archives.{name}"
        if not ARCHIVE_NAME.match(name):
            raise ref.error(key, "is not an archive name", hint="lowercase letters, digits, - and _ (e.g. security)")
        if not isinstance(arch, Mapping):
            raise ref.error(key, "must be a table", hint=_EXAMPLE)
        unknown = sorted(set(arch) - set(ARCHIVE_KEYS))
        if unknown:
            raise ref.error(f"{key}.{unknown[0]}", "is not a setting", hint=f"known: {', '.join(ARCHIVE_KEYS)}")
        url = arch.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https", "file"):
            raise ref.error(f"{key}.url", f"must be an http(s) or file URL, got {url!r}", hint=_EXAMPLE)
        if urlsplit(url).username or urlsplit(url).password:
            raise ref.error(f"{key}.url", "carries credentials", hint="an extra archive is reached without credentials")
        if "suites" not in arch:
            raise ref.error(f"{key}.suites", "is missing: which suites does this archive carry?", hint=_EXAMPLE)
        carried = _suite_list(arch["suites"], ref, f"{key}.suites")
        for suite in carried:
            if suite in owner:
                raise ref.error(f"{key}.suites", f"names {suite!r}, which {owner[suite]} carries too",
                                hint="each suite comes from one archive")
            owner[suite] = f"{ref.table}.{key}"
        ring = ref.path_value(arch["keyring"], f"{key}.keyring") if "keyring" in arch else None
        archives.append(AptArchive(name, url if url.endswith("/") else url + "/", ring, carried))
    return AptUpstreamOptions(keyring, suites, tuple(archives))


def upstream_options(upstream: Upstream) -> AptUpstreamOptions:
    return own_options(upstream.options, AptUpstreamOptions, AptUpstreamOptions())


def upstream_keyring(upstream: Upstream) -> Path | None:
    return upstream_options(upstream).keyring


def archives(upstream: Upstream) -> tuple[AptArchive, ...]:
    """Every archive, ``[upstreams.apt]`` itself first."""
    opts = upstream_options(upstream)
    return (AptArchive("", upstream.url, opts.keyring, opts.suites), *opts.archives)


def archive_named(upstream: Upstream, name: str) -> AptArchive | None:
    return next((a for a in archives(upstream) if a.name == name), None)


def archive_for(upstream: Upstream, suite: str) -> AptArchive | None:
    """The archive that carries ``suite``: the one whose ``suites`` names it, else ``[upstreams.apt]`` when it
    names no suites (None: no archive carries it)."""
    every = archives(upstream)
    named = next((a for a in every if a.suites is not None and suite in a.suites), None)
    if named is not None:
        return named
    return every[0] if every[0].suites is None else None


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
