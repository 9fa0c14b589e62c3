"""PulpTarget: publish a store's served set into Pulp 3 as one repository version, then switch to it.

Publish, for one ecosystem (repository and distribution named ``repositories.<ecosystem>`` in the target):

1. ensure the repository and a distribution (base path = the name) exist; a new distribution serves version 0
   explicitly, never "the latest version";
2. read what the latest version holds; if it is exactly the set and the distribution serves it, stop
   (changed=False: nothing uploaded, no version made);
3. find the files Pulp already holds as content (by sha256) and upload only the others, concurrently; every
   failure is collected and raised together before the repository is touched;
4. one ``modify`` (add + remove against the version read in 2) makes the new version; its content is checked
   against the lock (filename and sha256 of every file) before anything is switched;
5. one PATCH of the distribution to that version: clients see the old set or the new one, never a mix.

Earlier versions stay, so ``rollback`` is one PATCH back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from mirrorctl.config import TargetSettings
from mirrorctl.ecosystems.base import Ecosystem
from mirrorctl.errors import MirrorctlError, TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import Progress
from mirrorctl.targets.base import PublishedVersion, PublishResult, TargetCheck

from . import retention
from .api import PulpApi
from .plugins import PublishFile, PulpPlugin, StructuredPulpPlugin, plugins_for

UPLOAD_CONCURRENCY = 8
_ERRORS_SHOWN = 20


class PulpTarget:
    kind = "pulp"

    def __init__(
        self,
        settings: TargetSettings,
        client: httpx.AsyncClient,
        environ: Mapping[str, str],
        *,
        ecosystems: Mapping[str, Ecosystem],
        plugins: Mapping[str, PulpPlugin] | None = None,
        upload_concurrency: int = UPLOAD_CONCURRENCY,
        task_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        # The registered strategies, for the installed ecosystems (see plugins_for); tests may give their own.
        self.plugins = dict(plugins if plugins is not None else plugins_for(settings, ecosystems))
        self.ecosystems = frozenset(self.plugins)
        self.upload_concurrency = max(1, upload_concurrency)
        self.api = PulpApi(settings, client, environ, **({"task_timeout": task_timeout} if task_timeout else {}))
        self.content_origin = (settings.content_url or settings.url).rstrip("/")

    # ------------------------------------------------------------------------------------------- helpers

    def _plugin(self, ecosystem: str) -> PulpPlugin:
        try:
            return self.plugins[ecosystem]
        except KeyError:
            raise TargetError(
                f"targets.{self.settings.name}: Pulp publishing of {ecosystem!r} is not supported",
                hint=f"supported here: {', '.join(sorted(self.plugins))}",
            ) from None

    def _repo_name(self, ecosystem: str) -> str:
        name = self.settings.repositories.get(ecosystem)
        if not name:
            raise TargetError(
                f"targets.{self.settings.name}.repositories: no repository named for {ecosystem!r}",
                hint=f'add {ecosystem} = "<repository name>" under [targets.{self.settings.name}.repositories]',
            )
        return name

    async def _find(self, plugin: PulpPlugin, ecosystem: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        name = self._repo_name(ecosystem)
        repo = await self.api.find_one(plugin.repositories, what=f"finding repository {name!r}", name=name)
        dist = await self.api.find_one(plugin.distributions, what=f"finding distribution {name!r}", name=name)
        return repo, dist

    async def _ensure(self, plugin: PulpPlugin, ecosystem: str) -> tuple[dict[str, Any], dict[str, Any]]:
        name = self._repo_name(ecosystem)
        repo, dist = await self._find(plugin, ecosystem)
        if repo is None:
            repo = await self.api.post_json(plugin.repositories, {"name": name}, what=f"creating repository {name!r}")
        if dist is None:
            body = {
                "name": name,
                "base_path": name,
                **plugin.distribution_fields(),
                **(await plugin.serve(self.api, repo["latest_version_href"])),
            }
            task = await self.api.run_task("POST", plugin.distributions, body, what=f"creating distribution {name!r}")
            dist = await self.api.get_json(task["created_resources"][0], what=f"reading distribution {name!r}")
        return repo, dist

    async def _version_units(self, plugin: PulpPlugin, version_href: str) -> dict[tuple[str, str], str]:
        """(filename, sha256) -> content href of every unit in one repository version."""
        units: dict[tuple[str, str], str] = {}
        params = {"repository_version": version_href, "fields": plugin.list_fields()}
        async for unit in self.api.paged(plugin.content, what=f"listing {version_href}", params=params):
            units[plugin.unit_key(unit)] = str(unit["pulp_href"])
        return units

    # -------------------------------------------------------------------------------------------- check

    async def check(self) -> TargetCheck:
        api = self.api
        try:
            status = await api.get_json("status/", what="reading Pulp's status", auth=False)
        except TargetError as exc:
            return TargetCheck(False, False, None, {}, (f"{exc.message}; {exc.hint}" if exc.hint else exc.message,))
        versions = {str(v.get("component")): str(v.get("version")) for v in status.get("versions", [])}
        problems: list[str] = []
        for ecosystem in sorted(self.settings.repositories):
            plugin = self.plugins.get(ecosystem)
            if plugin is None:
                problems.append(
                    f"repositories.{ecosystem}: mirrorctl cannot publish {ecosystem!r} to Pulp yet "
                    f"(supported: {', '.join(sorted(self.plugins))})"
                )
            elif plugin.component not in versions:
                problems.append(
                    f"plugin {plugin.component!r} (for {ecosystem}) is not installed in Pulp: install "
                    f"pulp-{plugin.component} beside pulpcore, run `pulpcore-manager migrate`, restart Pulp"
                )
            elif isinstance(plugin, StructuredPulpPlugin):
                try:
                    await plugin.prepare(api)  # apt: the signing service exists
                except TargetError as exc:
                    problems.append(f"{exc.message}; {exc.hint}" if exc.hint else exc.message)
        if not (status.get("database_connection") or {}).get("connected"):
            problems.append("Pulp has no database connection: check PostgreSQL and DATABASES in Pulp's settings")
        if not status.get("online_workers"):
            problems.append("no Pulp worker is online: start pulpcore-worker (tasks would wait forever)")
        if not status.get("online_content_apps"):
            problems.append("no Pulp content app is online: start pulpcore-content (clients could not download)")
        authenticated = False
        try:
            # The status page is public; a repository list needs a valid user.
            await api.get_json("repositories/", what="checking the credentials", params={"limit": 1})
            authenticated = True
        except TargetError as exc:
            problems.append(f"{exc.message}; {exc.hint}" if exc.hint else exc.message)
        warnings: list[str] = []
        if authenticated and not problems:
            warnings += await self._check_retention(versions)
        return TargetCheck(True, authenticated, versions.get("core"), versions, tuple(problems), tuple(warnings))

    async def _check_retention(self, versions: Mapping[str, str]) -> list[str]:
        """A warning when Pulp keeps serving superseded publications' files (see retention.py); only for
        targets with a repository whose distribution serves publications."""
        used = [self.plugins[e] for e in sorted(self.settings.repositories) if e in self.plugins]
        if not any(p.serves_publications for p in used):
            return []
        if retention.COMPONENT not in versions:
            return [
                f"targets.{self.settings.name}: cannot check {retention.SETTING} (the probe needs pulp_file); "
                f"make sure it is 0: {retention.HINT}"
            ]
        try:
            kept = await retention.probe_retention(self.api, self.content_origin)
        except TargetError as exc:
            return [f"targets.{self.settings.name}: could not check {retention.SETTING}: {exc.message}; "
                    f"make sure it is 0: {retention.HINT}"]
        if kept is None:
            return [
                f"targets.{self.settings.name}: could not check {retention.SETTING}: the content app at "
                f"{self.content_origin} did not serve the probe's file (check content-url); make sure it is 0: "
                f"{retention.HINT}"
            ]
        return [retention.retention_warning(self.settings.name)] if kept else []

    # ------------------------------------------------------------------------------------------ publish

    async def publish(
        self, ecosystem: str, artifacts: Sequence[Artifact], store: Store, progress: Progress
    ) -> PublishResult:
        started = time.monotonic()
        plugin = self._plugin(ecosystem)
        name = self._repo_name(ecosystem)
        endpoint = self.endpoint(ecosystem)
        structured = plugin if isinstance(plugin, StructuredPulpPlugin) else None
        if structured:
            await structured.prepare(self.api)  # refusals before anything changes
        wanted = {f.key: f for f in await plugin.files(artifacts, store, endpoint)}
        repo, dist = await self._ensure(plugin, ecosystem)
        base_href = str(repo["latest_version_href"])
        base_number = _version_number(base_href)
        current = await self._version_units(plugin, base_href)
        held = await structured.version_structure(self.api, base_href, current) if structured else {}
        placed = structured.structure_keys(list(wanted.values())) if structured else set()

        def result(uploaded: int, present: int, removed: int, version: int, changed: bool) -> PublishResult:
            return PublishResult(
                ecosystem,
                name,
                uploaded,
                present,
                removed,
                version,
                changed,
                endpoint,
                time.monotonic() - started,
            )

        same = set(current) == set(wanted) and set(held) == placed
        if same and await plugin.served_version(self.api, dist) == base_href:
            progress.note(f"{name}: version {base_number} already serves these {len(wanted)} files")
            return result(0, len(wanted), 0, base_number, False)

        missing = [a for key, a in wanted.items() if key not in current]
        to_remove = [href for key, href in current.items() if key not in wanted]
        existing = await plugin.find_existing(self.api, missing) if missing else {}
        to_upload = [a for a in missing if a.sha256 not in existing]
        hrefs = dict(existing)
        hrefs.update(await self._upload_all(plugin, to_upload, store, progress))
        add = [hrefs[a.sha256] for a in missing]
        unplaced: list[str] = []
        if structured:  # the placement units (pulp_deb) change in the same modify as the files
            units = {key: current.get(key) or hrefs[f.sha256] for key, f in wanted.items()}
            need = await structured.ensure_structure(self.api, wanted, units, held)
            add += [h for k, h in need.items() if k not in held]
            unplaced = [h for k, h in held.items() if k not in need]

        if add or to_remove or unplaced:
            what = f"making a new version of repository {name!r}"
            remove = to_remove + unplaced
            body = {"base_version": base_href, "add_content_units": add, "remove_content_units": remove}
            task = await self.api.run_task("POST", str(repo["pulp_href"]) + "modify/", body, what=what)
            made = [h for h in task.get("created_resources", []) if "/versions/" in h]
            version_href = made[0] if made else base_href  # no change in content: Pulp makes no version
        else:
            version_href = base_href  # the set is the latest version's; only the distribution lags
        await self._verify(plugin, name, version_href, wanted, placed if structured else None)
        await self.api.run_task(
            "PATCH",
            str(dist["pulp_href"]),
            await plugin.serve(self.api, version_href),
            what=f"switching distribution {name!r} to {version_href}",
        )
        served = await plugin.served_version(
            self.api, await self.api.get_json(str(dist["pulp_href"]), what="reading distribution")
        )
        if served != version_href:
            raise TargetError(
                f"targets.{self.settings.name}: distribution {name!r} serves {served}, not {version_href}, after "
                "the switch",
                hint="someone changed the distribution at the same time; check `mirrorctl history` and publish again",
            )
        number = _version_number(version_href)
        progress.note(f"{name}: distribution now serves version {number} ({len(wanted)} files)")
        return result(len(to_upload), len(wanted) - len(to_upload), len(to_remove), number, True)

    async def _upload_all(
        self, plugin: PulpPlugin, artifacts: Sequence[PublishFile], store: Store, progress: Progress
    ) -> dict[str, str]:
        if not artifacts:
            return {}
        gate = asyncio.Semaphore(self.upload_concurrency)
        done: dict[str, str] = {}
        errors: list[str] = []
        task = progress.task(f"{self.settings.name}: upload", sum(a.size for a in artifacts), unit="B")

        async def one(artifact: PublishFile) -> None:
            async with gate:
                try:
                    source: Path | bytes
                    if artifact.data is not None:
                        source = artifact.data  # generated by the plugin (an npm packument)
                    else:
                        source = store.blob_path(artifact.sha256)
                        if not source.is_file():
                            raise TargetError(f"{artifact.relative_path}: blob {artifact.sha256} is not in the store")
                    done[artifact.sha256] = await plugin.upload(self.api, artifact, source)
                except MirrorctlError as exc:
                    errors.append(exc.message)
                except OSError as exc:
                    errors.append(f"{artifact.relative_path}: cannot read its blob: {exc}")
                task.advance(artifact.size)

        try:
            await asyncio.gather(*(one(a) for a in artifacts))
        finally:
            task.close()
        if errors:
            errors.sort()
            shown = "\n  ".join(errors[:_ERRORS_SHOWN])
            more = f"\n  ... and {len(errors) - _ERRORS_SHOWN} more" if len(errors) > _ERRORS_SHOWN else ""
            raise TargetError(
                f"targets.{self.settings.name}: {len(errors)} of {len(artifacts)} uploads failed; nothing was "
                f"switched, the distribution serves what it served before:\n  {shown}{more}",
                hint="fix the cause and publish again: files already uploaded are not sent twice",
            )
        return done

    async def _verify(
        self,
        plugin: PulpPlugin,
        name: str,
        version_href: str,
        wanted: Mapping[tuple[str, str], PublishFile],
        placed: set[tuple[str, str]] | None = None,
    ) -> None:
        units = await self._version_units(plugin, version_href)
        have = set(units)
        lacking = sorted(f"{f} (sha256 {s})" for f, s in set(wanted) - have)
        extra = sorted(f"{f} (sha256 {s})" for f, s in have - set(wanted))
        if placed is not None and isinstance(plugin, StructuredPulpPlugin):
            held = set(await plugin.version_structure(self.api, version_href, units))
            lacking += sorted(f"{kind} {what}" for kind, what in placed - held)
            extra += sorted(f"{kind} {what}" for kind, what in held - placed)
        if lacking or extra:
            parts = ([f"lacks {', '.join(lacking[:10])}"] if lacking else []) + (
                [f"also holds {', '.join(extra[:10])}"] if extra else []
            )
            raise TargetError(
                f"targets.{self.settings.name}: repository {name!r} {version_href} is not the published set: "
                f"{'; '.join(parts)}; the distribution was not switched",
                hint="a unit with the same sha256 may exist under another filename in Pulp, or the repository "
                "was changed meanwhile; inspect the version and publish again",
            )

    # ---------------------------------------------------------------------------------- history/rollback

    async def _versions(self, ecosystem: str) -> tuple[PulpPlugin, dict[str, Any], list[PublishedVersion]]:
        plugin = self._plugin(ecosystem)
        name = self._repo_name(ecosystem)
        repo, dist = await self._find(plugin, ecosystem)
        if repo is None:
            raise TargetError(
                f"targets.{self.settings.name}: Pulp has no repository {name!r} yet",
                hint=f"publish first: mirrorctl publish --to {self.settings.name}",
            )
        served = await plugin.served_version(self.api, dist) if dist else None
        out: list[PublishedVersion] = []
        params = {"ordering": "-number"}
        async for v in self.api.paged(str(repo["versions_href"]), what=f"listing versions of {name!r}", params=params):
            summary = v.get("content_summary") or {}
            present = summary.get("present") or {}
            count = sum(int(c.get("count", 0)) for c in present.values())
            details = {"href": str(v["pulp_href"])}
            for key in ("added", "removed"):
                n = sum(int(c.get("count", 0)) for c in (summary.get(key) or {}).values())
                details[key] = str(n)
            out.append(
                PublishedVersion(
                    ecosystem,
                    name,
                    int(v["number"]),
                    str(v.get("pulp_created", "")),
                    count,
                    v["pulp_href"] == served,
                    details,
                )
            )
        return plugin, {"repo": repo, "dist": dist}, out

    async def history(self, ecosystem: str) -> list[PublishedVersion]:
        return (await self._versions(ecosystem))[2]

    async def rollback(self, ecosystem: str, version: int) -> PublishedVersion:
        plugin, found, versions = await self._versions(ecosystem)
        name = self._repo_name(ecosystem)
        chosen = next((v for v in versions if v.version == version), None)
        if chosen is None:
            known = ", ".join(str(v.version) for v in sorted(versions, key=lambda v: v.version))
            raise TargetError(
                f"targets.{self.settings.name}: repository {name!r} has no version {version} "
                f"(versions: {known or 'none'})",
                hint=f"pick one of them; `mirrorctl history --to {self.settings.name}` lists what each holds",
            )
        dist = found["dist"]
        if dist is None:
            raise TargetError(
                f"targets.{self.settings.name}: Pulp has no distribution {name!r}",
                hint=f"publish first: mirrorctl publish --to {self.settings.name}",
            )
        href = chosen.details["href"]
        await self.api.run_task(
            "PATCH",
            str(dist["pulp_href"]),
            await plugin.serve(self.api, href),
            what=f"pointing distribution {name!r} at version {version}",
        )
        return PublishedVersion(
            chosen.ecosystem,
            chosen.repository,
            chosen.version,
            chosen.created,
            chosen.artifacts,
            True,
            chosen.details,
        )

    async def trust_files(self, ecosystem: str) -> Mapping[str, str]:
        """Files (path relative to the workspace folder -> text) a workspace needs, beside the client config,
        to trust what this target serves for ``ecosystem``; for apt the signing service's public key (written
        by ``mirrorctl workspace-config --target`` at deb.WORKSPACE_KEYRING, for the sources' Signed-By)."""
        return dict(await self._plugin(ecosystem).trust_files(self.api))

    def endpoint(self, ecosystem: str) -> str:
        return self._plugin(ecosystem).endpoint(self.api.origin, self.content_origin, self._repo_name(ecosystem))


def _version_number(href: str) -> int:
    # ".../repositories/python/python/<uuid>/versions/<n>/"
    try:
        return int(href.rstrip("/").rsplit("/", 1)[1])
    except (IndexError, ValueError):
        raise TargetError(f"Pulp returned an unexpected repository version href {href!r}") from None
