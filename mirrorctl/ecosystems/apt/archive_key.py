"""The inside's OpenPGP archive key: what signs the served apt repository's InRelease and Release.gpg.

It lives in a private GNUPGHOME under ``<keys_dir>/apt/gnupg`` (mode 0700), beside ``keys.json``, which says
which key is current and which older keys still sign during a rotation overlap::

    {"current": "<fingerprint>", "retiring": [{"fingerprint": "<fpr>", "until": "2025-02-01T00:00:00Z"}]}

Rotation keeps workspaces working: until the overlap ends, InRelease carries a signature by the new key *and*
one by each retiring key, and the exported keyring holds all of them, so a workspace that still has the old
keyring verifies (apt needs one good signature from a key in its Signed-By keyring) and a workspace that got
the new keyring verifies too. After the overlap the old key neither signs nor is exported.

Every gpg call runs with ``--batch`` and a timeout, so a gpg waiting for a passphrase or an agent can never
hang the server. The key never leaves the store (``keys_dir`` is never carried in a bundle).

Example::

    key = ArchiveKey(store.root / "keys")
    key.generate()
    inrelease = key.clearsign(release_bytes)
    keyring = key.public_keyring(armor=True)
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mirrorctl.errors import MirrorctlError, UserError
from mirrorctl.inside.store import atomic_write

DEFAULT_UID = "mirrorctl internal archive key <apt-archive@mirror.internal>"
ALGORITHMS = ("ed25519", "rsa4096")
DEFAULT_OVERLAP = timedelta(days=30)
GPG_TIMEOUT_S = 60.0
_STATE = "keys.json"
_NO_KEY_HINT = "run `mirrorctl archive-key generate` (or `mirrorctl archive-key import FILE`) on the mirror host"

# One lock per GNUPGHOME in this process: the server signs from worker threads.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(home: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(home), threading.Lock())


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str, where: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise UserError(f"{where}: {text!r} is not a UTC time like 2025-01-31T00:00:00Z") from exc


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key of the archive keyring as ``show`` lists it."""

    fingerprint: str
    uid: str
    algorithm: str
    created: str  # ISO UTC
    expires: str | None
    status: str  # "current", "retiring until <time>", "retired"


# gpg-agent binds its sockets inside the GNUPGHOME, and a Unix socket path must fit in 108 bytes: a store under
# a deep folder would make every gpg call fail with "No agent running". Such a home is reached through a short
# symlink in a private temporary folder (mode 0700, ours), one per home and process, removed at exit.
_SOCKET_ROOM = 80  # longest home used as is: room for "/S.gpg-agent.browser" and the 108-byte limit
_aliases: dict[str, Path] = {}


def _short_home(home: Path) -> Path:
    if len(os.fsencode(str(home))) <= _SOCKET_ROOM:
        return home
    with _locks_guard:
        alias = _aliases.get(str(home))
        if alias is None:
            folder = Path(tempfile.mkdtemp(prefix="mctl-gpg-"))
            alias = folder / "h"
            alias.symlink_to(home.absolute())
            _aliases[str(home)] = alias
            atexit.register(_drop_alias, alias)
        return alias


def _drop_alias(alias: Path) -> None:
    _kill_agent(alias)
    shutil.rmtree(alias.parent, ignore_errors=True)


def _run_gpg(home: Path, args: Sequence[str], *, data: bytes | None = None, timeout: float, what: str) -> bytes:
    cmd = ["gpg", "--batch", "--no-tty", "--quiet", "--homedir", str(_short_home(home)), *args]
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise UserError("gpg is not installed", hint="install the gnupg package on the mirror host") from exc
    except subprocess.TimeoutExpired as exc:
        raise MirrorctlError(
            f"apt archive key: gpg did not finish {what} within {timeout:g} s (GNUPGHOME {home})",
            hint="check that gpg-agent can start there; the key must not have a passphrase",
        ) from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()[-400:]
        raise MirrorctlError(f"apt archive key: gpg failed {what} (GNUPGHOME {home}): {detail}")
    return proc.stdout


