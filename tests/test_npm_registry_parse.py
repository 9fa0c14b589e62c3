"""Packument parsing (npm/registry.py): the typed msgspec path and the plain json path agree, odd documents
take the plain path, and what is kept per version is the same."""

from __future__ import annotations

import json

import pytest

from mirrorctl.ecosystems.npm.registry import _parse_packument, _parse_packument_plain
from mirrorctl.errors import NetworkError

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
