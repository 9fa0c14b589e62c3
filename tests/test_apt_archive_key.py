"""The inside's apt archive key: generate, import, rotate with overlap, export, sign; every refusal."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.errors import UserError

from .fixtures.debs import TestKey


def _state(key: ArchiveKey) -> bytes | None:
    return key.state_path.read_bytes() if key.state_path.exists() else None


def _gpgv(keyring: bytes, signed: bytes, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp / f"k{abs(hash(keyring))}.gpg"
    path.write_bytes(keyring)
    return subprocess.run(["gpgv", "--status-fd", "1", "--keyring", str(path), "-"], input=signed, capture_output=True)


def test_generate_sign_export(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    fpr = key.generate()
    assert (key.home.stat().st_mode & 0o777) == 0o700
    assert key.signers() == [fpr]
    signed = key.clearsign(b"Origin: x\n")
    assert _gpgv(key.public_keyring(), signed, tmp_path).returncode == 0
    assert key.public_keyring(armor=True).startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    [info] = key.show()
    assert (info.fingerprint, info.status, info.algorithm) == (fpr, "current", "ed25519")


def test_a_store_under_a_deep_folder_still_signs(tmp_path: Path) -> None:
    # gpg-agent's socket path must fit in 108 bytes; a deep store path used to fail with "No agent running".
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "store" / "keys"
    key = ArchiveKey(deep)
    assert len(str(key.home / "S.gpg-agent.browser")) > 108
    fpr = key.generate()
    assert key.signers() == [fpr]
    signed = key.clearsign(b"Origin: deep\n")
    assert _gpgv(key.public_keyring(), signed, tmp_path).returncode == 0
    assert (key.home / "pubring.kbx").exists()  # the key lives in the store's home, not in the alias folder


def test_no_key_is_a_clear_error(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    for call in (key.signers, key.public_keyring, lambda: key.clearsign(b"x"), key.show, key.rotate):
        with pytest.raises(UserError, match="no apt archive key") as err:
            call()
        assert err.value.hint and "mirrorctl archive-key generate" in err.value.hint
    assert not key.folder.exists()


def test_generate_twice_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    fpr = key.generate()
    before = _state(key)
    with pytest.raises(UserError, match=f"already exists.*{fpr}"):
        key.generate()
    assert _state(key) == before


def test_bad_algorithm_is_refused(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    with pytest.raises(UserError, match="--algorithm 'dsa1024'"):
        key.generate(algorithm="dsa1024")
    assert _state(key) is None


def _secret(tmp_path: Path, *, passphrase: str = "") -> tuple[bytes, str]:
    """A secret key as a platform team would supply it (optionally protected by a passphrase)."""
    home = tmp_path / f"supplied{passphrase}"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", "--passphrase", passphrase]
    subprocess.run([*gpg, "--quick-generate-key", "ACME archive <apt@acme.test>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], check=True, capture_output=True, text=True)
    fpr = next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))
    armored = subprocess.run([*gpg, "--export-secret-keys", "--armor", fpr], check=True, capture_output=True).stdout
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    return armored, fpr


def test_import_a_supplied_key(tmp_path: Path) -> None:
    armored, fpr = _secret(tmp_path)
    key = ArchiveKey(tmp_path / "keys")
    assert key.import_key(armored, source="acme.asc") == fpr
    assert key.signers() == [fpr]
    assert _gpgv(key.public_keyring(), key.clearsign(b"x\n"), tmp_path).returncode == 0


def test_import_refusals_leave_nothing(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    fixture = TestKey.create(tmp_path / "pub")
    with pytest.raises(UserError, match=r"pub\.asc: holds no secret key"):
        key.import_key(fixture.public_keyring(armor=True), source="pub.asc")
    with pytest.raises(UserError, match=r"junk\.asc: not an OpenPGP secret key"):
        key.import_key(b"not a key", source="junk.asc")
    armored, fpr = _secret(tmp_path, passphrase="s3cret")
    with pytest.raises(UserError, match=rf"locked\.asc: key {fpr} cannot sign without a passphrase"):
        key.import_key(armored, source="locked.asc")
    assert _state(key) is None


def test_rotation_overlap_both_keyrings_verify(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    old = key.generate()
    old_keyring = key.public_keyring()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    new = key.rotate(overlap=timedelta(days=10), now=now)
    assert new != old
    during = now + timedelta(days=9)
    assert key.signers(during) == [new, old]
    signed = key.clearsign(b"Origin: x\n", now=during)
    new_only = subprocess.run(["gpg", "--batch", "--homedir", str(key.home), "--export", new],
                              capture_output=True, check=True).stdout
    for keyring in (old_keyring, new_only, key.public_keyring(now=during)):
        status = _gpgv(keyring, signed, tmp_path).stdout.decode()
        assert "GOODSIG" in status and "BADSIG" not in status, status
    both = key.public_keyring(now=during)
    assert all(f"fpr:::::::::{f}:" in _list(both, tmp_path) for f in (new, old))
    statuses = {i.fingerprint: i.status for i in key.show(now=during)}
    assert statuses == {new: "current", old: "retiring until 2030-01-11T00:00:00Z"}

    after = now + timedelta(days=11)
    assert key.signers(after) == [new]
    signed = key.clearsign(b"Origin: x\n", now=after)
    assert "GOODSIG" not in _gpgv(old_keyring, signed, tmp_path).stdout.decode()
    assert old not in _list(key.public_keyring(now=after), tmp_path)
    assert {i.fingerprint: i.status for i in key.show(now=after)}[old] == "retired"


def _list(keyring: bytes, tmp: Path) -> str:
    """gpg's colon listing of the keys in ``keyring``."""
    home = tmp / "list-home"
    home.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--with-colons", "--import-options", "show-only", "--import"],
        input=keyring, capture_output=True, check=True,
    ).stdout.decode()


