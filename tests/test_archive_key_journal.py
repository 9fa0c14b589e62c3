"""``mirrorctl archive-key generate``, ``import`` and ``rotate`` change the key every workspace trusts: each is
journaled in the audit trail, done or refused, as every other change of the inside's state is (issue 13 item 11);
``export`` and ``show`` change nothing and are not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.apt.archive_key import DEFAULT_UID, ArchiveKey
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store

from .test_apt_archive_key import _secret


def _site(tmp_path: Path) -> tuple[Path, Store, ArchiveKey]:
    config = tmp_path / "mirrorctl.toml"
    config.write_text('[store]\npath = "s"\n')
    store = Store(tmp_path / "s")
    return config, store, ArchiveKey(store.root / "keys")


def _run(config: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["-c", str(config), "archive-key", *args])
    return done.exit_code, done.output


def _entries(store: Store) -> list[dict[str, Any]]:
    return [e for e in audit.last_entries(store) if str(e.get("event", "")).startswith("archive-key")]


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("seq", "time", "who", "prev", "hash")}


def test_generate_is_journaled_and_a_second_generate_is_journaled_as_refused(tmp_path: Path) -> None:
    config, store, key = _site(tmp_path)
    code, out = _run(config, "generate")
    assert code == 0, out
    fpr = key.current_fingerprint()
    [entry] = _entries(store)
    assert _plain(entry) == {
        "event": "archive-key-generate", "result": "ok", "fingerprint": fpr, "algorithm": "ed25519",
        "uid": DEFAULT_UID, "expire": "never",
    }
    assert entry["who"] == audit.who()
    before = key.state_path.read_bytes()
    code, out = _run(config, "generate", "--algorithm", "rsa4096")
    assert code == 2 and "already exists" in out, out
    assert key.state_path.read_bytes() == before  # the refusal changed no key
    refused = _plain(_entries(store)[-1])
    assert refused.pop("error").startswith(f"an apt archive key already exists in {key.folder} ({fpr})")
    assert refused == {
        "event": "archive-key-generate", "result": "refused", "algorithm": "rsa4096", "uid": DEFAULT_UID,
        "expire": "never",
    }
    assert audit.verify(store).entries == 2  # a whole chain: the entries are real journal entries


def test_a_bad_algorithm_is_refused_journaled_and_makes_no_key(tmp_path: Path) -> None:
    config, store, key = _site(tmp_path)
    code, out = _run(config, "generate", "--algorithm", "dsa1024")
    assert code == 2 and "--algorithm 'dsa1024'" in out, out
    assert not key.exists()
    [entry] = _entries(store)
    assert (entry["event"], entry["result"], entry["algorithm"]) == ("archive-key-generate", "refused", "dsa1024")


def test_import_rotate_are_journaled_export_and_show_are_not(tmp_path: Path) -> None:
    config, store, key = _site(tmp_path)
    code, out = _run(config, "import", str(tmp_path / "missing.asc"))
    assert code == 2 and "missing.asc: cannot be read" in out
    assert not key.exists()
    armored, supplied = _secret(tmp_path)
    (tmp_path / "acme.asc").write_bytes(armored)
    assert _run(config, "import", str(tmp_path / "acme.asc"))[0] == 0
    assert _run(config, "rotate", "--overlap-days", "3")[0] == 0
    rotated = key.current_fingerprint()
    assert _run(config, "export", "--out", str(tmp_path / "k.gpg"))[0] == 0
    assert _run(config, "show")[0] == 0
    entries = [_plain(e) for e in _entries(store)]
    assert [(e["event"], e["result"]) for e in entries] == [
        ("archive-key-import", "refused"), ("archive-key-import", "ok"), ("archive-key-rotate", "ok"),
    ]
    assert entries[0]["source"] == str(tmp_path / "missing.asc") and "cannot be read" in entries[0]["error"]
    assert entries[1] == {
        "event": "archive-key-import", "result": "ok", "source": str(tmp_path / "acme.asc"), "fingerprint": supplied,
    }
    assert entries[2] == {
        "event": "archive-key-rotate", "result": "ok", "fingerprint": rotated, "previous": supplied,
        "overlap-days": 3.0, "source": "generated", "algorithm": "ed25519",
    }
    before = key.state_path.read_bytes()
    code, out = _run(config, "rotate", "--overlap-days", "-1")
    assert code == 2 and "must not be negative" in out
    assert key.state_path.read_bytes() == before
    assert _plain(_entries(store)[-1])["result"] == "refused"
    assert audit.verify(store).entries == 4
