"""Keys and signatures: generation, refusal to overwrite, key ids, and verification by a standard tool."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mirrorctl.crossing.signing import (
    find_signer,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    sign,
)
from mirrorctl.errors import UserError
from tests.fixtures.bundles import make_world


def test_generate_writes_private_0600_and_public(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "k.key")
    assert key.private_path == tmp_path / "k.key"
    assert key.public_path == tmp_path / "k.key.pub"
    assert stat.S_IMODE(key.private_path.stat().st_mode) == 0o600
    assert key.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key.public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    public = load_public_key(key.public_path)
    raw = public.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key.key_id == public.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert key_id(load_private_key(key.private_path).public_key()) == key.key_id


@pytest.mark.parametrize("existing", ["k.key", "k.key.pub"])
def test_generate_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(UserError, match="already exists; refusing to overwrite"):
        generate_key(tmp_path / "k.key")
    assert (tmp_path / existing).read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_generate_refuses_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "k.key").symlink_to(target)
    with pytest.raises(UserError, match="already exists"):
        generate_key(tmp_path / "k.key")
    assert not target.exists()


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing\.key: signing key not found"):
        load_private_key(tmp_path / "missing.key")
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(UserError, match=r"junk\.pub: not a PEM public key"):
        load_public_key(tmp_path / "junk.pub")
    with pytest.raises(UserError, match="no trusted keys configured") as info:
        load_trusted_keys([])
    assert info.value.hint and "[trust] keys" in info.value.hint


def test_signature_found_only_for_the_right_key(tmp_path: Path) -> None:
    a, b = generate_key(tmp_path / "a.key"), generate_key(tmp_path / "b.key")
    sig = sign(load_private_key(a.private_path), b"manifest")
    trusted = [load_public_key(b.public_path), load_public_key(a.public_path)]
    signer = find_signer(trusted, b"manifest", sig)
    assert signer is not None and signer.key_id == a.key_id
    assert find_signer(trusted, b"manifesT", sig) is None
    assert find_signer([load_public_key(b.public_path)], b"manifest", sig) is None
    assert find_signer(trusted, b"manifest", sig[:-1]) is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_a_bundle_signature(tmp_path: Path) -> None:
    """The documented command, run for real: a standard tool, no mirrorctl code, accepts the signature."""
    world = make_world(tmp_path)
    bundle = world.export()
    out = tmp_path / "check"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(bundle), "manifest.json", "manifest.json.sig"], cwd=out, check=True)
    cmd = [
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(world.key.public_path),
        "-rawin",
        "-in",
        "manifest.json",
        "-sigfile",
        "manifest.json.sig",
    ]
    ok = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout

    # And it is a real check: one changed byte in the manifest makes openssl refuse.
    data = (out / "manifest.json").read_bytes()
    (out / "manifest.json").write_bytes(data.replace(b'"sequence":1', b'"sequence":9'))
    bad = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    assert bad.returncode != 0
    with tarfile.open(bundle) as tar:
        assert tar.getnames()[:2] == ["manifest.json", "manifest.json.sig"]
