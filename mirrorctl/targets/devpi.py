"""devpi-server as a publish target: one ``user/index`` with no bases, not volatile, per target.

Configuration (``mirrorctl.toml``)::

    [targets.devpi]
    kind = "devpi"
    url = "http://devpi.internal:3141"
    username-env = "DEVPI_USER"         # the index owner: the user part of repositories.pypi
    password-env = "DEVPI_PASSWORD"
    repositories = { pypi = "mirror/pypi-snap" }

What a publish does, and why:

* log in (``POST /+login`` -> a token sent as ``X-Devpi-Auth: base64(user:token)``, devpi's own scheme, so the
  password crosses the wire once). The credentials are the *index owner's*: if that user does not exist yet it
  is created with them (``PUT /<user>``); devpi lets anyone create users unless it runs with
  ``--restrict-modify``, in which case an admin creates the user once (``devpi user -c NAME password=...``).
* create the index if missing: ``{"type": "stage", "bases": [], "volatile": false}``. No bases, so the index
  serves only what was published, never an upstream; not volatile, so a published file cannot be replaced
  (devpi answers 409 to a different file under the same name). An existing index with bases is refused.
* list what the index holds (PEP 691 JSON of each project's simple page) and upload only the missing files,
  concurrently, with the legacy upload form (``:action=file_upload``), streamed from the store.
* afterwards read the listing again: every file of the set must be there with the lock's sha256.

devpi cannot remove a file from a non-volatile index. Files the index holds that are no longer in the published
set stay (they are counted in a note; ``removed`` is 0). To serve exactly a new set, publish into a fresh index
(a new ``repositories.pypi``) and point the workspaces at it. For the same reason devpi keeps no versions:
``history`` comes from the local publish journal and ``rollback`` is refused: publish the earlier snapshot
into a fresh index instead.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiofiles
import httpx
from packaging.utils import canonicalize_name

from mirrorctl.config import TargetSettings
from mirrorctl.errors import MirrorctlError, TargetError, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.net import redact
from mirrorctl.progress import Progress
from mirrorctl.targets.base import PublishedVersion, PublishResult, TargetCheck

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
UPLOAD_CONCURRENCY = 8  # devpi serializes commits, but reading and hashing the upload run in its threads
LIST_CONCURRENCY = 16
_CHUNK = 1024 * 1024


class DevpiTarget:
    kind = "devpi"
    ecosystems = frozenset({"pypi"})

    def __init__(
        self,
        settings: TargetSettings,
        client: httpx.AsyncClient,
        environ: Mapping[str, str],
        *,
        ecosystems: Mapping[str, object] | None = None,  # devpi takes PyPI content as it is: no adapter needed
        concurrency: int = UPLOAD_CONCURRENCY,
    ) -> None:
        settings.check_options(())  # devpi has no settings of its own: refuse a stray key, naming it
        self.name = settings.name
        self.settings = settings
        self.client = client
        self.environ = environ
        self.base = settings.url.rstrip("/")
        self.concurrency = concurrency
        self._auth: dict[str, str] = {}

    # --- naming ------------------------------------------------------------------------------------------------
    def _where(self, key: str = "") -> str:
        return f"targets.{self.settings.name}" + (f".{key}" if key else "")

    def index_name(self, ecosystem: str) -> tuple[str, str]:
        if ecosystem not in self.ecosystems:
            raise UserError(f"{self._where()}: devpi takes only pypi, not {ecosystem}")
        value = self.settings.repositories.get(ecosystem)
        if value is None:
            raise UserError(
                f"{self._where('repositories')}: no index for {ecosystem}",
                hint=f'add repositories = {{ {ecosystem} = "user/index" }} to [{self._where()}]',
            )
        parts = value.split("/")
        if len(parts) != 2 or not all(_SEGMENT.match(p) for p in parts) or parts[1].startswith("+"):
            raise UserError(
                f"{self._where('repositories')}.{ecosystem}: {value!r} is not a devpi index name",
                hint='write it as "user/index", e.g. "mirror/pypi-snap"',
            )
        return parts[0], parts[1]

    def _index_url(self, ecosystem: str) -> str:
        user, index = self.index_name(ecosystem)
        return f"{self.base}/{user}/{index}"

    def endpoint(self, ecosystem: str) -> str:
        return self._index_url(ecosystem) + "/+simple/"

    async def trust_files(self, ecosystem: str) -> Mapping[str, str]:
        return {}  # clients trust devpi through TLS, as the workspace's system does

    # --- HTTP --------------------------------------------------------------------------------------------------
    async def _request(self, method: str, url: str, what: str, **kw: Any) -> httpx.Response:
        headers = {"Accept": "application/json", **self._auth, **kw.pop("headers", {})}
        try:
            return await self.client.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise TargetError(
                f"devpi target {self.settings.name}: {what}: {type(exc).__name__} talking to {redact(url)}: {exc}",
                hint=f"check {self._where('url')} in mirrorctl.toml and that devpi-server is running there",
            ) from exc

    def _fail(self, resp: httpx.Response, what: str) -> TargetError:
        try:
            message = str(resp.json().get("message", ""))
        except ValueError:
            message = resp.text[:200]
        hint = {
            401: f"check the credentials named by {self._where('username-env')}/password-env",
            403: "the user lacks the permission; devpi may run with --restrict-modify (an admin must create "
            "the user or index)",
        }.get(resp.status_code)
        return TargetError(
            f"devpi target {self.settings.name}: {what}: HTTP {resp.status_code} from {redact(resp.request.url)}"
            + (f": {message}" if message else ""),
            hint=hint,
        )

    def _credentials(self) -> tuple[str, str]:
        creds = self.settings.credentials(self.environ)
        if creds is None:
            raise UserError(
                f"{self._where()}: no credentials configured",
                hint="set username-env and password-env to the names of environment variables holding "
                "the index owner's user and password",
            )
        return creds

    async def _login(self, *, create: bool) -> tuple[str, bool]:
        """Log in (creating the user first when ``create`` and it does not exist); (user, created)."""
        user, password = self._credentials()
        created = False
        resp = await self._request("POST", f"{self.base}/+login", "log in", json={"user": user, "password": password})
        if resp.status_code == 401:
            exists = await self._request("GET", f"{self.base}/{user}", "look up the user")
            if exists.status_code == 404 and create:
                made = await self._request("PUT", f"{self.base}/{user}", "create the user", json={"password": password})
                if made.status_code not in (200, 201):
                    raise self._fail(made, f"create user {user!r}")
                created = True
                resp = await self._request(
                    "POST", f"{self.base}/+login", "log in", json={"user": user, "password": password}
                )
            elif exists.status_code == 404:
                return user, False
        if resp.status_code != 200:
            raise self._fail(resp, f"log in as {user!r} (wrong user or password?)")
        token = resp.json()["result"]["password"]
        self._auth = {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode("ascii")}
        return user, created

    # --- check -------------------------------------------------------------------------------------------------
    async def check(self) -> TargetCheck:
        """Reachable (``/+api``), server and plugin versions (``/+status``), the credentials log in (a user
        that does not exist yet counts as usable: publish creates it), and each configured index is usable."""
        try:
            api = await self._request("GET", f"{self.base}/+api", "read the API")
        except TargetError as exc:
            return TargetCheck(False, False, None, {}, (f"{exc.message} ({exc.hint})",))
        version = api.headers.get("X-Devpi-Server-Version")
        if api.status_code != 200 or version is None:
            problem = f"{redact(self.base)}/+api: HTTP {api.status_code}, not a devpi-server"
            return TargetCheck(False, False, None, {}, (problem,))
        plugins: dict[str, str] = {"devpi-server": version}
        status = await self._request("GET", f"{self.base}/+status", "read the status")
        if status.status_code == 200:
            plugins.update({str(k): str(v) for k, v in status.json()["result"].get("versioninfo", {}).items()})
        problems: list[str] = []
        try:
            await self._login(create=False)
            authenticated = True  # logged in, or the user is missing and publish will create it
        except MirrorctlError as exc:
            authenticated = False
            problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        for eco in sorted(self.ecosystems & set(self.settings.repositories)):
            try:
                owner, index = self.index_name(eco)
                config = await self._index_config(eco)
            except MirrorctlError as exc:
                problems.append(exc.message)
                continue
            if config is not None:  # a missing index is created by publish
                problems += self._index_problems(owner, index, config)
        return TargetCheck(True, authenticated, version, plugins, tuple(problems))

    def _index_problems(self, owner: str, index: str, config: Mapping[str, Any]) -> list[str]:
        problems = []
        if config.get("type") != "stage":
            problems.append(f"index {owner}/{index} is a {config.get('type')} index, not a stage index")
        if list(config.get("bases") or []):
            problems.append(
                f"index {owner}/{index} inherits from {', '.join(config['bases'])}: it would serve more than "
                f"was published (set bases= on it, or name a fresh index in {self._where('repositories')})"
            )
        return problems

    async def _index_config(self, ecosystem: str) -> dict[str, Any] | None:
        url = self._index_url(ecosystem)
        resp = await self._request("GET", url, "read the index")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, "read the index")
        return dict(resp.json()["result"])

    # --- publish -----------------------------------------------------------------------------------------------
    async def publish(
        self, ecosystem: str, artifacts: Sequence[Artifact], store: Store, progress: Progress
    ) -> PublishResult:
        started = time.monotonic()
        owner, index = self.index_name(ecosystem)
        url = self._index_url(ecosystem)
        user, created_user = await self._login(create=True)
        if user != owner:
            raise UserError(
                f"{self._where('repositories')}.{ecosystem}: index {owner}/{index} belongs to {owner!r}, but the "
                f"credentials are {user!r}'s",
                hint="use the index owner's credentials (username-env/password-env)",
            )
        config = await self._index_config(ecosystem)
        created_index = False
        if config is None:
            made = await self._request(
                "PUT", url, "create the index", json={"type": "stage", "bases": [], "volatile": False}
            )
            if made.status_code not in (200, 201):
                raise self._fail(made, f"create index {owner}/{index}")
            created_index = True
            progress.note(f"devpi: created index {owner}/{index} (no bases, not volatile)")
        else:
            problems = self._index_problems(owner, index, config)
            if problems:
                raise TargetError(f"devpi target {self.settings.name}: " + "; ".join(problems))
            if config.get("volatile"):
                progress.note(f"devpi: index {owner}/{index} is volatile; published files could be overwritten")

        files = {a.filename: a for a in artifacts}
        projects = sorted({canonicalize_name(a.name) for a in artifacts})
        listing = await self._listing(url, projects, await self._index_projects(url), progress)
        errors: list[str] = []
        missing: list[Artifact] = []
        for name, art in sorted(files.items()):
            have = listing.get(name)
            if have is None:
                missing.append(art)
            elif have != art.sha256:
                errors.append(
                    f"{name}: the index holds sha256 {have}, the lock says {art.sha256} (devpi cannot "
                    "replace a file in a non-volatile index; publish into a fresh index)"
                )
        stale = sorted(set(listing) - set(files))
        if stale:
            progress.note(
                f"devpi: {len(stale)} file(s) in {owner}/{index} are no longer in the published set and stay "
                f"served (devpi cannot remove from a non-volatile index), e.g. {', '.join(stale[:3])}"
            )

        total = sum(a.size for a in missing)
        task = progress.task(f"upload to devpi {owner}/{index}", total, unit="bytes")
        gate = asyncio.Semaphore(self.concurrency)

        async def upload(art: Artifact) -> None:
            async with gate:
                try:
                    await self._upload(url, art, store)
                except MirrorctlError as exc:
                    errors.append(f"{art.filename}: {exc.message}")
                finally:
                    task.advance(art.size)

        try:
            await asyncio.gather(*(upload(a) for a in missing))
        finally:
            task.close()
        upload_seconds = time.monotonic() - started
        if errors:
            raise self._collected(errors, owner, index, "could not be published")

        if missing:  # nothing sent: the listing just read is what was checked
            listing = await self._listing(url, projects, [], progress)
        wrong = [
            f"{n}: "
            + ("not listed" if listing.get(n) is None else f"listed with sha256 {listing[n]}, lock says {a.sha256}")
            for n, a in sorted(files.items())
            if listing.get(n) != a.sha256
        ]
        if wrong:
            raise self._collected(wrong, owner, index, "are not served with the lock's sha256 after publishing")
        seconds = time.monotonic() - started
        progress.note(
            f"devpi {owner}/{index}: {len(missing)} uploaded ({total} bytes, {upload_seconds:.1f}s), "
            f"{len(files) - len(missing)} already present, {len(stale)} stale kept; {seconds:.1f}s in all"
        )
        return PublishResult(
            ecosystem=ecosystem,
            repository=f"{owner}/{index}",
            uploaded=len(missing),
            present=len(files) - len(missing),
            removed=0,
            version=None,
            changed=bool(missing) or created_user or created_index,
            endpoint=self.endpoint(ecosystem),
            seconds=seconds,
        )

    def _collected(self, errors: list[str], owner: str, index: str, what: str) -> TargetError:
        shown = "; ".join(errors[:20]) + (f"; and {len(errors) - 20} more" if len(errors) > 20 else "")
        return TargetError(
            f"devpi target {self.settings.name}: {len(errors)} file(s) in {owner}/{index} {what}: {shown}",
            hint="fix the causes named above and publish again; files already uploaded are not sent twice",
        )

    async def _index_projects(self, url: str) -> list[str]:
        resp = await self._request("GET", url, "list the index's projects")
        if resp.status_code != 200:
            raise self._fail(resp, "list the index's projects")
        return [canonicalize_name(p) for p in resp.json()["result"].get("projects", [])]

    async def _listing(
        self, url: str, projects: Sequence[str], more: Sequence[str], progress: Progress
    ) -> dict[str, str | None]:
        """filename -> sha256 (None when devpi lists no sha256) for the files of these projects."""
        gate = asyncio.Semaphore(LIST_CONCURRENCY)
        found: dict[str, str | None] = {}

        async def one(project: str) -> None:
            async with gate:
                resp = await self._request(
                    "GET", f"{url}/+simple/{project}/", f"list project {project}", headers={"Accept": SIMPLE_JSON}
                )
            if resp.status_code == 404:
                return
            if resp.status_code != 200:
                raise self._fail(resp, f"list project {project}")
            for f in resp.json().get("files", []):
                found[str(f["filename"])] = (f.get("hashes") or {}).get("sha256")

        await asyncio.gather(*(one(p) for p in sorted(set(projects) | set(more))))
        return found

    async def _upload(self, url: str, art: Artifact, store: Store) -> None:
        """The legacy upload form, built by hand so the file streams from the store in chunks read off the
        event loop (aiofiles): memory stays flat and concurrent uploads do not wait on each other's reads."""
        path = store.blob_path(art.sha256)
        boundary = secrets.token_hex(16)
        fields = {":action": "file_upload", "name": art.name, "version": art.version, "protocol_version": "1"}
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()
        )
        # check_filename (lockfile) allows no quotes or control characters in file names.
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{art.filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        pre, post = head.encode(), f"\r\n--{boundary}--\r\n".encode()

        async def body() -> AsyncIterator[bytes]:
            yield pre
            async with aiofiles.open(path, "rb") as fh:
                while chunk := await fh.read(_CHUNK):
                    yield chunk
            yield post

        resp = await self._request(
            "POST",
            url + "/",
            f"upload {art.filename}",
            content=body(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(pre) + art.size + len(post)),
            },
        )
        if resp.status_code != 200:
            raise self._fail(resp, f"upload {art.filename}")

    # --- versions ----------------------------------------------------------------------------------------------
    async def history(self, ecosystem: str) -> list[PublishedVersion]:
        """devpi keeps no versions of an index: nothing from the server. The publish service shows the local
        journal (``state/publish-<target>.json``) instead."""
        self.index_name(ecosystem)
        return []

    async def rollback(self, ecosystem: str, version: int) -> PublishedVersion:
        owner, index = self.index_name(ecosystem)
        raise TargetError(
            f"devpi target {self.settings.name}: devpi keeps no versions of {owner}/{index}, so there is no "
            f"version {version} to go back to",
            hint="publish the earlier snapshot instead: import its bundle with --allow-rollback and publish it "
            f"into a fresh index (a new {self._where('repositories')}.{ecosystem}), then point workspaces "
            "at that index with `mirrorctl workspace-config --target`; a non-volatile index cannot drop files",
        )
