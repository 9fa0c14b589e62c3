"""The static registry layout npm is published as in Pulp (the npm adapter's static_layout, through
mirrorctl/targets/pulp/files.py), without a Pulp: which paths the files get, and refusals before anything is
uploaded."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.errors import TargetError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.targets.pulp.files import PublishFile, layout_files
from tests.fixtures.npm_registry import PkgSpec
from tests.fixtures.npm_store import npm_artifact

ENDPOINT = "http://pulp.internal/pulp/content/npm-team/"


def registry_files(arts: Sequence[Artifact], store: Store, endpoint: str) -> list[PublishFile]:
    return layout_files(NpmEcosystem(), arts, store, endpoint)


def test_tarballs_at_the_public_layout_and_packuments_under_the_packument_dir(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    arts = [npm_artifact(store, PkgSpec("@acme/liba", "1.0.0")), npm_artifact(store, PkgSpec("left", "2.1.0"))]
    files = {f.relative_path: f for f in registry_files(arts, store, ENDPOINT)}
    assert sorted(files) == [
        "-/packuments/@acme/liba",
        "-/packuments/left",
        "@acme/liba/-/liba-1.0.0.tgz",
        "left/-/left-2.1.0.tgz",
    ]
    doc = json.loads(files["-/packuments/@acme/liba"].data or b"")
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == ENDPOINT + "@acme/liba/-/liba-1.0.0.tgz"


def test_a_scoped_and_an_unscoped_package_of_one_basename_keep_both_tarballs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    scoped = npm_artifact(store, PkgSpec("@acme/core", "1.0.0", description="scoped"))
    plain = npm_artifact(store, PkgSpec("core", "1.0.0", description="plain"))
    files = {f.relative_path: f for f in registry_files([scoped, plain], store, ENDPOINT)}
    assert sorted(files) == ["-/packuments/@acme/core", "-/packuments/core", "@acme/core/-/core-1.0.0.tgz",
                             "core/-/core-1.0.0.tgz"]  # fmt: skip
    assert files["@acme/core/-/core-1.0.0.tgz"].sha256 == scoped.sha256 != plain.sha256
    assert files["core/-/core-1.0.0.tgz"].sha256 == plain.sha256
    for a in (scoped, plain):
        doc = json.loads(files[f"-/packuments/{a.name}"].data or b"")
        assert doc["versions"]["1.0.0"]["dist"]["tarball"] == ENDPOINT + a.path


def test_a_tarball_path_without_its_scope_is_not_published(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    good = npm_artifact(store, PkgSpec("@acme/core", "1.0.0"))
    flat = dataclasses.replace(good, path="core/-/core-1.0.0.tgz")  # the scope dropped: another package's path
    with pytest.raises(TargetError) as err:
        registry_files([flat], store, ENDPOINT)
    assert "not published" in err.value.message and "is at '@acme/core/-/core-1.0.0.tgz'" in err.value.message


@pytest.mark.parametrize("name", ["../evil", "@acme/../../x", "a/b/c"])
def test_a_name_outside_npm_grammar_is_refused_before_anything_is_uploaded(tmp_path: Path, name: str) -> None:
    store = Store(tmp_path / "store")
    good = npm_artifact(store, PkgSpec("left", "2.1.0"))
    bad = Artifact("npm", name, "1.0.0", f"{name.rsplit('/', 1)[-1]}-1.0.0.tgz", good.size, good.sha256, (), good.attrs)
    with pytest.raises(TargetError) as err:
        registry_files([good, bad], store, ENDPOINT)
    assert f"npm {name} 1.0.0" in err.value.message and "not published" in err.value.message
    assert "not a valid npm package name" in err.value.message


def test_packuments_carry_the_recorded_dist_tags(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    def tagged(a: Artifact, tags: str) -> Artifact:
        return dataclasses.replace(a, attrs={**a.attrs, "dist-tags": tags})

    arts = [
        tagged(npm_artifact(store, PkgSpec("tool", "2.0.0")), "latest"),
        npm_artifact(store, PkgSpec("tool", "2.5.0")),
        tagged(npm_artifact(store, PkgSpec("tool", "3.0.0")), "next"),
        tagged(npm_artifact(store, PkgSpec("old", "1.0.0")), "next"),  # two locks disagree: the highest wins
        tagged(npm_artifact(store, PkgSpec("old", "1.1.0")), "next"),
        npm_artifact(store, PkgSpec("plain", "1.0.0")),  # a lock made before tags were recorded
        npm_artifact(store, PkgSpec("plain", "1.1.0-rc.1")),
    ]
    files = {f.relative_path: f for f in registry_files(arts, store, ENDPOINT)}

    def doc(name: str) -> dict[str, object]:
        return dict(json.loads(files[f"-/packuments/{name}"].data or b""))

    tool = doc("tool")
    # the upstream's latest (2.0.0) although 2.5.0 is higher; next at the mirrored 3.0.0
    assert tool["dist-tags"] == {"latest": "2.0.0", "next": "3.0.0"}
    assert doc("old")["dist-tags"] == {"latest": "1.1.0", "next": "1.1.0"}
    assert doc("plain")["dist-tags"] == {"latest": "1.0.0"}
    again = {f.relative_path: f for f in registry_files(list(reversed(arts)), store, ENDPOINT)}
    assert again["-/packuments/old"].data == files["-/packuments/old"].data, "deterministic, whatever the order"
