"""Ed25519 keys and signatures for bundles.

The outside holds one private key (``[signing] key`` in mirrorctl.toml); the inside trusts a list of public
keys (``[trust] keys``). A signature is the raw 64-byte Ed25519 signature over the exact bytes of
``manifest.json``, so a standard tool can check it without mirrorctl::

    openssl pkeyutl -verify -pubin -inkey mirrorctl.key.pub -rawin -in manifest.json -sigfile manifest.json.sig

A key is named by its *key id*: the first 16 hex digits of sha256 over the raw 32-byte public key. A key's
id is also the name of the *lineage* it starts: sequence numbers (rollback protection) are counted per lineage.
A lineage outlives its first key: a rotation (:mod:`mirrorctl.crossing.trust`) binds a new key to the same lineage.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mirrorctl.errors import UserError

SIGNATURE_SIZE = 64


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256 over the raw public key: short, stable, and the same on both sides."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    key_id: str
    private_path: Path
    public_path: Path


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key the inside accepts bundles from, and the file it came from (for messages)."""

    key_id: str
    public_key: Ed25519PublicKey
    path: Path
    # The lineage this key signs for, when a rotation bound it to an older key's lineage; None: its own id.
    bound_lineage: str | None = None

    @property
    def lineage(self) -> str:
        return self.bound_lineage or self.key_id

    def verifies(self, data: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def public_path_for(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def generate_key(out: Path) -> GeneratedKey:
    """Write a new private key to ``out`` (PKCS#8 PEM, mode 0600) and its public key to ``out.pub``.

    Refuses to overwrite either file: losing a signing key silently would orphan a lineage.
    Example: ``generate_key(Path("keys/mirrorctl.key"))``.
    """
    pub_path = public_path_for(out)
    for p in (out, pub_path):
        if p.exists() or p.is_symlink():
            raise UserError(
                f"{p}: already exists; refusing to overwrite a key",
                hint="choose another --out, or move the old key away first if you really mean to replace it",
            )
    if not out.parent.is_dir():
        raise UserError(
            f"{out.parent}: directory does not exist", hint=f"create it first: mkdir -p {out.parent}"
        )
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(out, private_pem, 0o600)
    try:
        _write_new(pub_path, public_pem, 0o644)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return GeneratedKey(key_id(private.public_key()), out, pub_path)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow a planted symlink or replace a file that appeared meanwhile.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise UserError(f"{path}: already exists; refusing to overwrite a key") from None
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``; UserError naming the file if it is missing or not an Ed25519 PEM key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"{path}: signing key not found",
            hint="make one with `mirrorctl key generate --out PATH`, set [signing] key in mirrorctl.toml",
        ) from None
    except PermissionError:
        raise UserError(f"{path}: signing key is not readable by this user") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"{path}: not an unencrypted PEM private key ({exc})",
            hint="use a key made by `mirrorctl key generate`",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(
            f"{path}: is a {type(key).__name__}, not an Ed25519 key", hint="use `mirrorctl key generate`"
        )
    return key


def load_public_key(path: Path) -> TrustedKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"{path}: trusted public key not found",
            hint="copy the .pub file written by `mirrorctl key generate` and list it in [trust] keys",
        ) from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"{path}: not a PEM public key ({exc})", hint="use the .pub file of the signing key"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{path}: is a {type(key).__name__}, not an Ed25519 public key")
    return TrustedKey(key_id(key), key, path)


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_from_pem(data: bytes, where: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; UserError naming ``where`` otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{where}: is a {type(key).__name__}, not an Ed25519 public key")
    return key


def load_any_public_key(path: Path) -> TrustedKey:
    """The public key of ``path``, which may hold a private key (its public half is taken) or a public key.

    Example: ``load_any_public_key(Path("keys/new.key"))`` and ``load_any_public_key(Path("keys/new.key.pub"))``
    name the same key."""
    try:
        head = path.read_bytes()[:64]
    except FileNotFoundError:
        raise UserError(f"{path}: key not found", hint="make one with `mirrorctl key generate --out PATH`") from None
    if b"PRIVATE KEY" in head:
        private = load_private_key(path)
        return TrustedKey(key_id(private.public_key()), private.public_key(), path)
    return load_public_key(path)


def load_trusted_keys(paths: Iterable[Path], *, config: Path | None = None) -> list[TrustedKey]:
    """Load ``[trust] keys``; an empty list is an error, never "accept anything"."""
    keys = [load_public_key(p) for p in paths]
    if not keys:
        where = f"{config}: " if config else ""
        raise UserError(
            f"{where}no trusted keys configured; refusing to verify or import any bundle",
            hint='list the signing key\'s .pub file in mirrorctl.toml: [trust] keys = ["keys/mirrorctl.key.pub"]',
        )
    return keys


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    return private_key.sign(data)


def find_signer(trusted: Sequence[TrustedKey], data: bytes, signature: bytes) -> TrustedKey | None:
    """The trusted key whose signature this is, or None. Every key is tried: the manifest is not yet trusted,
    so nothing in it may choose the key."""
    if len(signature) != SIGNATURE_SIZE:
        return None
    for key in trusted:
        if key.verifies(data, signature):
            return key
    return None
