"""The commands end to end: key generate, bundle export (stale lock refused), bundle verify, import; and no
secret from the environment or mirrorctl.toml ends up in the bundle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Lock, dump_lock
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.bundles import add_dists, fingerprint

SECRETS = {"UP_USER": "alice-user-7c1e", "UP_PASSWORD": "hunter2-pw-0b9d", "UP_TOKEN": "tok-9f8e7d6c5b4a"}

PROFILE = """description = "web team"
[pypi]
requirements = ["alpha", "beta"]
python = ["3.11"]
platforms = ["manylinux_2_28_x86_64"]
"""


def cli(*args: str, cwd: Path) -> tuple[int, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output.replace("\n", "")  # rich wraps long lines


@pytest.fixture
def sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    (outside / "profiles").mkdir(parents=True)
    (outside / "keys").mkdir()
    (inside / "keys").mkdir(parents=True)
    (outside / "mirrorctl.toml").write_text(
        '[store]\npath = "store"\n'
        '[upstreams.pypi]\nurl = "https://upstream.example.test/simple/"\n'
        'username-env = "UP_USER"\npassword-env = "UP_PASSWORD"\n'
        '[signing]\nkey = "keys/mirrorctl.key"\n'
    )
    (inside / "mirrorctl.toml").write_text(
        '[store]\npath = "store"\n[trust]\nkeys = ["keys/mirrorctl.pub"]\n'
    )
    (outside / "profiles" / "web.toml").write_text(PROFILE)
    from tests.fixtures.wheels import Dist

    artifacts = add_dists(
        Store(outside / "store"), tmp_path / "work", [Dist("alpha", "1.0"), Dist("beta", "2.0")]
    )
    profile = load_profile(outside / "profiles" / "web.toml", load_ecosystems())
    lock = Lock("web", profile.inputs_digest, ("pypi:py3.11-manylinux_2_28_x86_64",), tuple(artifacts))
    profile.lock_path.write_text(dump_lock(lock, source="profiles/web.toml"))
    return outside, inside


def test_help_has_examples() -> None:
    for args in (["key", "generate"], ["bundle", "export"], ["bundle", "verify"], ["import"]):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Example: mirrorctl" in result.output, args


def test_full_flow(sites: tuple[Path, Path]) -> None:
    outside, inside = sites
    code, out = cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)
    assert code == 0 and "key id " in out
    code, out = cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)
    assert code == 2 and "refusing to overwrite" in out
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())

    code, out = cli("bundle", "export", "--out", "web.bundle", "--expires-in", "30", "web", cwd=outside)
    assert code == 0, out
    assert "sequence 1" in out and "2 artifacts" in out
    bundle = outside / "web.bundle"

    code, out = cli("bundle", "verify", str(bundle), cwd=inside)
    assert code == 0, out
    assert "OK" in out and "profiles   web" in out

    code, out = cli("import", str(bundle), cwd=inside)
    assert code == 0, out
    assert "imported bundle" in out
    before = fingerprint(Store(inside / "store"))
    code, out = cli("import", str(bundle), cwd=inside)
    assert code == 0 and "already served; nothing changed" in out
    assert fingerprint(Store(inside / "store")) == before

    # No secret, credential variable name, upstream host or local path crosses the gap.
    data = bundle.read_bytes()
    for needle in [
        *SECRETS.values(),
        *SECRETS,
        "upstream.example.test",
        str(outside),
        os.environ.get("USER", ""),
    ]:
        if needle:
            assert needle.encode() not in data, needle


def test_export_refuses_a_stale_lock(sites: tuple[Path, Path]) -> None:
    outside, _ = sites
    cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)
    (outside / "profiles" / "web.toml").write_text(PROFILE.replace('"beta"]', '"beta", "gamma"]'))
    code, out = cli("bundle", "export", "--out", "web.bundle", "web", cwd=outside)
    assert code == 2
    assert "web.lock: stale lock" in out and "mirrorctl lock web" in out
    assert not (outside / "web.bundle").exists()


def test_export_without_signing_key_configured(sites: tuple[Path, Path]) -> None:
    outside, _ = sites
    toml = outside / "mirrorctl.toml"
    toml.write_text(toml.read_text().replace('[signing]\nkey = "keys/mirrorctl.key"\n', ""))
    code, out = cli("bundle", "export", "--out", "web.bundle", cwd=outside)
    assert code == 2 and "no signing key configured" in out and "mirrorctl key generate" in out
    assert not (outside / "web.bundle").exists()


def test_verify_and_import_without_trust_refused(sites: tuple[Path, Path]) -> None:
    outside, inside = sites
    cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)
    assert cli("bundle", "export", "--out", "web.bundle", cwd=outside)[0] == 0
    (inside / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    for args in (["bundle", "verify"], ["import"]):
        code, out = cli(*args, str(outside / "web.bundle"), cwd=inside)
        assert code == 2 and "no trusted keys configured" in out and "[trust] keys" in out
    assert not (inside / "store" / "current").exists()


def test_import_refusal_exit_code_and_rollback_flag(sites: tuple[Path, Path]) -> None:
    outside, inside = sites
    cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    assert cli("bundle", "export", "--out", "1.bundle", cwd=outside)[0] == 0
    # The same selection again would reissue sequence 1 (tests/test_reissue.py); a new sequence on purpose:
    assert cli("bundle", "export", "--new-sequence", "--out", "2.bundle", cwd=outside)[0] == 0
    assert cli("import", str(outside / "2.bundle"), cwd=inside)[0] == 0
    code, out = cli("import", str(outside / "1.bundle"), cwd=inside)
    assert code == 1 and "refused as a rollback" in out and "--allow-rollback" in out
    code, out = cli("import", "--allow-rollback", str(outside / "1.bundle"), cwd=inside)
    assert code == 0 and "ROLLBACK" in out


def test_sequence_flag(sites: tuple[Path, Path]) -> None:
    outside, _ = sites
    cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)
    code, out = cli("bundle", "export", "--out", "w.bundle", "--sequence", "41", cwd=outside)
    assert code == 0 and "sequence 41" in out
    code, out = cli("bundle", "export", "--out", "w.bundle", cwd=outside)  # the same selection: a reissue of 41
    assert code == 0 and "sequence 41" in out and "reissues sequence 41" in out
    code, out = cli("bundle", "export", "--out", "w.bundle", "--new-sequence", cwd=outside)
    assert code == 0 and "sequence 42" in out
