"""`bundle verify --since STATE`: the outside checks a delta before the media leaves (docs/upgrade-runbook.md
step 4) against the state file it was exported against: signature, every carried blob, the line deltas applied
to the state's copies, and the blobs it expects from the inside. Refusals name the file and change nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.against_state import verify_against_state
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.state import export_state, read_state
from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import ECOSYSTEMS, NOW, fingerprint, make_world, read_members, sha256_of
from tests.fixtures.wheels import Dist
from tests.test_bundle_cli import cli, sites  # noqa: F401  (the two-site fixture)
from tests.test_bundle_delta import _bump, _full_then_state, _ops, _replace_member
from tests.test_update_cycle_cli import _relock


def _outside_delta(outside: Path, inside: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Runbook steps 1 and 4: a full bundle imported inside, its state carried out, a delta in parts against it."""
    assert cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)[0] == 0
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    assert cli("bundle", "export", "--out", "full.bundle", "web", cwd=outside)[0] == 0
    assert cli("import", str(outside / "full.bundle"), cwd=inside)[0] == 0
    media_in, media_out = tmp_path / "media-in", tmp_path / "media-out"
    media_in.mkdir()
    media_out.mkdir()
    code, out = cli("state", "export", "--out", str(media_in / "inside.state"), cwd=inside)
    assert code == 0, out
    _relock(outside, tmp_path / "work2", [Dist("alpha", "1.0"), Dist("beta", "2.1")])
    code, out = cli(
        "bundle", "export", "--since", str(media_in / "inside.state"), "--chunk-size", "2K",
        "--out", str(media_out / "team.bundle"), "web", cwd=outside,
    )  # fmt: skip
    assert code == 0 and "delta bundle" in out, out
    return media_in / "inside.state", media_out / "team.bundle.parts.json"


