"""Architecture: all packages published only in ``<component>/binary-all/Packages`` (reprepro, aptly, vendor
archives): the lock reads binary-all for every architecture exactly when apt does (the Release lists the index,
its Architectures names ``all``, no ``No-Support-for-Architecture-all: Packages``), checks it against the Release,
fetches it once, and records the arch-all .debs with every architecture that needs them. A Debian-style suite
(that field present) costs no binary-all request. The real apt-get agrees; refusals leave the lock untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt.lock import arch_all_index
from mirrorctl.ecosystems.apt.release import IndexEntry, VerifiedRelease
from mirrorctl.ecosystems.apt.repo import build_repository
from mirrorctl.inside.serve.app import StoreContent
from tests.fixtures.apt_store import SUITE, apt_store
from tests.fixtures.apt_upstream import (  # noqa: F401  (fixtures used by name)
    ARCHES,
    FixtureAptUpstream,
    apt_fixture_material,
    apt_upstream_fixture,
)
from tests.test_apt_lock import (
    CLOSURE,
    PROFILE,
    apt_get_simulate,
    artifacts,
    lock_path,
    ok,
    per_arch,
    refused,
    set_profile,
    write_config,
)

BINARY_ALL = "/debian/dists/bookworm/main/binary-all/"


def binary_all_requests(up: FixtureAptUpstream, since: int = 0) -> list[str]:
    return [p for _, p in up.log[since:] if p.startswith(BINARY_ALL)]


def republish(up: FixtureAptUpstream, arch_all: str, **fields: str) -> None:
    up.arch_all = arch_all
    up.release_fields = dict(fields)
    up.publish()


@pytest.fixture
def work(tmp_path: Path, apt_upstream: FixtureAptUpstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, apt_upstream)
    (tmp_path / "profiles").mkdir()
    set_profile(tmp_path, PROFILE)
    return tmp_path


@pytest.fixture
def inline_lock(work: Path) -> bytes:
    """The lock of the fixture archive as it is by default (arch-all packages in every binary-<arch>)."""
    ok("lock", "base")
    return lock_path(work).read_bytes()


def test_arch_all_only_in_binary_all_is_locked_for_each_architecture(
    work: Path, apt_upstream: FixtureAptUpstream, inline_lock: bytes
) -> None:
    republish(apt_upstream, "binary-all")
    amd64 = (apt_upstream.dists / "main/binary-amd64/Packages").read_text()
    assert "Package: data-common" not in amd64 and "Architecture: all" not in amd64  # only binary-all has them
    before = len(apt_upstream.log)
    ok("lock", "--refresh", "base")
    arts = artifacts(work)
    closure = per_arch(arts)
    assert {arch: set(names) for arch, names in closure.items()} == {"amd64": CLOSURE, "arm64": CLOSURE}
    [common] = [a for a in arts if a.name == "data-common"]
    deb = apt_upstream.deb("data-common", "all")
    assert common.targets == ("amd64", "arm64")
    assert common.attrs == {"architecture": "all", "suite": "bookworm", "component": "main",
                            "pool": "pool/main/d/data-common/data-common_0.5-2_all.deb"}
    assert (common.filename, common.size, common.sha256) == ("data-common_0.5-2_all.deb", deb.size, deb.sha256)
    # The same .debs as when every binary-<arch> lists them: the same lock, byte for byte.
    assert lock_path(work).read_bytes() == inline_lock
    # binary-all is fetched once (its .gz form, as for the other indexes) and read for both architectures.
    assert binary_all_requests(apt_upstream, before) == [BINARY_ALL + "Packages.gz"]
    ok("lock", "--check", "base")


def test_recommends_found_in_binary_all(work: Path, apt_upstream: FixtureAptUpstream) -> None:
    republish(apt_upstream, "binary-all")
    set_profile(work, PROFILE + "recommends = true\n")
    ok("lock", "base")
    [doc] = [a for a in artifacts(work) if a.name == "app-doc"]
    assert doc.targets == ("amd64", "arm64") and doc.attrs["architecture"] == "all"


def test_debian_style_release_never_fetches_binary_all(
    work: Path, apt_upstream: FixtureAptUpstream, inline_lock: bytes
) -> None:
    # Debian: arch-all stanzas in every binary-<arch> and a binary-all the Release lists, with the field saying
    # binary-<arch> is complete. binary-all no longer matches its Release line: reading it would refuse the lock.
    republish(apt_upstream, "both", **{"No-Support-for-Architecture-all": "Packages"})
    for suffix in ("", ".gz", ".xz"):
        apt_upstream.tamper_index("all", suffix)
    before = len(apt_upstream.log)
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == inline_lock
    assert binary_all_requests(apt_upstream, before) == []
    assert sorted(p for _, p in apt_upstream.log[before:]) == ["/debian/dists/bookworm/InRelease"] + [
        f"/debian/dists/bookworm/main/binary-{arch}/Packages.gz" for arch in ARCHES
    ]


def test_binary_all_beside_complete_arch_indexes_gives_the_same_lock(
    work: Path, apt_upstream: FixtureAptUpstream, inline_lock: bytes
) -> None:
    # Without the field apt reads both and finds each arch-all package twice, with the same pool file and hash.
    republish(apt_upstream, "both")
    before = len(apt_upstream.log)
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == inline_lock
    assert binary_all_requests(apt_upstream, before) == [BINARY_ALL + "Packages.gz"]


def test_binary_all_not_read_when_architectures_lacks_all(
    work: Path, apt_upstream: FixtureAptUpstream, inline_lock: bytes
) -> None:
    # apt reads binary-all only for a Release whose Architectures names all (when it has that field at all).
    apt_upstream.architectures = ARCHES
    republish(apt_upstream, "binary-all")
    before = len(apt_upstream.log)
    out = refused(1, "lock", "--refresh", "base")
    assert "data-common, which cannot be satisfied" in out
    assert binary_all_requests(apt_upstream, before) == []
    assert lock_path(work).read_bytes() == inline_lock


@pytest.mark.parametrize("workers", [False, True])
def test_refusal_tampered_binary_all(work: Path, apt_upstream: FixtureAptUpstream, monkeypatch: pytest.MonkeyPatch,
                                     workers: bool) -> None:
    if workers:  # each architecture's worker process receives the binary-all text as it streams in
        monkeypatch.setattr("mirrorctl.ecosystems.apt.lock._PARALLEL_MIN_BYTES", 0)
    republish(apt_upstream, "binary-all")
    apt_upstream.tamper_index("all")
    out = refused(1, "lock", "base")
    assert "index main/binary-all/Packages.gz of suite 'bookworm'" in out and "Release says" in out
    assert not lock_path(work).exists()
    republish(apt_upstream, "binary-all")
    ok("lock", "base")
    locked = lock_path(work).read_bytes()
    apt_upstream.tamper_index("all")
    out = refused(1, "lock", "--refresh", "base")
    assert "index main/binary-all/Packages.gz of suite 'bookworm'" in out and "Release says" in out
    assert lock_path(work).read_bytes() == locked


def test_worker_processes_read_binary_all(work: Path, apt_upstream: FixtureAptUpstream,
                                          monkeypatch: pytest.MonkeyPatch, inline_lock: bytes) -> None:
    republish(apt_upstream, "binary-all")
    monkeypatch.setattr("mirrorctl.ecosystems.apt.lock._PARALLEL_MIN_BYTES", 0)
    before = len(apt_upstream.log)
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == inline_lock
    assert binary_all_requests(apt_upstream, before) == [BINARY_ALL + "Packages.gz"]  # once, for both workers


def test_refusal_all_as_a_profile_architecture(work: Path, apt_upstream: FixtureAptUpstream,
                                               inline_lock: bytes) -> None:
    set_profile(work, PROFILE.replace('"arm64"]', '"all"]'))
    before = len(apt_upstream.log)
    out = refused(2, "lock", "base")
    assert "base.toml: apt.architectures[1] (line 3): 'all' is not an architecture to lock for" in out
    assert "Architecture: all packages are locked with each of them" in out
    assert len(apt_upstream.log) == before
    assert lock_path(work).read_bytes() == inline_lock


@pytest.mark.parametrize("recommends", [False, True])
def test_closure_agrees_with_apt_get_on_a_binary_all_archive(work: Path, apt_upstream: FixtureAptUpstream,
                                                             tmp_path: Path, recommends: bool) -> None:
    republish(apt_upstream, "binary-all")
    packages = ["app", "exim-lite"]
    text = PROFILE.replace('"app",', ", ".join(f'"{p}"' for p in packages) + ",")
    set_profile(work, text + ("recommends = true\n" if recommends else ""))
    ok("lock", "base")
    arts = artifacts(work)
    for arch in ARCHES:
        ours = {f"{a.name} {a.version}" for a in arts if arch in a.targets}
        assert "data-common 1:0.5-2" in ours
        extra = [] if recommends else ["--no-install-recommends"]
        assert ours == apt_get_simulate(tmp_path / f"apt-{arch}-{recommends}", apt_upstream, arch, packages, *extra)


def _release(architectures: tuple[str, ...], paths: tuple[str, ...], **fields: str) -> VerifiedRelease:
    entries = {p: IndexEntry(p, 1, "0" * 64) for p in paths}
    return VerifiedRelease("bookworm", "bookworm", architectures, ("main",), "F" * 40, entries, fields)


@pytest.mark.parametrize(
    ("architectures", "paths", "fields", "expected"),
    [
        (("all", "amd64"), ("main/binary-all/Packages", "main/binary-all/Packages.xz"), {},
         "main/binary-all/Packages.xz"),
        ((), ("main/binary-all/Packages",), {}, "main/binary-all/Packages"),  # no Architectures: apt reads it
        (("all", "amd64"), ("main/binary-all/Packages.gz",), {"No-Support-for-Architecture-all": "Packages"}, None),
        (("all", "amd64"), ("main/binary-all/Packages.gz",), {"no-support-for-architecture-all": "Packages"}, None),
        (("all", "amd64"), ("main/binary-all/Packages.gz",), {"No-Support-for-Architecture-all": "Contents"},
         "main/binary-all/Packages.gz"),  # the field names index types; only Packages concerns the lock
        (("amd64",), ("main/binary-all/Packages.gz",), {}, None),
        (("all", "amd64"), ("main/binary-amd64/Packages.gz",), {}, None),
    ],
)
def test_arch_all_index_follows_apt(architectures: tuple[str, ...], paths: tuple[str, ...], fields: dict[str, str],
                                    expected: str | None) -> None:
    assert arch_all_index(_release(architectures, paths, **fields), "main") == expected


def test_served_repository_lists_arch_all_in_every_architecture_and_no_binary_all(tmp_path: Path) -> None:
    # apt looks for binary-all only when the Release names all among Architectures; ours does not, and lists the
    # arch-all packages in every binary-<arch> index instead (so apt and a mirrorctl lock against it read no more).
    store, _, _ = apt_store(tmp_path / "store", tmp_path / "debs")
    view = StoreContent(store).current()
    assert view is not None
    repo = build_repository(view)
    release = repo.files[f"dists/{SUITE}/Release"].decode()
    [architectures] = [line for line in release.splitlines() if line.startswith("Architectures:")]
    assert architectures.split()[1:] == ["amd64", "arm64"]
    assert not any("binary-all" in path for path in repo.files)
    for arch in ("amd64", "arm64"):
        assert "Package: mctl-tool\n" in repo.files[f"dists/{SUITE}/main/binary-{arch}/Packages"].decode()
