"""The Pulp 3 REST API as mirrorctl needs it: requests with the target's credentials, paging, task waits.

Every transport or HTTP failure becomes a :class:`TargetError` that names the Pulp URL and says what to check;
credentials never appear in messages.

Authentication: Pulp checks a Basic-auth password with Django's PBKDF2 on *every* request, about one second of
CPU each on a small server (measured: 1.0 s per authenticated GET against 0.05 s for the public status page).
So the client logs in once (``POST login/`` with Basic auth, as pulpcore 3.123 offers) and sends the session cookie and
its CSRF token afterwards (0.1 s per request); where login is not available it falls back to Basic auth.

Pulp runs anything that changes a repository or a distribution as a task;
:meth:`PulpApi.wait_task` polls it to the end within a bounded time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from mirrorctl.config import TargetSettings
from mirrorctl.errors import TargetError
from mirrorctl.net import redact

API_PATH = "/pulp/api/v3/"
TASK_TIMEOUT = 600.0  # seconds: a modify of tens of thousands of units still ends well within this
PAGE_LIMIT = 1000
_END_STATES = ("completed", "failed", "canceled", "skipped")


def target_credentials(settings: TargetSettings, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(user, password) from the environment variables the target names; TargetError if one is unset."""
    if not (settings.username_env or settings.password_env):
        return None
    missing = [
        f"{key} = {var!r}"
        for key, var in (("username-env", settings.username_env), ("password-env", settings.password_env))
        if not var or environ.get(var) is None
    ]
    if missing:
        raise TargetError(
            f"targets.{settings.name}: credentials incomplete ({'; '.join(missing)} not set in the environment)",
            hint="export both variables that username-env and password-env name, then run again",
        )
    assert settings.username_env and settings.password_env
    return environ[settings.username_env], environ[settings.password_env]


