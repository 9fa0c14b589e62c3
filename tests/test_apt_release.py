"""InRelease verification with gpgv and index checks against the Release SHA256 lines."""

from __future__ import annotations

import hashlib
import lzma
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt.release import check_index, parse_packages, verify_inrelease
from mirrorctl.errors import IntegrityError

PACKAGES = b"Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nFilename: pool/main/h/hello/hello.deb\n"


@dataclass
class ArchiveKey:
    home: Path
    fingerprint: str
    keyring: Path  # binary export, as Signed-By would use


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    proc = subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], input=data, capture_output=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def _make_key(home: Path, uid: str, *, armor: bool = False) -> Iterator[ArchiveKey]:
    home.mkdir(mode=0o700)
    # ed25519 without a passphrase: generated in well under a second, so CI never needs to skip.
    _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = _gpg(home, "--with-colons", "--list-keys", uid).decode()
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    keyring = home / ("key.asc" if armor else "key.gpg")
    keyring.write_bytes(_gpg(home, *(["--armor"] if armor else []), "--export", fpr))
    try:
        yield ArchiveKey(home, fpr, keyring)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)


@pytest.fixture
def archive_key(tmp_path: Path) -> Iterator[ArchiveKey]:
    yield from _make_key(tmp_path / "archive", "Test Archive <archive@upstream.example.test>")


@pytest.fixture
def other_key(tmp_path: Path) -> Iterator[ArchiveKey]:
    yield from _make_key(tmp_path / "other", "Someone Else <other@upstream.example.test>", armor=True)


def release_text(suite: str = "bookworm", packages: bytes = PACKAGES) -> bytes:
    xz = lzma.compress(packages)
    lines = [
        "Origin: Test", f"Suite: {suite}", "Codename: bookworm", "Architectures: amd64 arm64", "Components: main",
        "SHA256:",
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-amd64/Packages",
        f" {hashlib.sha256(xz).hexdigest()} {len(xz)} main/binary-amd64/Packages.xz",
    ]
    return ("\n".join(lines) + "\n").encode()


def sign(key: ArchiveKey, text: bytes) -> bytes:
    return _gpg(key.home, "--local-user", key.fingerprint, "--clearsign", data=text)


def test_verified_release_parses_and_index_checks(archive_key: ArchiveKey) -> None:
    rel = verify_inrelease(sign(archive_key, release_text()), archive_key.keyring, suite="bookworm")
    assert rel.signer_fingerprint == archive_key.fingerprint
    assert rel.architectures == ("amd64", "arm64") and rel.components == ("main",)
    packed = lzma.compress(PACKAGES)
    assert check_index(rel, "main/binary-amd64/Packages.xz", packed) == PACKAGES
    [stanza] = parse_packages(check_index(rel, "main/binary-amd64/Packages", PACKAGES))
    assert stanza["Package"] == "hello"


def test_allowed_fingerprints(archive_key: ArchiveKey) -> None:
    signed = sign(archive_key, release_text())
    assert verify_inrelease(signed, archive_key.keyring, suite="bookworm", fingerprints=[archive_key.fingerprint])
    with pytest.raises(IntegrityError, match=rf"signed by {archive_key.fingerprint}, which is not an allowed key"):
        verify_inrelease(signed, archive_key.keyring, suite="bookworm", fingerprints=["0" * 40])


def test_refusal_tampered_inrelease(archive_key: ArchiveKey) -> None:
    signed = sign(archive_key, release_text())
    tampered = signed.replace(b"Origin: Test", b"Origin: Evil")
    assert tampered != signed
    with pytest.raises(IntegrityError, match=r"InRelease of suite 'bookworm': signature refused \(bad or missing"):
        verify_inrelease(tampered, archive_key.keyring, suite="bookworm")


def test_refusal_unsigned_text_is_not_parsed(archive_key: ArchiveKey) -> None:
    with pytest.raises(IntegrityError, match=r"suite 'bookworm': signature refused"):
        verify_inrelease(release_text(), archive_key.keyring, suite="bookworm")


def test_refusal_signed_by_another_key(archive_key: ArchiveKey, other_key: ArchiveKey) -> None:
    signed_by_other = sign(other_key, release_text())
    with pytest.raises(IntegrityError, match=r"suite 'bookworm': signature refused \(made by a key not in the keyring"):
        verify_inrelease(signed_by_other, archive_key.keyring, suite="bookworm")
    # The armored keyring of the other key does accept it: the refusal was about trust, not format.
    assert verify_inrelease(signed_by_other, other_key.keyring, suite="bookworm").signer_fingerprint == (
        other_key.fingerprint
    )


def test_refusal_release_for_another_suite(archive_key: ArchiveKey) -> None:
    signed = sign(archive_key, release_text(suite="trixie").replace(b"Codename: bookworm", b"Codename: trixie"))
    with pytest.raises(IntegrityError, match=r"fetched for suite 'bookworm' describes suite 'trixie'"):
        verify_inrelease(signed, archive_key.keyring, suite="bookworm")


def test_refusal_index_hash_and_size_mismatch(archive_key: ArchiveKey) -> None:
    rel = verify_inrelease(sign(archive_key, release_text()), archive_key.keyring, suite="bookworm")
    same_size = PACKAGES.replace(b"2.10-3", b"2.10-4")
    with pytest.raises(IntegrityError, match=r"index main/binary-amd64/Packages of suite 'bookworm': sha256"):
        check_index(rel, "main/binary-amd64/Packages", same_size)
    with pytest.raises(IntegrityError, match=r"index main/binary-amd64/Packages of suite 'bookworm': size"):
        check_index(rel, "main/binary-amd64/Packages", PACKAGES + b"\n")
    with pytest.raises(IntegrityError, match=r"index main/binary-arm64/Packages of suite 'bookworm' is not listed"):
        check_index(rel, "main/binary-arm64/Packages", PACKAGES)
