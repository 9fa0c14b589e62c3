"""Artifact identity is a path: the one path check, the one case-fold collision rule, merges keyed by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import BundleRefused, ProfileError, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import (
    Artifact,
    Companion,
    LegacyRecord,
    Lock,
    check_path,
    dump_lock,
    merge_artifacts,
    parse_lock,
    refuse_path_collisions,
)
from tests.fixtures.bundles import NOW, make_lock, make_world
from tests.fixtures.store_content import put_blob

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def npm(name: str, sha: str = SHA_A, version: str = "1.0.0", targets: tuple[str, ...] = ("linux-x64",)) -> Artifact:
    base = name.rsplit("/", 1)[-1]
    return Artifact("npm", name, version, f"{name}/-/{base}-{version}.tgz", 10, sha, targets)


@pytest.mark.parametrize(
    "path",
    [
        "core-1.0.0.tgz",
        "@acme/core/-/core-1.0.0.tgz",
        "golang.org/x/!text/@v/v0.14.0.zip",  # Go: the escaped module path
        "org/apache/commons/commons-lang3/3.14.0/commons-lang3-3.14.0.jar",  # Maven: the group path
        "acme.tools/1.2.0/linux-x64/acme.tools-1.2.0@linux-x64.vsix",  # an extension per platform
        "acme/model/0123abcd/tokenizer/.gitattributes",  # a model tree at a commit: dot files are files
        "pool/main/c/curl/curl_7.88.1-10_amd64.deb",
        "a/" * 300 + "x",
    ],
)
def test_safe_paths_pass(path: str) -> None:
    check_path(path, "test")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/../b", "'..' segment"),
        ("../b", "'..' segment"),
        ("a/./b", "'.' segment"),
        (".", "'.' segment"),
        ("a//b", "empty segment"),
        ("a/b/", "empty segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\x7fb", "control character"),
        ("a/" * 600, "longer than 1024 bytes"),
        ("x" * 256, "segment is longer than 255 bytes"),
    ],
)
def test_unsafe_paths_refused_naming_the_reason(path: str, why: str) -> None:
    with pytest.raises(ProfileError, match="unsafe artifact path") as err:
        check_path(path, "npm x 1.0.0")
    assert why in err.value.message and err.value.message.startswith("npm x 1.0.0: ")


def test_an_artifact_cannot_be_made_with_an_unsafe_path() -> None:
    with pytest.raises(ProfileError, match=r"npm evil 1\.0\.0: unsafe artifact path '\.\./x\.tgz'"):
        Artifact("npm", "evil", "1.0.0", "../x.tgz", 1, SHA_A)


def test_filename_is_the_last_segment() -> None:
    assert npm("@acme/core").filename == "core-1.0.0.tgz"
    assert npm("@acme/core").path == "@acme/core/-/core-1.0.0.tgz"


def test_scoped_and_unscoped_of_one_basename_do_not_collide() -> None:
    refuse_path_collisions([npm("@acme/core", SHA_A), npm("core", SHA_B)], "here")


def test_case_fold_collision_names_both_files() -> None:
    upper = Artifact("npm", "x", "1.0.0", "X/-/x-1.0.0.tgz", 1, SHA_A)
    lower = Artifact("npm", "x", "1.0.0", "x/-/x-1.0.0.tgz", 1, SHA_B)
    with pytest.raises(BundleRefused) as err:
        refuse_path_collisions([upper, lower], "b.bundle", BundleRefused)
    msg = err.value.message
    assert msg.startswith("b.bundle: npm files ")
    assert "'X/-/x-1.0.0.tgz'" in msg and "'x/-/x-1.0.0.tgz'" in msg and "differ only in case" in msg


def test_two_files_at_one_path_collide_and_the_same_file_twice_does_not() -> None:
    with pytest.raises(ProfileError, match="different files at one path"):
        refuse_path_collisions(merge_artifacts([[npm("core", SHA_A)], [npm("core", SHA_B)]]), "profiles web, data")
    refuse_path_collisions(merge_artifacts([[npm("core", SHA_A)], [npm("core", SHA_A)]]), "here")
    # Other ecosystems are other namespaces.
    refuse_path_collisions([npm("core", SHA_A), Artifact("pypi", "core", "1.0", "core-1.0.0.tgz", 1, SHA_B)], "here")


def test_a_companion_path_counts_too() -> None:
    meta = (Companion(".metadata", 1, SHA_B),)
    wheel = Artifact("pypi", "a", "1", "a/a-1-py3-none-any.whl", 1, SHA_A, companions=meta)
    clash = Artifact("pypi", "a", "1", "a/A-1-py3-none-any.whl.METADATA", 1, SHA_C)
    with pytest.raises(ProfileError, match=r"'a/a-1-py3-none-any\.whl\.metadata'"):
        refuse_path_collisions([wheel, clash], "here")


def test_equal_bytes_at_two_paths_both_stay_in_a_merge() -> None:
    # Today's regression: merges keyed on (ecosystem, sha256) silently dropped one of them.
    one, two = npm("@acme/core", SHA_A), npm("core", SHA_A)
    merged = merge_artifacts([[one], [two]])
    assert [a.path for a in merged] == ["@acme/core/-/core-1.0.0.tgz", "core/-/core-1.0.0.tgz"]


def test_merge_unites_targets_per_path() -> None:
    merged = merge_artifacts([[npm("core", targets=("linux-x64",))], [npm("core", targets=("linux-arm64",))]])
    assert len(merged) == 1 and merged[0].targets == ("linux-arm64", "linux-x64")


def test_lock_v2_round_trip_is_deterministic() -> None:
    lock = Lock("web", "sha256:" + "0" * 64, ("npm:linux-x64",), (npm("core", SHA_B), npm("@acme/core", SHA_A)))
    text = dump_lock(lock, source="profiles/web.toml")
    assert "lock-version = 2" in text and 'path = "@acme/core/-/core-1.0.0.tgz"' in text and "filename" not in text
    again = parse_lock(text, "web.lock")
    assert again.version == 2 and sorted(again.artifacts, key=Artifact.sort_key) == sorted(
        lock.artifacts, key=Artifact.sort_key
    )
    assert dump_lock(again, source="profiles/web.toml") == text


def test_lock_v2_record_with_filename_refused() -> None:
    text = dump_lock(Lock("web", "sha256:x", (), (npm("core"),)), source="p.toml")
    text = text.replace('path = "core/-/core-1.0.0.tgz"', 'filename = "core-1.0.0.tgz"')
    with pytest.raises(ProfileError, match=r"web\.lock: artifacts\[0\]: has filename, which lock-version 2 records"):
        parse_lock(text, "web.lock")


@pytest.mark.parametrize(("version", "hint"), [(3, "newer mirrorctl"), (0, "write it again"), ('"2"', "write it")])
def test_unknown_lock_version_names_it(version: object, hint: str) -> None:
    with pytest.raises(ProfileError, match=f"lock-version {version!s}".replace('"', "'")) as err:
        parse_lock(f"lock-version = {version}\nprofile = 'web'\n", "web.lock")
    assert "reads 1 and 2" in err.value.message and hint in (err.value.hint or "")


class Tree:
    """A stand-in for a model-tree ecosystem (files of a repository at a commit): its paths nest, and two files
    of one tree often hold the same bytes (a LICENSE in two folders)."""

    name = "tree"

    def validate_artifact(self, artifact: Artifact) -> None:
        pass

    def legacy_path(self, record: LegacyRecord) -> str:
        return record.filename


def tree_file(store: Store, path: str, data: bytes) -> Artifact:
    sha, size = put_blob(store, data)
    return Artifact("tree", "acme/model", "0123abcd", f"acme/model/0123abcd/{path}", size, sha)


def test_equal_bytes_at_two_paths_cross_the_gap_and_both_stay_in_the_view(tmp_path: Path) -> None:
    world = make_world(tmp_path, dists=())
    arts = [tree_file(world.outside, p, b"MIT License\n") for p in ("LICENSE", "sub/LICENSE")]
    world.locks = [make_lock("web", arts)]
    import_bundle(world.export(), world.inside, world.trusted, {"tree": Tree()}, now=NOW)
    view = world.inside.current_view()
    assert view is not None
    assert sorted(a.path for a in view.artifacts) == ["acme/model/0123abcd/LICENSE", "acme/model/0123abcd/sub/LICENSE"]


def test_export_refuses_a_case_fold_collision_naming_both_and_writes_nothing(tmp_path: Path) -> None:
    world = make_world(tmp_path, dists=())
    world.locks = [
        make_lock("web", [tree_file(world.outside, "README.md", b"one\n")]),
        make_lock("data", [tree_file(world.outside, "readme.md", b"two\n")]),
    ]
    before = world.outside.read_state("export")
    with pytest.raises(UserError) as err:
        world.export("twins.bundle")
    msg = err.value.message
    assert msg.startswith("profiles web, data: tree files 'acme/model/0123abcd/README.md'")
    assert "'acme/model/0123abcd/readme.md'" in msg and "differ only in case" in msg
    assert not (world.root / "twins.bundle").exists() and not list(world.root.glob(".twins.bundle*"))
    assert world.outside.read_state("export") == before
