"""The upstream registry client (npm/registry.py): packument parsing (the typed msgspec path and the plain json
path agree, odd documents take the plain path) and tarballs larger than one hashing batch (verified whole,
stored whole, refused whole)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mirrorctl.ecosystems.npm.registry import RegistryClient, _parse_packument, _parse_packument_plain
from mirrorctl.errors import IntegrityError, NetworkError
from mirrorctl.inside.store import Store
from tests.fixtures.npm_registry import sri_sha512

DOC = {
    "name": "@acme/liba",
    "dist-tags": {"latest": "1.1.0", "next": "2.0.0-rc.1", "bad": 3},
    "versions": {
        "1.0.0": {
            "name": "@acme/liba",
            "version": "1.0.0",
            "dependencies": {"left": "^1.0.0"},
            "devDependencies": {"huge": "*"},
            "deprecated": "use 1.1",
            "dist": {
                "tarball": "https://registry.example.test/@acme/liba/-/liba-1.0.0.tgz",
                "integrity": "sha512-x",
                "shasum": "ab",
                "fileCount": 3,
            },
        },
        "1.1.0": {
            "optionalDependencies": {"native": "1.0.0"},
            "os": ["linux"],
            "cpu": ["x64"],
            "libc": ["glibc"],
            "peerDependencies": {"host": "^2"},
            "peerDependenciesMeta": {"host": {"optional": True}},
            "bundleDependencies": ["inner"],
            "dist": {"tarball": "https://registry.example.test/@acme/liba/-/liba-1.1.0.tgz", "integrity": 5},
        },
        "2.0.0-rc.1": {"dependencies": None, "dist": {"tarball": "t"}},
        "0.0.1": {"name": "no dist"},
    },
}


def as_dicts(versions: object) -> dict[str, dict[str, object]]:
    return {v: dict(obj) for v, obj in dict(versions).items()}  # type: ignore[call-overload]


def test_typed_and_plain_parsing_keep_the_same_fields() -> None:
    body = json.dumps(DOC).encode()
    typed = _parse_packument("@acme/liba", body, "u")
    plain = _parse_packument_plain("@acme/liba", body, "u")
    assert as_dicts(typed.versions) == as_dicts(plain.versions)
    assert typed.dist_tags == plain.dist_tags == {"latest": "1.1.0", "next": "2.0.0-rc.1"}
    assert sorted(typed.versions) == ["1.0.0", "1.1.0", "2.0.0-rc.1"]  # no dist: not a version npm can install
    assert "0.0.1" not in typed.versions and len(typed.versions) == 3
    one = typed.versions["1.0.0"]
    assert "devDependencies" not in one and one["deprecated"] == "use 1.1"
    assert one["dist"] == {
        "tarball": "https://registry.example.test/@acme/liba/-/liba-1.0.0.tgz",
        "integrity": "sha512-x",
        "shasum": "ab",
    }
    assert typed.versions["1.1.0"]["dist"] == {"tarball": "https://registry.example.test/@acme/liba/-/liba-1.1.0.tgz"}


def test_a_document_of_another_shape_takes_the_plain_path() -> None:
    odd = {**DOC, "versions": {**DOC["versions"], "9.9.9": "not an object"}}  # type: ignore[dict-item]
    parsed = _parse_packument("@acme/liba", json.dumps(odd).encode(), "u")
    assert sorted(parsed.versions) == ["1.0.0", "1.1.0", "2.0.0-rc.1"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "is not a JSON packument"),
        (b'{"versions": []}', "is not a packument (no versions object)"),
        (json.dumps({**DOC, "name": "other"}).encode(), "describes 'other', not '@acme/liba'"),
    ],
)
def test_refusals_name_the_package_and_the_url(body: bytes, message: str) -> None:
    with pytest.raises(NetworkError) as err:
        _parse_packument("@acme/liba", body, "https://registry.example.test/@acme%2fliba")
    assert (
        message in err.value.message
        and "npm @acme/liba: https://registry.example.test/@acme%2fliba" in err.value.message
    )


# -- tarballs larger than one hashing batch (hashed and written in a worker thread) ---------------------------


def _big_client(body: bytes) -> httpx.AsyncClient:
    async def handler(request: httpx.Request) -> httpx.Response:
        # Many small chunks, as a socket delivers them: several batches per tarball.
        return httpx.Response(200, stream=_Chunks(body))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.body), 16384):
            yield self.body[i : i + 16384]


async def test_a_tarball_of_several_batches_is_verified_and_stored_whole(tmp_path: Path) -> None:
    body = os.urandom(3 * 1024 * 1024 + 12345)
    store = Store(tmp_path / "store")
    async with _big_client(body) as client:
        registry = RegistryClient(client, "https://registry.example.test/", store=store)
        got = await registry.tarball("https://registry.example.test/big/-/big-1.0.0.tgz", sri_sha512(body), None, "big")
        await registry.close()
    assert got.sha256 == hashlib.sha256(body).hexdigest() and got.size == len(body)
    assert got.shasum == hashlib.sha1(body).hexdigest() and got.integrity == sri_sha512(body)
    assert store.blob_path(got.sha256).read_bytes() == body
    assert not list(store.tmp_dir.iterdir())


async def test_a_large_tarball_that_does_not_match_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    body = os.urandom(2 * 1024 * 1024 + 7)
    store = Store(tmp_path / "store")
    async with _big_client(body) as client:
        registry = RegistryClient(client, "https://registry.example.test/", store=store, retries=0)
        with pytest.raises(IntegrityError) as err:
            await registry.tarball(
                "https://registry.example.test/big/-/big-1.0.0.tgz", sri_sha512(b"other"), None, "npm big 1.0.0"
            )
        await registry.close()
    assert (
        "npm big 1.0.0: the tarball from https://registry.example.test/big/-/big-1.0.0.tgz does not match"
        in err.value.message
    )
    assert not list(store.tmp_dir.iterdir())
    assert not (store.root / "blobs").exists() or not any(p.is_file() for p in (store.root / "blobs").rglob("*"))
