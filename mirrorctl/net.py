"""The one place that builds the HTTP client, and maps transport errors to :class:`NetworkError`.

Credentials come from the environment variables that ``mirrorctl.toml`` names, are attached only to requests
under the upstream's own URL prefix, and never appear in messages (URLs are redacted).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from mirrorctl import __version__
from mirrorctl.config import FETCH_MAX_RETRIES, FetchSettings, Settings, Upstream
from mirrorctl.errors import NetworkError

USER_AGENT = f"mirrorctl/{__version__}"
T = TypeVar("T")


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


_STATUS_HINTS = {
    401: "check the credentials named in mirrorctl.toml (username-env/password-env/token-env)",
    403: "check the credentials and the upstream's access rules",
    404: "the upstream does not have it; check the name, or the upstream URL in mirrorctl.toml",
}


def network_error(exc: httpx.HTTPError, what: str, *, attempts: int = 1) -> NetworkError:
    """Map an httpx error to a NetworkError that names what was being fetched, without credentials."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        hint = _STATUS_HINTS.get(status, "try again later; if it persists, check the upstream")
        return NetworkError(
            what=what, url=redact(exc.request.url), status=status, attempts=attempts, hint=hint
        )
    return NetworkError(
        what=what,
        url=redact(exc.request.url) if _has_request(exc) else None,
        reason=f"{type(exc).__name__}", attempts=attempts,
        detail=str(exc),
        hint="check the upstream URL in mirrorctl.toml and the network or proxy settings, then run again",
    )


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Errors worth a retry with backoff: timeouts, dropped connections, 408, 425, 429 and 5xx answers (not
    501). 401, 403, 404 and other answers are final: asking again gets the same answer."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUSES
    return isinstance(exc, httpx.TransportError)


# However many retries a caller asks for: past this, an upstream is down, not flaky (mirrorctl.toml's
# [fetch] retries is refused above it, naming the field).
MAX_RETRIES = FETCH_MAX_RETRIES


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a transient failure is retried: up to ``retries`` more attempts (at most :data:`MAX_RETRIES`),
    waiting an exponential backoff from ``base`` seconds with jitter (each wait between half and all of
    ``min(cap, base * 2 ** (n - 1))``), or what the server's ``Retry-After`` asks (seconds or an HTTP date),
    whichever is longer, never more than ``cap``.

    Example: ``RetryPolicy(retries=settings.fetch.retries)``; ``RetryPolicy.of(fetch_settings)``.
    """

    retries: int = 4
    base: float = 0.5
    cap: float = 30.0

    @classmethod
    def of(cls, fetch: FetchSettings) -> RetryPolicy:
        return cls(retries=fetch.retries)

    @property
    def attempts(self) -> int:
        """The most requests one call makes, the first included."""
        return min(max(self.retries, 0), MAX_RETRIES) + 1

    def delay(self, attempt: int, exc: BaseException | None = None, *, now: datetime | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        backoff = min(self.cap, self.base * 2 ** (attempt - 1))
        wait = backoff / 2 + (rng or _RANDOM).uniform(0, backoff / 2)
        if isinstance(exc, httpx.HTTPStatusError):
            after = retry_after(exc.response.headers.get("Retry-After"), now=now)
            if after is not None:
                wait = max(wait, min(after, self.cap))
        return wait


_RANDOM = random.Random()


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (RFC 9110: delay-seconds or an HTTP-date); None if absent or
    unreadable. A date in the past means 0."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a sender that leaves the zone out still means it
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def retrying(
    call: Callable[[], Awaitable[T]],
    what: str,
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """``await call()``, again after each transient failure (:func:`is_transient`) as ``policy`` says; the last
    failure, or the first that is not transient, raises :class:`NetworkError` naming ``what`` with the number
    of attempts made (``err.attempts``). Each attempt is a fresh ``call()``: it takes its own request slot and
    starts its own sink. Other exceptions pass through at once.

    Example: ``page = await retrying(lambda: client.get(url), "pypi project page requests", RetryPolicy())``
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except httpx.HTTPError as exc:
            if attempt < policy.attempts and is_transient(exc):
                await sleep(policy.delay(attempt, exc))
                continue
            raise network_error(exc, what, attempts=attempt) from exc