def test_rotate_to_a_supplied_key_and_refusals(tmp_path: Path) -> None:
    key = ArchiveKey(tmp_path / "keys")
    old = key.generate()
    with pytest.raises(UserError, match="--overlap-days: must not be negative"):
        key.rotate(overlap=timedelta(days=-1))
    assert key.signers() == [old]
    armored, fpr = _secret(tmp_path)
    assert key.rotate(armored=armored, source="next.asc", overlap=timedelta(0)) == fpr
    assert key.signers() == [fpr]  # no overlap: the old key stops signing at once
    before = _state(key)
    with pytest.raises(UserError, match="already the current archive key"):
        key.rotate(armored=armored, source="next.asc")
    assert _state(key) == before


def test_cli(tmp_path: Path) -> None:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "store"}"\n')
    run = CliRunner().invoke
    r = run(app, ["-c", str(config), "archive-key", "show"])
    assert r.exit_code == 2 and "no apt archive key" in r.output and "archive-key generate" in r.output
    r = run(app, ["-c", str(config), "archive-key", "generate"])
    assert r.exit_code == 0, r.output
    r = run(app, ["-c", str(config), "archive-key", "export", "--out", str(tmp_path / "k.asc"), "--armor"])
    assert r.exit_code == 0 and (tmp_path / "k.asc").read_bytes().startswith(b"-----BEGIN PGP PUBLIC")
    r = run(app, ["-c", str(config), "archive-key", "rotate", "--overlap-days", "3"])
    assert r.exit_code == 0, r.output
    r = run(app, ["-c", str(config), "archive-key", "show"])
    assert r.exit_code == 0 and "current" in r.output and "retiring until" in r.output
    r = run(app, ["-c", str(config), "archive-key", "import", str(tmp_path / "missing.asc")])
    assert r.exit_code == 2 and "missing.asc: cannot be read" in r.output
    for sub in ("generate", "import", "rotate", "export", "show"):
        assert "Example: mirrorctl archive-key" in run(app, ["archive-key", sub, "--help"]).output
