"""Signed notes, the envelope of every checksum-database tree head (the rules of golang.org/x/mod sumdb/note).

A note is UTF-8 text ending in a newline, a blank line, then one signature line per key::

    go.sum database tree
    1234
    <base64 root hash>

    — sumdb.test AbCd...

A signature line is ``— <key name> <base64(4-byte key hash ‖ ed25519 signature of the text)>``. Keys:

    verifier  <name>+<8 hex key hash>+<base64(0x01 ‖ 32-byte public key)>
    signer    PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 ‖ 32-byte private seed)>

The key hash is the first 4 bytes (big-endian) of ``sha256(name + "\\n" + 0x01 ‖ public key)``; a key whose
written hash is not that one is refused, as the go command refuses it ("invalid verifier hash").

Example::

    signer, verifier = generate_key("sumdb.test")
    note = sign("hello\\n", Signer.parse(signer))
    assert open_note(note, [Verifier.parse(verifier)]).text == "hello\\n"
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from mirrorctl.errors import IntegrityError, shorten

ALG_ED25519 = 1
SIG_PREFIX = "— "  # an em dash and a space, as the go command writes it
MAX_SIGNATURES = 100  # note.Open refuses more, so a hostile note cannot make us verify forever


class NoteError(IntegrityError):
    """A note, key or signature refused. ``what`` names the note or key (its source), ``reason`` the rule."""

    def __init__(self, what: str, reason: str, *, hint: str | None = None) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}", hint=hint)


class MalformedNote(NoteError):
    """Text that is not a signed note or not a key (bad UTF-8, no blank line, a bad signature line)."""


class UnknownKey(NoteError):
    """A note none of whose signatures is by a known key. ``names`` lists the key names it was signed with."""

    def __init__(self, what: str, names: Iterable[str]) -> None:
        self.names = tuple(names)
        said = ", ".join(shorten(n, 60) for n in self.names) or "no key at all"
        super().__init__(
            what, f"not signed by a known key (signed by {said})",
            hint="check the verifier key (GOSUMDB) names the checksum database that signed it",
        )


class BadSignature(NoteError):
    """A signature by a known key (name and hash match) that does not verify: the note was altered or forged."""

    def __init__(self, what: str, name: str) -> None:
        self.name = name
        super().__init__(
            what, f"SECURITY: the signature by {shorten(name, 60)} does not verify",
            hint="the note was altered on the way; do not trust the proxy or database that served it",
        )


def key_hash(name: str, key: bytes) -> int:
    """The 32-bit hash naming a key: the first 4 bytes of sha256(name, newline, algorithm byte and key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _valid_name(name: str) -> bool:
    # note.isValidName: not empty, no Unicode space, no '+' (the key text's separator)
    return bool(name) and "+" not in name and not any(c.isspace() for c in name) and name.isprintable()


def _decode_key(what: str, text: str, field: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedNote(what, f"the {field} is not base64") from None
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise MalformedNote(what, f"the {field} is not an ed25519 key (algorithm byte 0x01 and 32 bytes)")
    return raw


def _parse_hash(what: str, text: str) -> int:
    if len(text) != 8 or any(c not in "0123456789abcdef" for c in text):
        raise MalformedNote(what, "the key hash is not 8 lower-case hex digits")
    return int(text, 16)


@dataclass(frozen=True)
class Verifier:
    """A public key that checks notes: ``name``, its 32-bit ``hash``, the ed25519 ``public`` key bytes."""

    name: str
    hash: int
    public: bytes

    @classmethod
    def parse(cls, text: str, *, what: str = "the verifier key") -> Verifier:
        parts = text.split("+", 2)  # base64 holds '+': the key is all after the second
        if len(parts) != 3 or not _valid_name(parts[0]):
            raise MalformedNote(what, f"{shorten(text, 80)!r} is not <name>+<hash>+<key>")
        name, written = parts[0], _parse_hash(what, parts[1])
        raw = _decode_key(what, parts[2], "key")
        if key_hash(name, raw) != written:
            raise MalformedNote(what, f"invalid verifier hash {parts[1]} for {shorten(name, 60)}")
        return cls(name, written, raw[1:])

    def text(self) -> str:
        return f"{self.name}+{self.hash:08x}+{base64.b64encode(bytes([ALG_ED25519]) + self.public).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key that signs notes (tests, and an inside database if one is ever run)."""

    name: str
    hash: int
    seed: bytes

    @classmethod
    def parse(cls, text: str, *, what: str = "the signer key") -> Signer:
        parts = text.split("+", 4)
        # never quote the text: it holds the private key
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _valid_name(parts[2]):
            raise MalformedNote(what, "not PRIVATE+KEY+<name>+<hash>+<key>")
        name, written = parts[2], _parse_hash(what, parts[3])
        seed = _decode_key(what, parts[4], "private key")[1:]
        public = _public_of(seed)
        if key_hash(name, bytes([ALG_ED25519]) + public) != written:
            raise MalformedNote(what, f"invalid signer hash {parts[3]} for {shorten(name, 60)}")
        return cls(name, written, seed)

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.hash, _public_of(self.seed))

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def _public_of(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def generate_key(name: str) -> tuple[str, str]:
    """A new key pair as texts: ``(signer key, verifier key)``."""
    if not _valid_name(name):
        raise MalformedNote("the key name", f"{shorten(name, 60)!r} holds a space or '+'")
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = bytes([ALG_ED25519]) + _public_of(seed)
    h = key_hash(name, public)
    signer = f"PRIVATE+KEY+{name}+{h:08x}+{base64.b64encode(bytes([ALG_ED25519]) + seed).decode()}"
    return signer, f"{name}+{h:08x}+{base64.b64encode(public).decode()}"


@dataclass(frozen=True)
class Signature:
    name: str
    hash: int
    base64: str  # the line's encoded ``hash ‖ signature``, kept as written


@dataclass(frozen=True)
class Note:
    """An opened note: its ``text``, the signatures that verified, and the others (unknown keys) as written."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _check_text(what: str, text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote(what, "the text does not end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise MalformedNote(what, "the text holds a control character")


def sign(text: str, *signers: Signer) -> bytes:
    """The signed note of ``text`` (which must end in a newline) by each of ``signers``."""
    _check_text("the note text", text)
    msg = text.encode()
    lines = []
    for s in signers:
        sig = struct.pack(">I", s.hash) + s.sign(msg)
        lines.append(f"{SIG_PREFIX}{s.name} {base64.b64encode(sig).decode()}\n")
    return (text + "\n" + "".join(lines)).encode()


def open_note(data: bytes, verifiers: Iterable[Verifier], *, what: str = "the signed note") -> Note:
    """Parse ``data`` and check its signatures; at least one must be by a key in ``verifiers``.

    Refuses (:class:`MalformedNote`) what is not a note; (:class:`BadSignature`) a known key's signature that
    does not verify, even beside a good one, as note.Open does; (:class:`UnknownKey`) a note no known key signed.
    """
    try:
        msg = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote(what, "not UTF-8") from None
    split = msg.rfind("\n\n")
    if split < 0 or not msg.endswith("\n"):
        raise MalformedNote(what, "no blank line before the signatures")
    text, sig_block = msg[: split + 1], msg[split + 2 :]
    _check_text(what, text)
    keys = {(v.name, v.hash): v for v in verifiers}
    verified: list[Signature] = []
    unverified: list[Signature] = []
    sig_lines = sig_block[:-1].split("\n") if sig_block else []
    if not sig_lines:
        raise MalformedNote(what, "no signature")
    if len(sig_lines) > MAX_SIGNATURES:
        raise MalformedNote(what, f"{len(sig_lines)} signatures (at most {MAX_SIGNATURES})")
    seen: set[tuple[str, int]] = set()
    for line in sig_lines:
        if not line.startswith(SIG_PREFIX):
            raise MalformedNote(what, f"signature line {shorten(line, 60)!r} does not start with '— '")
        name, sp, encoded = line[len(SIG_PREFIX) :].partition(" ")
        if not sp or not _valid_name(name) or " " in encoded:
            raise MalformedNote(what, f"signature line {shorten(line, 60)!r} is not '— <name> <signature>'")
        try:
            raw = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise MalformedNote(what, f"the signature by {shorten(name, 60)} is not base64") from None
        if len(raw) < 5:
            raise MalformedNote(what, f"the signature by {shorten(name, 60)} is too short")
        h = int(struct.unpack(">I", raw[:4])[0])
        sig = Signature(name, h, encoded)
        key = keys.get((name, h))
        if key is None:
            unverified.append(sig)
            continue
        if (name, h) in seen:
            continue  # note.Open accepts a repeated signature once
        seen.add((name, h))
        if not key.verify(text.encode(), raw[4:]):
            raise BadSignature(what, name)
        verified.append(sig)
    if not verified:
        raise UnknownKey(what, [s.name for s in unverified])
    return Note(text, tuple(verified), tuple(unverified))