def test_outside_verifies_its_delta_against_the_state(sites: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    outside, inside = sites
    state, index = _outside_delta(outside, inside, tmp_path)
    before = fingerprint(Store(outside / "store"))

    # Without the state, the outside store holds none of the inside's copies: refused, saying what to run.
    code, out = cli("bundle", "verify", str(index), cwd=outside)
    assert code == 2 and "no trusted keys configured" in out  # the outside lists no [trust] keys ...
    (outside / "mirrorctl.toml").write_text(
        (outside / "mirrorctl.toml").read_text() + '[trust]\nkeys = ["keys/mirrorctl.key.pub"]\n'
    )
    code, out = cli("bundle", "verify", str(index), cwd=outside)
    assert code == 1 and "mirrorctl bundle verify --since STATE" in out, out  # ... and no inside store

    # With it (the runbook's step 4, word for word): every check import makes that can be made outside.
    code, out = cli("bundle", "verify", "--since", str(state), str(index), cwd=outside)
    assert code == 0, out
    assert f"OK {index}" in out and "delta      against state" in out and "listed in the state file" in out
    assert "profiles   web" in out
    assert fingerprint(Store(outside / "store")) == before

    # The [signing] key's public half is enough outside: [trust] keys removed again.
    (outside / "mirrorctl.toml").write_text((outside / "mirrorctl.toml").read_text().split("[trust]")[0])
    code, out = cli("bundle", "verify", "--since", str(state), str(index), cwd=outside)
    assert code == 0 and f"OK {index}" in out, out
    assert fingerprint(Store(outside / "store")) == before

    # What verified outside imports inside.
    code, out = cli("import", str(index), cwd=inside)
    assert code == 0 and "sequence 2" in out, out


def test_wrong_state_file_is_named_with_what_to_do(sites: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    outside, inside = sites
    state, index = _outside_delta(outside, inside, tmp_path)
    wanted = read_state(state).digest
    # A later state of the same inside: after another import, the delta's base is no longer what it describes.
    _relock(outside, tmp_path / "work3", [Dist("alpha", "1.0"), Dist("beta", "2.2")])
    assert cli("bundle", "export", "--out", "full2.bundle", "web", cwd=outside)[0] == 0
    assert cli("import", str(outside / "full2.bundle"), cwd=inside)[0] == 0
    later = tmp_path / "later.state"
    assert cli("state", "export", "--out", str(later), cwd=inside)[0] == 0
    before = fingerprint(Store(outside / "store")), sha256_of(later), sha256_of(index)

    code, out = cli("bundle", "verify", "--since", str(later), str(index), cwd=outside)
    assert code == 2, out
    assert f"{later} (state {read_state(later).digest[:16]}" in out and "is not the state delta" in out
    assert f"exported against: that was state {wanted}" in out
    assert "pass the state file `bundle export --since` read" in out and f"--since {later}" in out
    assert (fingerprint(Store(outside / "store")), sha256_of(later), sha256_of(index)) == before

    # A file that is no state at all is named too.
    code, out = cli("bundle", "verify", "--since", str(index), str(index), cwd=outside)
    assert code == 2 and f"{index}: not a mirrorctl state file" in out, out


def test_help_has_an_example() -> None:
    from typer.testing import CliRunner

    from mirrorctl.cli.app import app

    out = CliRunner().invoke(app, ["bundle", "verify", "--help"]).output
    assert "--since" in out and "Example: mirrorctl bundle verify --since" in out


def _world_delta(tmp_path: Path):
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    state = read_state(state_file)
    return world, state, world.export("delta.bundle", since=state)


def test_good_delta_verifies_against_its_state_without_a_store(tmp_path: Path) -> None:
    world, state, delta = _world_delta(tmp_path)
    shutil.rmtree(world.inside.root)  # outside: no inside store at all
    verified = verify_against_state(delta, world.trusted, NOW, state, ecosystems=ECOSYSTEMS)
    assert {(a.name, a.version) for a in verified.artifacts} == {("alpha", "1.0"), ("beta", "2.1"), ("gamma", "0.4")}
    data_lock = next(b for n, _, b in world.locks if n == "data")
    assert verified.locks["data"].artifacts == next(lk for n, lk, _ in world.locks if n == "data").artifacts
    assert hashlib.sha256(data_lock).hexdigest() == verified.manifest.profiles["data"].sha256


def test_tampered_line_delta_refused(tmp_path: Path) -> None:
    world, state, delta = _world_delta(tmp_path)
    members = read_members(delta)
    doc = _ops(members, "locks/data.lock.delta")
    doc["ops"].pop()  # signed by the key holder, listed with its new digest: only the rebuilt lock is wrong
    bad = _replace_member(world, members, "locks/data.lock.delta", json.dumps(doc).encode())
    before = sha256_of(bad)
    with pytest.raises(BundleRefused, match=r"locks/data.lock rebuilt from locks/data.lock.delta is .* the manifest"):
        verify_against_state(bad, world.trusted, NOW, state, ecosystems=ECOSYSTEMS)
    assert sha256_of(bad) == before


def test_damaged_carried_blob_refused(tmp_path: Path) -> None:
    world, state, delta = _world_delta(tmp_path)
    data = bytearray(delta.read_bytes())
    new = world.locks[1][1].artifacts[-1]  # gamma 0.4, carried
    at = data.find(world.outside.blob_path(new.sha256).read_bytes()[:64])
    assert at > 0
    data[at + 10] ^= 0xFF
    delta.write_bytes(bytes(data))
    with pytest.raises(BundleRefused, match=rf"blobs/sha256/{new.sha256} does not match its sha256"):
        verify_against_state(delta, world.trusted, NOW, state, ecosystems=ECOSYSTEMS)


def test_unknown_signer_refused(tmp_path: Path) -> None:
    _, state, delta = _world_delta(tmp_path)
    from mirrorctl.crossing.signing import generate_key, load_public_key

    other = generate_key(tmp_path / "keys" / "other.key")
    with pytest.raises(BundleRefused, match="signed by unknown key"):
        verify_against_state(delta, [load_public_key(other.public_path)], NOW, state, ecosystems=ECOSYSTEMS)


def test_full_bundle_import_would_refuse_as_a_rollback(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    old = world.export("1.bundle", sequence=1)
    newer = world.export("2.bundle", sequence=2)
    import_bundle(newer, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    state_file = tmp_path / "inside.state"
    export_state(world.inside, state_file, signing_key=None, now=NOW)
    state = read_state(state_file)
    with pytest.raises(BundleRefused, match=r"import would refuse it as a rollback: sequence 1 .* older than"):
        verify_against_state(old, world.trusted, NOW, state, ecosystems=ECOSYSTEMS)
    # The next one verifies.
    assert verify_against_state(world.export("3.bundle", sequence=3), world.trusted, NOW, state, ecosystems=ECOSYSTEMS)


def test_state_of_another_inside_refused_before_reading(tmp_path: Path) -> None:
    world, _, delta = _world_delta(tmp_path)
    other = Store(tmp_path / "empty-inside")
    empty = tmp_path / "empty.state"
    export_state(other, empty, signing_key=None, now=NOW)
    with pytest.raises(UserError, match=r"empty.state \(state .* is not the state delta"):
        verify_against_state(delta, world.trusted, NOW, read_state(empty), ecosystems=ECOSYSTEMS)