class PulpApi:
    """One Pulp server: ``url`` is its API origin (``http://pulp.internal:24817``)."""

    def __init__(
        self,
        settings: TargetSettings,
        client: httpx.AsyncClient,
        environ: Mapping[str, str],
        *,
        task_timeout: float = TASK_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.origin = settings.url.rstrip("/")
        self.root = self.origin + API_PATH
        self.client = client
        self.task_timeout = task_timeout
        creds = target_credentials(settings, environ)
        self._auth: httpx.Auth | None = httpx.BasicAuth(*creds) if creds else None
        self._cred_vars = f"{settings.username_env} / {settings.password_env}"
        self._session: dict[str, str] | None = None  # headers carrying the session cookie and CSRF token
        self._login_lock = asyncio.Lock()
        self._login_tried = False

    def url(self, href: str) -> str:
        """An absolute URL for a Pulp href (``/pulp/api/v3/...``) or a path relative to the API root."""
        if href.startswith(("http://", "https://")):
            return href
        if href.startswith("/"):
            return self.origin + href
        return self.root + href

    # ------------------------------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        href: str,
        *,
        what: str,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        auth: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        url = self.url(href)
        headers: dict[str, str] = dict(kwargs.pop("headers", None) or {})
        use_auth: httpx.Auth | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT
        if auth and self._auth:
            session = await self._login(what)
            if session:
                headers.update(session)
            else:
                use_auth = self._auth
        try:
            resp = await self.client.request(method, url, auth=use_auth, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise TargetError(
                f"targets.{self.name}: {what}: Pulp at {redact(self.origin)} is unreachable "
                f"({type(exc).__name__}: {exc})",
                hint=f"check targets.{self.name}.url and that pulpcore-api runs (GET {API_PATH}status/)",
            ) from exc
        if resp.status_code not in ok:
            raise self.status_error(resp, what)
        return resp

    async def _login(self, what: str) -> dict[str, str] | None:
        """Session headers after one Basic-auth login; None where Pulp offers no login endpoint."""
        if self._login_tried:
            return self._session
        async with self._login_lock:
            if self._login_tried:
                return self._session
            try:
                resp = await self.client.post(self.root + "login/", auth=self._auth or httpx.USE_CLIENT_DEFAULT)
            except httpx.HTTPError as exc:
                raise TargetError(
                    f"targets.{self.name}: {what}: Pulp at {redact(self.origin)} is unreachable "
                    f"({type(exc).__name__}: {exc})",
                    hint=f"check targets.{self.name}.url and that pulpcore-api runs (GET {API_PATH}status/)",
                ) from exc
            if resp.status_code == 401:
                raise self.status_error(resp, what)
            session, csrf = resp.cookies.get("sessionid"), resp.cookies.get("csrftoken")
            if resp.status_code in (200, 201) and session and csrf:
                self._session = {"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf}
                # The shared client must not carry this session to later requests on its own.
                for name in ("sessionid", "csrftoken"):
                    for cookie in list(self.client.cookies.jar):
                        if cookie.name == name and resp.url.host.endswith(cookie.domain.lstrip(".")):
                            self.client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
            self._login_tried = True
            return self._session

    def status_error(self, resp: httpx.Response, what: str) -> TargetError:
        status = resp.status_code
        # The path without the query: a lookup's query can hold dozens of digests.
        where = f"targets.{self.name}: {what}: HTTP {status} from {redact(resp.request.url.copy_with(query=None))}"
        if status == 401:
            return TargetError(
                f"{where}: Pulp refused the credentials",
                hint=f"check the user and password in the variables {self._cred_vars}",
            )
        if status == 403:
            return TargetError(
                f"{where}: the user may not do this",
                hint="give the user a role on the repository, or use an admin account",
            )
        if status == 404:
            return TargetError(
                f"{where}: no such endpoint or object",
                hint="check the URL and that the Pulp plugin for this ecosystem is installed "
                f"(`mirrorctl targets check {self.name}`)",
            )
        return TargetError(f"{where}: {_body_excerpt(resp)}", hint="see the Pulp API log for details")

    async def get_json(self, href: str, *, what: str, **kwargs: Any) -> Any:
        resp = await self.request("GET", href, what=what, **kwargs)
        return _json(resp, what, self.name)

    async def post_json(self, href: str, body: Mapping[str, Any], *, what: str) -> Any:
        return _json(await self.request("POST", href, what=what, json=body), what, self.name)

    async def paged(self, href: str, *, what: str, params: Mapping[str, Any] | None = None) -> AsyncIterator[Any]:
        """Every result of a paginated list endpoint."""
        url: str | None = self.url(href)
        query: Mapping[str, Any] | None = {"limit": PAGE_LIMIT, **(params or {})}
        while url:
            page = await self.get_json(url, what=what, params=query)
            for item in page.get("results", []):
                yield item
            url, query = page.get("next"), None  # "next" carries the query already

    async def find_one(self, href: str, *, what: str, **params: Any) -> Any | None:
        page = await self.get_json(href, what=what, params=params)
        results = page.get("results", [])
        return results[0] if results else None

    # ------------------------------------------------------------------------------------------- tasks

    async def wait_task(self, task_href: str, *, what: str) -> dict[str, Any]:
        """Poll a task until it ends; TargetError with Pulp's own description when it did not complete."""
        deadline = time.monotonic() + self.task_timeout
        delay = 0.05
        while True:
            task: dict[str, Any] = await self.get_json(task_href, what=f"{what} (task {task_href})")
            state = task.get("state")
            if state == "completed":
                return task
            if state in _END_STATES:
                err = task.get("error") or {}
                desc = err.get("description") if isinstance(err, dict) else str(err)
                raise TargetError(
                    f"targets.{self.name}: {what}: Pulp task {task_href} {state}: {desc or 'no description'}",
                    hint="see the task in Pulp (GET the task href) and the worker log",
                )
            if time.monotonic() > deadline:
                raise TargetError(
                    f"targets.{self.name}: {what}: Pulp task {task_href} still {state} after {self.task_timeout:.0f}s",
                    hint="check that Pulp workers are online (`mirrorctl targets check`) and not stuck",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def run_task(self, method: str, href: str, body: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        """Start a task (an answer with 202 and a task href) and wait for it."""
        resp = await self.request(method, href, what=what, json=body)
        started = _json(resp, what, self.name)
        task = started.get("task") if isinstance(started, dict) else None
        if not task:
            raise TargetError(f"targets.{self.name}: {what}: Pulp answered without a task: {_body_excerpt(resp)}")
        return await self.wait_task(task, what=what)


def _json(resp: httpx.Response, what: str, name: str) -> Any:
    if resp.status_code == 204 or not resp.content:
        return {}
    try:
        return resp.json()
    except ValueError:
        raise TargetError(
            f"targets.{name}: {what}: {redact(resp.request.url)} did not answer JSON ({_body_excerpt(resp)})",
            hint="check that the URL is Pulp's API origin, not the content app or a proxy page",
        ) from None


def _body_excerpt(resp: httpx.Response, limit: int = 300) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "") if text else "(empty body)"
