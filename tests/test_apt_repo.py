"""The repository apt reads, built from a view: Packages as dpkg-scanpackages lists them, Release hashes,
InRelease that gpgv accepts, by-hash copies, determinism, and what is refused."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import lzma
import shutil
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.ecosystems.apt.release import verify_inrelease
from mirrorctl.ecosystems.apt.repo import ReleaseOptions, build_repository, signed_files
from mirrorctl.ecosystems.base import ServedView
from mirrorctl.errors import IntegrityError
from mirrorctl.inside.serve.app import StoreContent
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from tests.conftest import skip_or_fail

from .fixtures.apt_store import SUITE, apt_store
from .fixtures.debs import BuiltDeb
from .fixtures.store_content import publish_view

Served = tuple[Store, list[BuiltDeb], list[Artifact]]


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return apt_store(tmp_path / "store", tmp_path / "debs")


def _view(store: Store) -> ServedView:
    view = StoreContent(store).current()
    assert view is not None
    return view


def _scanpackages(tmp_path: Path, debs: list[BuiltDeb], arch: str) -> list[str]:
    """dpkg-scanpackages' stanzas for the same .debs laid out at their pool paths (MD5sum/SHA1 dropped)."""
    if not shutil.which("dpkg-scanpackages"):
        skip_or_fail("needs dpkg-scanpackages (dpkg-dev)")
    root = tmp_path / "scan"
    for d in debs:
        target = root / d.pool_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(d.path, target)
    out = subprocess.run(
        ["dpkg-scanpackages", "-m", "-a", arch, "pool"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    stanzas = [s for s in out.split("\n\n") if s.strip()]
    return sorted(
        "\n".join(line for line in s.strip("\n").split("\n") if not line.startswith(("MD5sum:", "SHA1:"))) + "\n"
        for s in stanzas
    )


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_packages_equal_dpkg_scanpackages(served: Served, tmp_path: Path, arch: str) -> None:
    store, debs, _ = served
    repo = build_repository(_view(store))
    ours = repo.files[f"dists/{SUITE}/main/binary-{arch}/Packages"].decode()
    mine = sorted(s.strip("\n") + "\n" for s in ours.split("\n\n") if s.strip())
    assert mine == _scanpackages(tmp_path, debs, arch)
    # arch-all packages are listed in both architectures; arm64 gets no amd64 build
    assert "Package: mctl-tool" in ours and "Package: mctl-provider" in ours
    assert ("Architecture: amd64" in ours) == (arch == "amd64")


def test_release_hashes_match_the_files_and_by_hash(served: Served) -> None:
    store, _, _ = served
    repo = build_repository(_view(store))
    release = repo.files[f"dists/{SUITE}/Release"].decode()
    assert "Valid-Until" not in release
    assert "Acquire-By-Hash: yes" in release
    assert "Architectures: amd64 arm64\n" in release and "Components: main\n" in release
    assert f"Suite: {SUITE}\n" in release and f"Codename: {SUITE}\n" in release
    assert "Date: Mon, 01 Jan 2024 00:00:00 UTC\n" in release  # the view's creation time
    lines = release.split("SHA256:\n", 1)[1].splitlines()
    assert len(lines) == 6
    for line in lines:
        digest, size, rel = line.split()
        data = repo.files[f"dists/{SUITE}/{rel}"]
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == int(size)
        folder = rel.rsplit("/", 1)[0]
        assert repo.files[f"dists/{SUITE}/{folder}/by-hash/SHA256/{digest}"] == data
    plain = repo.files[f"dists/{SUITE}/main/binary-amd64/Packages"]
    assert gzip.decompress(repo.files[f"dists/{SUITE}/main/binary-amd64/Packages.gz"]) == plain
    assert lzma.decompress(repo.files[f"dists/{SUITE}/main/binary-amd64/Packages.xz"]) == plain


def test_valid_until_and_origin_only_when_configured(served: Served) -> None:
    store, _, _ = served
    opts = ReleaseOptions(origin="ACME", label="ACME internal", valid_until=timedelta(days=7))
    release = build_repository(_view(store), opts).releases[SUITE].decode()
    assert "Origin: ACME\nLabel: ACME internal\n" in release
    assert "Valid-Until: Mon, 08 Jan 2024 00:00:00 UTC\n" in release


def test_inrelease_verifies_with_gpgv_against_the_exported_keyring(served: Served, tmp_path: Path) -> None:
    store, _, _ = served
    key = ArchiveKey(store.root / "keys")
    fpr = key.generate()
    repo = build_repository(_view(store))
    signed = signed_files(repo, key, key.signers())
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(key.public_keyring())
    inrelease = signed[f"dists/{SUITE}/InRelease"]
    proc = subprocess.run(["gpgv", "--keyring", str(keyring), "-"], input=inrelease, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    verified = verify_inrelease(inrelease, keyring, suite=SUITE)
    assert verified.signer_fingerprint.upper().endswith(fpr[-16:])
    assert set(verified.entries) == {p.split(f"dists/{SUITE}/", 1)[1] for p in repo.files
                                     if "/binary-" in p and "/by-hash/" not in p}
    # the detached signature verifies the plain Release
    (tmp_path / "Release").write_bytes(repo.releases[SUITE])
    (tmp_path / "Release.gpg").write_bytes(signed[f"dists/{SUITE}/Release.gpg"])
    proc = subprocess.run(["gpgv", "--keyring", str(keyring), str(tmp_path / "Release.gpg"), str(tmp_path / "Release")],
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    # signed once per signer set
    assert signed_files(repo, key, key.signers()) is signed


def test_deterministic_for_a_view(served: Served, tmp_path: Path) -> None:
    store, _, _ = served
    first = build_repository(_view(store))
    shutil.rmtree(store.root / "cache", ignore_errors=True)
    second = build_repository(_view(store))
    assert first.files == second.files
    assert (store.root / "cache" / "apt-control").is_dir()  # control files cached by digest


def _republish(store: Store, arts: list[Artifact], change: Callable[[Artifact], Artifact]) -> None:
    publish_view(store, [change(a) for a in arts], sequence=2)


def test_a_deb_that_disagrees_with_the_lock_is_refused(served: Served) -> None:
    store, _, arts = served
    target = next(a for a in arts if a.name == "mctl-libbase")
    _republish(store, arts, lambda a: dataclasses.replace(a, version="9.9") if a is target else a)
    with pytest.raises(IntegrityError, match=r"apt mctl-libbase 9\.9 .*the \.deb says .*3\.0-2"):
        build_repository(_view(store))


@pytest.mark.parametrize("pool", ["../../etc/passwd", "dists/bookworm/Release", "/abs/x.deb", "pool//x.deb"])
def test_a_bad_pool_path_is_refused(served: Served, pool: str) -> None:
    store, _, arts = served
    target = arts[0]
    _republish(store, arts, lambda a: dataclasses.replace(a, attrs={**a.attrs, "pool": pool}) if a is target else a)
    with pytest.raises(IntegrityError, match=r"attrs\.pool"):
        build_repository(_view(store))


def test_missing_attrs_are_refused(served: Served) -> None:
    store, _, arts = served
    target = arts[0]
    attrs = {k: v for k, v in target.attrs.items() if k != "suite"}
    _republish(store, arts, lambda a: dataclasses.replace(a, attrs=attrs) if a is target else a)
    with pytest.raises(IntegrityError, match=r"mctl-app 1\.0-1 .*attrs\.suite is missing"):
        build_repository(_view(store))