def _kill_agent(home: Path) -> None:
    # Each GNUPGHOME gets its own gpg-agent; do not leave one behind per command.
    subprocess.run(
        ["gpgconf", "--homedir", str(_short_home(home)), "--kill", "gpg-agent"],
        capture_output=True, timeout=15, check=False,
    )


def _colons(home: Path, *, secret: bool, timeout: float) -> list[list[str]]:
    out = _run_gpg(
        home,
        ["--with-colons", "--fixed-list-mode", "--list-secret-keys" if secret else "--list-keys"],
        timeout=timeout,
        what="listing keys",
    )
    return [line.split(":") for line in out.decode(errors="replace").splitlines()]


def _primary_keys(rows: list[list[str]]) -> list[dict[str, str]]:
    """Primary keys from ``--with-colons`` output: fingerprint, uid, algorithm, created, expires, capabilities."""
    keys: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    in_primary = False
    for row in rows:
        kind = row[0]
        if kind in ("pub", "sec"):
            current = {
                "algo": row[3],
                "created": row[5],
                "expires": row[6],
                "caps": row[11] if len(row) > 11 else "",
                "curve": row[16] if len(row) > 16 else "",
                "fingerprint": "",
                "uid": "",
            }
            keys.append(current)
            in_primary = True
        elif kind in ("sub", "ssb"):
            in_primary = False
        elif kind == "fpr" and current is not None and in_primary and not current["fingerprint"]:
            current["fingerprint"] = row[9]
        elif kind == "uid" and current is not None and not current["uid"]:
            current["uid"] = row[9]
    return keys


def _algo_name(k: dict[str, str]) -> str:
    if k["curve"]:
        return k["curve"]
    return {"1": "rsa", "17": "dsa", "22": "eddsa"}.get(k["algo"], f"algo{k['algo']}")


def _epoch_iso(text: str) -> str | None:
    return _iso(datetime.fromtimestamp(int(text), UTC)) if text.isdigit() else None


