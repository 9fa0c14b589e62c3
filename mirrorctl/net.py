"""The one place that builds the HTTP client, and maps transport errors to :class:`NetworkError`.

Credentials come from the environment variables that ``mirrorctl.toml`` names, are attached only to requests
under the upstream's own URL prefix, and never appear in messages (URLs are redacted).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx

from mirrorctl import __version__
from mirrorctl.config import Settings, Upstream
from mirrorctl.errors import NetworkError

USER_AGENT = f"mirrorctl/{__version__}"


def redact(url: str | httpx.URL) -> str:
    """A URL with any user:password removed, for messages and logs."""
    parts = urlsplit(str(url))
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        parts = parts._replace(netloc=host)
    return urlunsplit(parts)


class _UpstreamAuth(httpx.Auth):
    """Basic or bearer auth for requests under each upstream's prefix; nothing for other URLs."""

    def __init__(self, rules: list[tuple[str, httpx.Auth]]) -> None:
        self._rules = sorted(rules, key=lambda r: len(r[0]), reverse=True)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = str(request.url)
        for prefix, auth in self._rules:
            if url.startswith(prefix):
                yield from auth.auth_flow(request)
                return
        yield request


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}/"


def build_client(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The async client every service uses: keep-alive pool sized to the fetch concurrency, HTTP/2 if
    configured, timeouts from settings, per-upstream credentials. ``transport`` is for tests."""
    rules: list[tuple[str, httpx.Auth]] = []
    for up in settings.upstreams.values():
        rules.extend((prefix, auth) for prefix, auth in _auth_rules(up, environ))
    limits = httpx.Limits(
        max_connections=settings.fetch.concurrency,
        max_keepalive_connections=settings.fetch.concurrency,
    )
    if transport is None and not _proxied(environ) and not _proxied(os.environ):
        # asyncio's own TLS streams under httpx: about half the CPU per downloaded byte (see mirrorctl.aionet).
        # Not with a proxy from the environment: httpx sets those up itself only for its default transport.
        from mirrorctl.aionet import AsyncioTransport

        transport = AsyncioTransport(limits=limits, http2=settings.fetch.http2)
    return httpx.AsyncClient(
        http2=settings.fetch.http2,
        limits=limits,
        timeout=httpx.Timeout(settings.fetch.timeout, connect=min(settings.fetch.timeout, 20.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        auth=_UpstreamAuth(rules) if rules else None,
        transport=transport,
        trust_env=True,
    )


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def _proxied(environ: Mapping[str, str]) -> bool:
    return any(k.lower() in _PROXY_VARIABLES and v for k, v in environ.items())


def _auth_rules(up: Upstream, environ: Mapping[str, str]) -> list[tuple[str, httpx.Auth]]:
    token = up.token(environ)
    basic = up.auth(environ)
    auth: httpx.Auth | None = _Bearer(token) if token else httpx.BasicAuth(*basic) if basic else None
    # Credentials go to the upstream's origin (files are often served beside the index), never elsewhere.
    return [(_origin(up.url), auth)] if auth else []


def network_error(exc: httpx.HTTPError, what: str) -> NetworkError:
    """Map an httpx error to a NetworkError that names what was being fetched, without credentials."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        hint = {
            401: "check the credentials named in mirrorctl.toml (username-env/password-env/token-env)",
            403: "check the credentials and the upstream's access rules",
            404: "the upstream does not have it; check the name, or the upstream URL in mirrorctl.toml",
        }.get(status, "try again later; if it persists, check the upstream")
        return NetworkError(f"{what}: HTTP {status} from {redact(exc.request.url)}", hint=hint)
    url = redact(exc.request.url) if _has_request(exc) else "upstream"
    kind = type(exc).__name__
    return NetworkError(
        f"{what}: {kind} talking to {url}: {exc}",
        hint="check the upstream URL in mirrorctl.toml and the network or proxy settings, then run again",
    )


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def is_transient(exc: BaseException) -> bool:
    """Errors worth a retry with backoff: timeouts, dropped connections, 429 and 5xx answers."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in (408, 425, 429, 500, 502, 503, 504)
    return isinstance(exc, httpx.TransportError)
