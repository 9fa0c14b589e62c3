"""Whether Pulp still serves the files of a publication its distribution no longer serves.

pulpcore (3.123) keeps serving a superseded publication's files for ``DISTRIBUTED_PUBLICATION_RETENTION_PERIOD``
seconds (3 days by default) after a distribution moves to a new publication (pulpcore ``Distribution.
get_fallback_ca``): a package a rollback removed stays downloadable from the content app, and npm or apt still
install it. Only distributions that serve publications are affected (pulp_file, pulp_deb; pulp_python serves
repository versions). mirrorctl needs the period to be 0.

Pulp's API does not expose the setting (``GET status/`` lists no such field, and no endpoint lists settings), so
:func:`probe_retention` observes it: a throwaway pulp_file repository, one random file published and served,
then an empty publication served instead; if the content app still answers 200 for the file, the period is not
0. Everything made is deleted afterwards (the one-file content unit is left as an orphan for Pulp's cleanup).
"""

from __future__ import annotations

import uuid

import httpx

from mirrorctl.errors import TargetError

from .api import PulpApi
from .files import CONTENT_PATH_PREFIX

SETTING = "DISTRIBUTED_PUBLICATION_RETENTION_PERIOD"
PROBE_PREFIX = "mirrorctl-retention-probe-"
COMPONENT = "file"  # pulp_file: shipped with pulpcore, so the probe works on any Pulp
_REPOS = "repositories/file/file/"
_DISTS = "distributions/file/file/"
_PUBS = "publications/file/file/"
_CONTENT = "content/file/files/"

HINT = (
    f"set {SETTING} = 0 in Pulp's settings (settings.py, or PULP_{SETTING}=0 in the environment of pulpcore-api, "
    "-content and -worker) and restart Pulp; see docs/targets-pulp.md"
)


def retention_warning(target_name: str) -> str:
    return (
        f"targets.{target_name}: Pulp still serves files of a publication its distribution no longer serves "
        f"({SETTING} is not 0; pulpcore's default keeps them 3 days): a package a publish or rollback removed "
        f"stays installable from npm and apt distributions; {HINT}"
    )


async def probe_retention(api: PulpApi, content_origin: str) -> bool | None:
    """True: a superseded publication's file is still served (the period is not 0); False: it is gone at once;
    None: the probe could not tell (the first publication's file was not served either). TargetError when Pulp
    refused a step (for example a user without the right to create repositories)."""
    name = PROBE_PREFIX + uuid.uuid4().hex[:12]
    path = f"{name}.txt"
    created: dict[str, str] = {}
    try:
        repo = await api.post_json(_REPOS, {"name": name}, what=f"creating probe repository {name!r}")
        created["repository"] = str(repo["pulp_href"])
        what = f"uploading the probe file into {name!r}"
        resp = await api.request(
            "POST",
            _CONTENT,
            what=what,
            files={"file": (path, uuid.uuid4().hex.encode(), "text/plain")},
            data={"relative_path": path, "repository": created["repository"]},
        )
        task = await api.wait_task(str(resp.json()["task"]), what=what)
        version = next(h for h in task.get("created_resources", []) if "/versions/" in h)
        first = await _publish(api, version, name)
        made = await api.run_task(
            "POST", _DISTS, {"name": name, "base_path": name, "publication": first}, what=f"distributing {name!r}"
        )
        created["distribution"] = str(made["created_resources"][0])
        url = f"{content_origin.rstrip('/')}{CONTENT_PATH_PREFIX}{name}/{path}"
        if await _status(api, url) != 200:
            return None
        empty = await _publish(api, str(repo["versions_href"]) + "0/", name)
        await api.run_task(
            "PATCH", created["distribution"], {"publication": empty}, what=f"serving the empty version of {name!r}"
        )
        return await _status(api, url) == 200
    finally:
        for key in ("distribution", "repository"):
            if key in created:
                try:
                    await api.run_task("DELETE", created[key], {}, what=f"deleting probe {key} {name!r}")
                except TargetError:
                    pass  # a leftover probe is harmless; its name says what it is


async def _publish(api: PulpApi, version_href: str, name: str) -> str:
    task = await api.run_task("POST", _PUBS, {"repository_version": version_href}, what=f"publishing {name!r}")
    return next(h for h in task.get("created_resources", []) if "/publications/" in h)


async def _status(api: PulpApi, url: str) -> int:
    try:
        resp = await api.client.get(url, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise TargetError(f"targets.{api.name}: cannot reach Pulp's content app at {url}: {exc}") from exc
    return resp.status_code
