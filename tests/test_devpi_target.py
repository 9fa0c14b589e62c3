"""The devpi target against an in-process fake of devpi's HTTP API (httpx.MockTransport): per-item errors
collected, bounded concurrency, the post-upload sha256 check, naming and refusals. No server needed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import TargetSettings
from mirrorctl.errors import TargetError, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import SILENT
from mirrorctl.targets.devpi import DevpiTarget

from .fixtures.store_content import closure_store

URL = "http://devpi.test:3141"


class FakeDevpi:
    """Just enough of devpi-server: login, users, a stage index, PEP 691 listings and the upload form."""

    def __init__(self, *, refuse: frozenset[str] = frozenset(), lie_about: frozenset[str] = frozenset()) -> None:
        self.files: dict[str, tuple[str, str]] = {}  # filename -> (project, sha256)
        self.index: dict[str, Any] | None = None
        self.users = {"team": "secret"}
        self.refuse, self.lie_about = refuse, lie_about
        self.in_flight = self.max_in_flight = 0
        self.uploads: list[str] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/+login":
            body = json.loads(request.content)
            if self.users.get(body["user"]) != body["password"]:
                return httpx.Response(401, json={"message": "could not be authenticated"})
            return httpx.Response(200, json={"result": {"password": "tok", "expiration": 36000}})
        if path == "/team/snap" and method == "GET":
            if self.index is None:
                return httpx.Response(404, json={"message": "no such stage"})
            projects = sorted({p for p, _ in self.files.values()})
            return httpx.Response(200, json={"result": {**self.index, "projects": projects}})
        if path == "/team/snap" and method == "PUT":
            assert request.headers["X-Devpi-Auth"] == base64.b64encode(b"team:tok").decode()
            self.index = json.loads(request.content)
            return httpx.Response(200, json={"result": self.index})
        if path.startswith("/team/snap/+simple/"):
            project = path.split("/")[4]
            files = [
                {"filename": f, "hashes": {"sha256": "0" * 64 if f in self.lie_about else sha}}
                for f, (p, sha) in self.files.items()
                if p == project
            ]
            return httpx.Response(200 if files else 404, json={"files": files})
        if path == "/team/snap/" and method == "POST":
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.01)
                body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
                assert len(body) == int(request.headers["Content-Length"])
                msg = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n" + body
                )
                parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
                assert parts[":action"].get_content().strip() == "file_upload"
                content = parts["content"]
                filename = str(content.get_filename())
                if filename in self.refuse:
                    return httpx.Response(400, json={"message": f"refused {filename}"})
                data = content.get_payload(decode=True)
                assert isinstance(data, bytes)
                project = str(parts["name"].get_content()).strip().lower().replace(".", "-").replace("_", "-")
                self.files[filename] = (project, hashlib.sha256(data).hexdigest())
                self.uploads.append(filename)
                return httpx.Response(200, json={"message": "ok"})
            finally:
                self.in_flight -= 1
        return httpx.Response(404, json={"message": f"unknown {method} {path}"})


def _target(fake: FakeDevpi, environ: Mapping[str, str] | None = None, **repos: str) -> DevpiTarget:
    ts = TargetSettings("dv", "devpi", URL, "DV_USER", "DV_PASS", repositories=repos or {"pypi": "team/snap"})
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    env = {"DV_USER": "team", "DV_PASS": "secret"} if environ is None else environ
    return DevpiTarget(ts, client, env, concurrency=2)


@pytest.fixture
def content(tmp_path: Path) -> tuple[Store, list[Artifact]]:
    return closure_store(tmp_path / "store", tmp_path / "build")


async def test_uploads_stream_the_blobs_with_bounded_concurrency(content: tuple[Store, list[Artifact]]) -> None:
    store, arts = content
    fake = FakeDevpi()
    result = await _target(fake).publish("pypi", arts, store, SILENT)
    assert result.uploaded == len(arts) and result.changed
    assert {f: sha for f, (_, sha) in fake.files.items()} == {a.filename: a.sha256 for a in arts}
    assert fake.max_in_flight == 2  # concurrent, and never more than asked
    assert fake.index == {"type": "stage", "bases": [], "volatile": False}
    again = await _target(fake).publish("pypi", arts, store, SILENT)
    assert (again.uploaded, again.present, again.changed) == (0, len(arts), False)
    assert len(fake.uploads) == len(arts)


async def test_per_item_errors_are_collected_and_raised_together(content: tuple[Store, list[Artifact]]) -> None:
    store, arts = content
    bad = {arts[0].filename, arts[2].filename}
    fake = FakeDevpi(refuse=frozenset(bad))
    with pytest.raises(TargetError, match="2 file") as info:
        await _target(fake).publish("pypi", arts, store, SILENT)
    for name in bad:
        assert f"{name}: devpi target dv: upload {name}: HTTP 400" in str(info.value)
    assert set(fake.uploads) == {a.filename for a in arts} - bad  # the others went in


async def test_a_listing_without_the_locks_sha256_after_upload_is_an_error(
    content: tuple[Store, list[Artifact]],
) -> None:
    store, arts = content
    fake = FakeDevpi(lie_about=frozenset({arts[1].filename}))
    with pytest.raises(TargetError, match="not served with the lock's sha256") as info:
        await _target(fake).publish("pypi", arts, store, SILENT)
    assert f"{arts[1].filename}: listed with sha256 {'0' * 64}, lock says {arts[1].sha256}" in str(info.value)


@pytest.mark.parametrize("value", ["team", "team/snap/x", "team/+simple", "../snap", "team/"])
def test_index_names_are_checked(value: str) -> None:
    with pytest.raises(UserError, match=r"targets\.dv\.repositories\.pypi"):
        _target(FakeDevpi(), pypi=value).endpoint("pypi")


def test_endpoint_and_missing_repository() -> None:
    assert _target(FakeDevpi()).endpoint("pypi") == f"{URL}/team/snap/+simple/"
    with pytest.raises(UserError, match="no index for pypi"):
        _target(FakeDevpi(), npm="x/y").endpoint("pypi")


async def test_missing_credentials_variables_are_a_user_error(content: tuple[Store, list[Artifact]]) -> None:
    store, arts = content
    fake = FakeDevpi()
    with pytest.raises(UserError, match="DV_PASS is not set"):
        await _target(fake, {"DV_USER": "team"}).publish("pypi", arts, store, SILENT)
    assert fake.index is None and not fake.uploads


async def test_rollback_is_refused_with_the_way_out_and_history_is_empty() -> None:
    target = _target(FakeDevpi())
    with pytest.raises(TargetError, match="devpi keeps no versions") as info:
        await target.rollback("pypi", 3)
    assert "publish the earlier snapshot" in (info.value.hint or "")
    assert await target.history("pypi") == []