class ArchiveKey:
    """The archive keyring under ``keys_dir / "apt"``. Cheap to create; touches disk only when used."""

    def __init__(self, keys_dir: Path, *, timeout: float = GPG_TIMEOUT_S) -> None:
        self.folder = keys_dir / "apt"
        self.home = self.folder / "gnupg"
        self.timeout = timeout

    # --- state -------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.folder / _STATE

    def _read_state(self) -> dict[str, Any] | None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            state = json.loads(raw)
            if not isinstance(state, dict) or not isinstance(state.get("current"), str):
                raise ValueError("no current key")
            for r in state.get("retiring", []):
                _parse_iso(str(r["until"]), str(self.state_path))
                str(r["fingerprint"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"apt archive key state {self.state_path} is damaged: {exc}",
                hint="restore it from a backup, or move the folder away and generate a new key",
            ) from exc
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    def exists(self) -> bool:
        return self._read_state() is not None

    def _require(self) -> dict[str, Any]:
        state = self._read_state()
        if state is None:
            raise UserError(f"no apt archive key in {self.folder}", hint=_NO_KEY_HINT)
        return state

    def _ensure_home(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.home, 0o700)  # gpg warns about (and some versions refuse) a home others can read

    def current_fingerprint(self) -> str:
        return str(self._require()["current"])

    def signers(self, now: datetime | None = None) -> list[str]:
        """Fingerprints that sign now: the current key, then every retiring key whose overlap has not ended."""
        state = self._require()
        now = now or _utcnow()
        retiring = [
            str(r["fingerprint"])
            for r in state.get("retiring", [])
            if _parse_iso(str(r["until"]), str(self.state_path)) > now
        ]
        return [str(state["current"]), *[f for f in retiring if f != state["current"]]]

    # --- creating keys -----------------------------------------------------------------------------------

    def _generate_into(self, home: Path, uid: str, algorithm: str, expire: str) -> str:
        if algorithm not in ALGORITHMS:
            raise UserError(f"--algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
        before = {k["fingerprint"] for k in _primary_keys(_colons(home, secret=True, timeout=self.timeout))}
        _run_gpg(
            home,
            ["--yes", "--passphrase", "", "--pinentry-mode", "loopback", "--quick-generate-key", uid, algorithm, "sign",
             expire],
            timeout=max(self.timeout, 300.0),  # rsa4096 may take a while on a quiet machine
            what="generating a key",
        )
        after = [k["fingerprint"] for k in _primary_keys(_colons(home, secret=True, timeout=self.timeout))]
        new = [f for f in after if f not in before]
        if len(new) != 1:
            raise MirrorctlError(f"apt archive key: expected one new key in {home}, found {len(new)}")
        return new[0]

    def generate(self, *, uid: str = DEFAULT_UID, algorithm: str = "ed25519", expire: str = "never") -> str:
        """Create the first archive key (no passphrase); refuses when one exists. Returns its fingerprint."""
        with _lock_for(self.home):
            if self.exists():
                raise UserError(
                    f"an apt archive key already exists in {self.folder} ({self.current_fingerprint()})",
                    hint="use `mirrorctl archive-key rotate` to replace it with an overlap",
                )
            self._ensure_home()
            try:
                fpr = self._generate_into(self.home, uid, algorithm, expire)
                self._write_state({"current": fpr, "retiring": []})
            finally:
                _kill_agent(self.home)
            return fpr

    def _inspect_secret(self, armored: bytes, source: str) -> tuple[str, str]:
        """Check a supplied secret key in a throw-away home: exactly one primary key, able to sign without a
        passphrase. Returns (fingerprint, uid)."""
        tmp = Path(tempfile.mkdtemp(prefix="mctl-gpg-"))  # short path: gpg-agent's socket must fit
        try:
            try:
                _run_gpg(tmp, ["--import"], data=armored, timeout=self.timeout, what=f"reading {source}")
            except MirrorctlError as exc:
                raise UserError(f"{source}: not an OpenPGP secret key gpg can import", hint=exc.message) from exc
            keys = _primary_keys(_colons(tmp, secret=True, timeout=self.timeout))
            if not keys:
                raise UserError(
                    f"{source}: holds no secret key",
                    hint="export it with `gpg --export-secret-keys --armor FINGERPRINT`",
                )
            if len(keys) != 1:
                raise UserError(f"{source}: holds {len(keys)} secret keys; supply exactly one")
            fpr = keys[0]["fingerprint"]
            try:
                _run_gpg(
                    tmp,
                    ["--pinentry-mode", "loopback", "--passphrase", "", "--local-user", fpr, "--detach-sign"],
                    data=b"probe",
                    timeout=self.timeout,
                    what="test-signing",
                )
            except MirrorctlError as exc:
                raise UserError(
                    f"{source}: key {fpr} cannot sign without a passphrase",
                    hint="the server signs unattended: remove the passphrase (gpg --change-passphrase) first",
                ) from exc
            return fpr, keys[0]["uid"]
        finally:
            _kill_agent(tmp)
            shutil.rmtree(tmp, ignore_errors=True)

    def _import_into_home(self, armored: bytes, source: str) -> str:
        fpr, _ = self._inspect_secret(armored, source)
        self._ensure_home()
        _run_gpg(self.home, ["--import"], data=armored, timeout=self.timeout, what=f"importing {source}")
        return fpr

    def import_key(self, armored: bytes, *, source: str) -> str:
        """Use a supplied secret key (armored or binary, no passphrase) as the first archive key."""
        with _lock_for(self.home):
            if self.exists():
                raise UserError(
                    f"an apt archive key already exists in {self.folder} ({self.current_fingerprint()})",
                    hint="use `mirrorctl archive-key rotate --from FILE` to switch to the supplied key",
                )
            try:
                fpr = self._import_into_home(armored, source)
                self._write_state({"current": fpr, "retiring": []})
            finally:
                _kill_agent(self.home)
            return fpr

    def rotate(
        self,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        armored: bytes | None = None,
        source: str = "",
        uid: str = DEFAULT_UID,
        algorithm: str = "ed25519",
        expire: str = "never",
        now: datetime | None = None,
    ) -> str:
        """Make a new current key (generated, or ``armored`` supplied); the old one keeps signing, and stays
        in the exported keyring, until ``now + overlap``. Returns the new fingerprint."""
        if overlap < timedelta(0):
            raise UserError("--overlap-days: must not be negative")
        with _lock_for(self.home):
            state = self._require()
            now = now or _utcnow()
            old = str(state["current"])
            try:
                if armored is not None:
                    fpr = self._import_into_home(armored, source or "the supplied key")
                else:
                    fpr = self._generate_into(self.home, uid, algorithm, expire)
            finally:
                _kill_agent(self.home)
            if fpr == old:
                raise UserError(f"{source or 'the new key'}: {fpr} is already the current archive key")
            retiring = [
                r
                for r in state.get("retiring", [])
                if r["fingerprint"] not in (fpr, old) and _parse_iso(str(r["until"]), "") > now
            ]
            if overlap > timedelta(0):
                retiring.append({"fingerprint": old, "until": _iso(now + overlap)})
            self._write_state({"current": fpr, "retiring": retiring})
            return fpr

    # --- using keys --------------------------------------------------------------------------------------

    def public_keyring(self, *, armor: bool = False, now: datetime | None = None) -> bytes:
        """The public keys workspaces trust now (current + retiring), binary or ASCII-armored."""
        signers = self.signers(now)
        with _lock_for(self.home):
            try:
                return _run_gpg(
                    self.home,
                    ["--export", "--export-options", "export-minimal", *(["--armor"] if armor else []), *signers],
                    timeout=self.timeout,
                    what="exporting the public keyring",
                )
            finally:
                _kill_agent(self.home)

    def _sign(self, data: bytes, mode: Sequence[str], signers: Sequence[str] | None, now: datetime | None) -> bytes:
        users = [a for f in (signers or self.signers(now)) for a in ("--local-user", f)]
        with _lock_for(self.home):
            return _run_gpg(
                self.home,
                ["--pinentry-mode", "loopback", "--passphrase", "", "--digest-algo", "SHA512", *users, *mode],
                data=data,
                timeout=self.timeout,
                what="signing",
            )

    def clearsign(self, data: bytes, *, signers: Sequence[str] | None = None, now: datetime | None = None) -> bytes:
        """An InRelease: ``data`` clearsigned by every key that signs now (or by ``signers``)."""
        return self._sign(data, ["--clearsign"], signers, now)

    def detach_sign(
        self, data: bytes, *, signers: Sequence[str] | None = None, now: datetime | None = None
    ) -> bytes:
        """A Release.gpg: armored detached signatures over ``data``."""
        return self._sign(data, ["--armor", "--detach-sign"], signers, now)

    def show(self, now: datetime | None = None) -> list[KeyInfo]:
        """Every key in the archive keyring, current first, with what it does now."""
        state = self._require()
        now = now or _utcnow()
        with _lock_for(self.home):
            try:
                keys = _primary_keys(_colons(self.home, secret=True, timeout=self.timeout))
            finally:
                _kill_agent(self.home)
        until = {str(r["fingerprint"]): str(r["until"]) for r in state.get("retiring", [])}
        infos: list[KeyInfo] = []
        for k in keys:
            fpr = k["fingerprint"]
            if fpr == state["current"]:
                status = "current"
            elif fpr in until and _parse_iso(until[fpr], "") > now:
                status = f"retiring until {until[fpr]}"
            else:
                status = "retired"
            infos.append(
                KeyInfo(fpr, k["uid"], _algo_name(k), _epoch_iso(k["created"]) or "", _epoch_iso(k["expires"]),
                        status)
            )
        order = {"current": 0}
        return sorted(infos, key=lambda i: (order.get(i.status, 1 if i.status.startswith("retiring") else 2),
                                            i.created))
