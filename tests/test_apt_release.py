"""InRelease verification with gpgv and index checks against the Release SHA256 lines."""

from __future__ import annotations

import datetime as dt
import hashlib
import lzma
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt import release as release_mod
from mirrorctl.ecosystems.apt.index import IndexCheck, check_index_bytes, read_index
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


def test_freshness_valid_until_and_date(archive_key: ArchiveKey) -> None:
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    dated = release_text().replace(b"Origin: Test\n", b"Origin: Test\nDate: Mon, 01 Jun 2026 12:04:00 UTC\n"
                                   b"Valid-Until: Mon, 08 Jun 2026 12:00:00 UTC\n")
    signed = sign(archive_key, dated)
    # Within the skew for Date, before Valid-Until: accepted.
    assert verify_inrelease(signed, archive_key.keyring, suite="bookworm", now=now).fields["Valid-Until"]
    later = dt.datetime(2026, 6, 8, 12, 0, 1, tzinfo=dt.UTC)
    with pytest.raises(IntegrityError, match=r"expired: Valid-Until Mon, 08 Jun 2026 12:00:00 UTC is before the "
                                             r"local clock Mon, 08 Jun 2026 12:00:01 UTC") as err:
        verify_inrelease(signed, archive_key.keyring, suite="bookworm", now=later)
    assert err.value.hint is not None and "freeze attack" in err.value.hint
    earlier = now - release_mod.DATE_SKEW
    with pytest.raises(IntegrityError, match=r"not valid yet: Date Mon, 01 Jun 2026 12:04:00 UTC is after the local "
                                             r"clock Mon, 01 Jun 2026 11:55:00 UTC"):
        verify_inrelease(signed, archive_key.keyring, suite="bookworm", now=earlier)
    bad = sign(archive_key, release_text().replace(b"Origin: Test\n", b"Origin: Test\nValid-Until: soon\n"))
    with pytest.raises(IntegrityError, match=r"Valid-Until 'soon' is not a date"):
        verify_inrelease(bad, archive_key.keyring, suite="bookworm", now=now)


def test_streamed_index_check(archive_key: ArchiveKey) -> None:
    rel = verify_inrelease(sign(archive_key, release_text()), archive_key.keyring, suite="bookworm")
    packed = lzma.compress(PACKAGES)
    check = IndexCheck(rel, "main/binary-amd64/Packages.xz")
    for i in range(0, len(packed), 7):  # any chunking
        check.feed(packed[i:i + 7])
    assert check.finish() == PACKAGES
    # The compressed bytes match, but they decompress to more than the Release's line for the plain index: the
    # decompression stops at that size (a bomb never fills memory).
    bomb = lzma.compress(PACKAGES + b" " * 10_000_000)
    forged = release_text().replace(
        f" {hashlib.sha256(packed).hexdigest()} {len(packed)} ".encode(),
        f" {hashlib.sha256(bomb).hexdigest()} {len(bomb)} ".encode(),
    )
    rel2 = verify_inrelease(sign(archive_key, forged), archive_key.keyring, suite="bookworm")
    with pytest.raises(IntegrityError, match=rf"Packages.xz of suite 'bookworm': decompresses to more than "
                                             rf"{len(PACKAGES)} bytes"):
        check_index_bytes(rel2, "main/binary-amd64/Packages.xz", bomb)
    # Truncated compressed stream: refused even before the size check could say so.
    with pytest.raises(IntegrityError, match=r"Packages.xz of suite 'bookworm': size"):
        check_index_bytes(rel, "main/binary-amd64/Packages.xz", packed[:-10])
    with pytest.raises(IntegrityError, match=r"Packages.xz of suite 'bookworm': more than the"):
        check_index_bytes(rel, "main/binary-amd64/Packages.xz", packed + b"x")


def test_streamed_text_in_stanza_pieces(archive_key: ArchiveKey) -> None:
    rel = verify_inrelease(sign(archive_key, release_text()), archive_key.keyring, suite="bookworm")
    pieces: list[bytes] = []
    check = IndexCheck(rel, "main/binary-amd64/Packages", pieces.append)
    for i in range(0, len(PACKAGES), 5):
        check.feed(PACKAGES[i:i + 5])
    assert check.finish() == b""
    assert b"".join(pieces) == PACKAGES  # one stanza: one piece, handed out only at finish
    many = b"\n".join(PACKAGES.replace(b"hello", f"p{i}".encode()) for i in range(50))
    pieces.clear()
    forged = release_text(packages=many)
    rel2 = verify_inrelease(sign(archive_key, forged), archive_key.keyring, suite="bookworm")
    check = IndexCheck(rel2, "main/binary-amd64/Packages", pieces.append)
    for i in range(0, len(many), 33):
        check.feed(many[i:i + 33])
    check.finish()
    assert len(pieces) > 10
    assert [s for p in pieces for s in read_index(p)] == read_index(many)


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
