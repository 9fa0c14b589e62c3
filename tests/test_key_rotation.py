"""Key rotation (threats.md #15) and the lineage bound to its key (#5): a new key is accepted only when the
lineage's current key signed it in; afterwards the old key is refused, naming the rotation. Chains A -> B -> C
work across imports and for an inside that missed a bundle. Every refusal changes nothing and is audited."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from mirrorctl.crossing import trust
from mirrorctl.crossing.bundle.importer import lineage_history
from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import NOW, World, make_world, read_members, resign, write_members
from tests.fixtures.keys_world import (
    events,
    everything,
    export_with,
    imp,
    new_key,
    side_store,
    signed_statement,
    trust_state,
    trusted,
    with_statements,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def test_rotation_accepted_then_the_old_key_is_refused(world: World) -> None:
    a = world.key
    imp(world, world.export("1.bundle"))
    b = new_key(world, "b")
    rot = trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    assert (rot.lineage, rot.index, rot.old_key, rot.new_key) == (a.key_id, 1, a.key_id, b.key_id)
    b2 = export_with(world, b, "2.bundle")
    with tarfile.open(b2) as tar:  # the statement comes right after the signature, listed in the manifest
        assert tar.getnames()[:4] == [
            "manifest.json", "manifest.json.sig", "keys/rotation-1.json", "keys/rotation-1.json.sig"
        ]
    manifest = json.loads(read_members(b2)[0][1])
    assert manifest["lineage"] == a.key_id and manifest["sequence"] == 2  # the lineage continues

    report = imp(world, b2)
    assert report.lineage == a.key_id and report.sequence == 2
    assert any(f"now signed by key {b.key_id}" in w for w in report.warnings)
    lineage = trust_state(world.inside)["lineages"][a.key_id]
    assert lineage["key"] == b.key_id and lineage["keys"] == [a.key_id, b.key_id]
    stored = world.inside.root / "trust" / "keys" / f"{b.key_id}.pub"
    assert stored.read_bytes() == b.public_path.read_bytes()  # survives; [trust] keys are never written
    rotation = [e for e in events(world.inside) if e["event"] == "key-rotation"]
    assert rotation and rotation[0]["old-key"] == a.key_id and rotation[0]["new-key"] == b.key_id

    # Outside, the old key no longer exports ...
    with pytest.raises(UserError, match=f"signing key {a.key_id} was rotated to {b.key_id}"):
        export_with(world, a, "3.bundle")
    # ... and a bundle it signs anyway (another outside store, no rotation there) is refused by name.
    rogue = export_with(world, a, "rogue.bundle", store=side_store(world, "other-outside"), sequence=9)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"signed by key {a.key_id}, which lineage {a.key_id} rotated away "
                                            rf"from: rotation 1 \({a.key_id} -> {b.key_id}\)") as info:
        imp(world, rogue)
    assert b.key_id in (info.value.hint or "")
    assert everything(world.inside) == before
    assert events(world.inside)[-1]["result"] == "refused"
    # the new key goes on: its next bundle still carries the chain, which is already known
    assert imp(world, export_with(world, b, "4.bundle")).sequence == 3


def test_chain_a_b_c_across_imports_and_for_an_inside_that_missed_one(world: World) -> None:
    a, b, c = world.key, new_key(world, "b"), new_key(world, "c")
    imp(world, world.export("1.bundle"))
    trust.rotate(world.outside, a.private_path, b.public_path, now=NOW)
    imp(world, export_with(world, b, "2.bundle"))
    trust.rotate(world.outside, b.private_path, c.private_path, now=NOW)
    b3 = export_with(world, c, "3.bundle")
    with tarfile.open(b3) as tar:
        assert [n for n in tar.getnames() if n.startswith("keys/")] == [
            "keys/rotation-1.json", "keys/rotation-1.json.sig", "keys/rotation-2.json", "keys/rotation-2.json.sig"
        ]
    assert imp(world, b3).sequence == 3
    assert trust_state(world.inside)["lineages"][a.key_id]["keys"] == [a.key_id, b.key_id, c.key_id]
    for old in (a, b):  # both earlier keys are refused now
        rogue = export_with(world, old, f"rogue-{old.key_id}.bundle", store=side_store(world, f"o-{old.key_id}"),
                            sequence=7)
        with pytest.raises(BundleRefused, match=f"signed by key {old.key_id}(, which signs for lineage {a.key_id}|"
                                                f", which lineage {a.key_id} rotated away)"):
            imp(world, rogue, keys=trusted(a, b))  # even if someone lists the old keys in [trust] keys
        # and claiming the lineage does not help: the old key is refused naming the rotation
        claimed = write_members(world.root / "claimed.bundle", resign(
            read_members(rogue), old.private_path, lambda d: d.update(lineage=a.key_id)))
        with pytest.raises(BundleRefused, match=f"signed by key {old.key_id}, which lineage {a.key_id} rotated away"):
            imp(world, claimed, keys=trusted(a, b))

    # A second inside that only ever sees bundle 3 walks the whole chain from the key it trusts.
    fresh = Store(world.root / "inside2")
    report = imp(world, b3, store=fresh)
    assert report.sequence == 3 and trust_state(fresh)["lineages"][a.key_id]["key"] == c.key_id
    assert lineage_history(fresh, a.key_id)[0] == 3


def test_rotation_cannot_skip_back_or_run_twice_outside(world: World) -> None:
    a, b, c = world.key, new_key(world, "b"), new_key(world, "c")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    with pytest.raises(UserError, match="was already rotated away"):
        trust.rotate(world.outside, a.private_path, c.private_path, now=NOW)
    with pytest.raises(UserError, match="already used in a lineage"):
        trust.rotate(world.outside, b.private_path, a.public_path, now=NOW)
    with pytest.raises(UserError, match="is the current signing key"):
        trust.rotate(world.outside, b.private_path, b.public_path, now=NOW)


def test_a_new_key_without_a_rotation_is_an_unknown_key(world: World) -> None:
    imp(world, world.export("1.bundle"))
    b = new_key(world, "b")
    bundle = export_with(world, b, "b.bundle")
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"signed by unknown key {b.key_id}"):
        imp(world, bundle)
    assert everything(world.inside) == before


def test_lineage_is_bound_to_its_key(world: World) -> None:
    """Item 1: a bundle claiming lineage A but signed by another trusted key X is refused."""
    a, x = world.key, new_key(world, "x")
    imp(world, world.export("1.bundle"))
    members = read_members(export_with(world, x, "x.bundle", sequence=5))
    forged = write_members(
        world.root / "forged.bundle", resign(members, x.private_path, lambda d: d.update(lineage=a.key_id))
    )
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"claims lineage {a.key_id} but is signed by key {x.key_id}"):
        imp(world, forged, keys=trusted(a, x))
    assert everything(world.inside) == before


def _forged_rotation(world: World, signer, old: str, new, index: int = 1, lineage: str | None = None):
    doc = {
        "format": trust.ROTATION_FORMAT, "format-version": 1, "lineage": lineage or world.key.key_id,
        "index": index, "old-key": old, "new-key": new.key_id,
        "new-public-key": new.public_path.read_text(), "created": "2026-03-01T12:00:00Z",
    }
    data, sig = signed_statement(doc, signer)
    return {f"keys/rotation-{index}.json": data, f"keys/rotation-{index}.json.sig": sig}


def test_rotation_signed_by_an_untrusted_key_is_refused(world: World) -> None:
    a = world.key
    imp(world, world.export("1.bundle"))
    x, y = new_key(world, "x"), new_key(world, "y")
    # x claims to hand lineage A to y: the signature is x's, not A's
    plain = export_with(world, y, "y.bundle", store=side_store(world, "o2"), sequence=2)
    forged = with_statements(
        plain, world.root / "forged.bundle", y.private_path, _forged_rotation(world, x, a.key_id, y)
    )
    forged = write_members(forged, resign(read_members(forged), y.private_path, lambda d: d.update(lineage=a.key_id)))
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"keys/rotation-1.json: signature does not verify with key {a.key_id}"):
        imp(world, forged)
    # and one that names x as the old key is refused as not the lineage's current key
    forged2 = with_statements(
        plain, world.root / "forged2.bundle", y.private_path, _forged_rotation(world, x, x.key_id, y)
    )
    forged2 = write_members(
        forged2, resign(read_members(forged2), y.private_path, lambda d: d.update(lineage=a.key_id))
    )
    with pytest.raises(BundleRefused, match=f"signed by key {x.key_id}, which is not the current key {a.key_id}"):
        imp(world, forged2)
    assert everything(world.inside) == before
    assert [e["result"] for e in events(world.inside)[-2:]] == ["refused", "refused"]


def test_rotation_signed_by_a_revoked_key_is_refused(world: World) -> None:
    a, b = world.key, new_key(world, "b")
    imp(world, world.export("1.bundle"))
    trust.revoke_local(world.inside, a.key_id, "key file found on a shared drive")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    bundle = export_with(world, b, "2.bundle")
    before = everything(world.inside)
    with pytest.raises(
        BundleRefused, match=f"signed by revoked key {a.key_id} .revoked locally .*key file found on a shared drive"
    ) as info:
        imp(world, bundle)
    assert "[trust] keys" in (info.value.hint or "")  # the only key of the lineage: how to recover
    assert everything(world.inside) == before


def test_a_second_rotation_with_the_same_index_is_refused(world: World) -> None:
    """A fork: the old key signs another successor after the rotation was accepted."""
    a, b, x = world.key, new_key(world, "b"), new_key(world, "x")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    imp(world, export_with(world, b, "1.bundle"))
    plain = export_with(world, x, "x.bundle", store=side_store(world, "o2"), sequence=5)
    forged = with_statements(plain, world.root / "fork.bundle", x.private_path, _forged_rotation(world, a, a.key_id, x))
    forged = write_members(forged, resign(read_members(forged), x.private_path, lambda d: d.update(lineage=a.key_id)))
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match="conflicts with rotation 1 of lineage"):
        imp(world, forged)
    assert everything(world.inside) == before


def test_a_statement_not_listed_in_the_signed_manifest_is_refused(world: World) -> None:
    a, b = world.key, new_key(world, "b")
    imp(world, world.export("1.bundle"))
    plain = world.export("2.bundle")
    stmt = _forged_rotation(world, a, a.key_id, b)
    smuggled = with_statements(plain, world.root / "s.bundle", a.private_path, stmt, listed=False)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=r"keys/rotation-1\.json is not listed in the signed manifest"):
        imp(world, smuggled)
    assert everything(world.inside) == before


def test_cli_key_rotate_then_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mirrorctl.cli.app import app
    from mirrorctl.crossing.signing import generate_key

    (tmp_path / "keys").mkdir()
    old = generate_key(tmp_path / "keys" / "a.key")
    new = generate_key(tmp_path / "keys" / "b.key")
    cfg = tmp_path / "mirrorctl.toml"
    cfg.write_text('[store]\npath = "store"\n[signing]\nkey = "keys/a.key"\n')
    result = CliRunner().invoke(app, ["--config", str(cfg), "key", "rotate", "--new", str(new.public_path)])
    assert result.exit_code == 0, result.output
    assert f"key {old.key_id} -> {new.key_id}" in result.output and "set [signing] key" in result.output
    status = CliRunner().invoke(app, ["--config", str(cfg), "key", "status"])
    assert f"{old.key_id} -> {new.key_id}" in status.output
    again = CliRunner().invoke(app, ["--config", str(cfg), "key", "rotate", "--new", str(new.private_path)])
    assert again.exit_code == 2 and "already rotated away" in again.output.replace("\n", "")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_a_rotation_statement(world: World) -> None:
    """The rotation statement is signed like the manifest: openssl checks it with the OLD key's .pub."""
    a, b = world.key, new_key(world, "b")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    bundle = export_with(world, b, "2.bundle")
    out = world.root / "check"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(bundle), "keys/rotation-1.json", "keys/rotation-1.json.sig"], cwd=out,
                   check=True)
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(a.public_path), "-rawin",
           "-in", "keys/rotation-1.json", "-sigfile", "keys/rotation-1.json.sig"]
    ok = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout
    doc = json.loads((out / "keys" / "rotation-1.json").read_bytes())
    assert (doc["old-key"], doc["new-key"], doc["lineage"]) == (a.key_id, b.key_id, a.key_id)
    assert doc["new-public-key"] == b.public_path.read_text()
    # a real check: the new key's .pub does not verify it, and one changed byte fails
    wrong = subprocess.run([*cmd[:4], str(b.public_path), *cmd[5:]], cwd=out, capture_output=True, text=True)
    assert wrong.returncode != 0
    path = out / "keys" / "rotation-1.json"
    path.write_bytes(path.read_bytes().replace(b'"index":1', b'"index":2'))
    assert subprocess.run(cmd, cwd=out, capture_output=True, text=True).returncode != 0


def test_bundle_verify_judges_like_import(world: World) -> None:
    """`bundle verify` uses the store's trust state too: the rotated-in key verifies, the old key is refused."""
    from typer.testing import CliRunner

    from mirrorctl.cli.app import app

    a, b = world.key, new_key(world, "b")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    cfg = world.root / "inside.toml"
    cfg.write_text(f'[store]\npath = "inside"\n[trust]\nkeys = ["{a.public_path}"]\n')
    first = export_with(world, b, "1.bundle")
    ok = CliRunner().invoke(app, ["--config", str(cfg), "bundle", "verify", str(first)])
    assert ok.exit_code == 0 and f"signed by  {b.key_id}" in ok.output, ok.output
    imp(world, first)
    before = everything(world.inside)
    rogue = export_with(world, a, "rogue.bundle", store=side_store(world, "o2"), sequence=9)
    bad = CliRunner().invoke(app, ["--config", str(cfg), "bundle", "verify", str(rogue)])
    assert bad.exit_code == 1 and "rotated away" in bad.output.replace("\n", "")
    assert everything(world.inside) == before


def test_rotation_in_a_chunked_bundle(world: World) -> None:
    """The statements are read from the front of the bundle through the parts, like every other member."""
    from mirrorctl.crossing.bundle.chunks import resolve_bundle

    a, b = world.key, new_key(world, "b")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    export_with(world, b, "web.bundle", chunk_size=4096)
    report = imp(world, resolve_bundle(world.root / "web.bundle.parts.json"))
    assert report.lineage == a.key_id and trust_state(world.inside)["lineages"][a.key_id]["key"] == b.key_id
