"""Revocation (threats.md #15): a local list in the store and signed statements carried in bundles. A revoked
key's bundles are refused naming the key and the reason; revoking a lineage's only key says how to recover.
Every refusal changes nothing and is audited; every revocation is audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing import trust
from mirrorctl.errors import BundleRefused, UserError
from tests.fixtures.bundles import NOW, World, make_world
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


def test_locally_revoked_only_key_is_refused_with_a_recovery_hint(world: World) -> None:
    a = world.key
    imp(world, world.export("1.bundle"))
    entry = trust.revoke_local(world.inside, a.key_id, "laptop with the key was stolen")
    assert entry is not None and entry["source"] == "local"
    assert trust.revoke_local(world.inside, a.key_id, "again") is None  # already revoked: nothing new
    revoke_events = [e for e in events(world.inside) if e["event"] == "key-revoke"]
    assert len(revoke_events) == 1 and revoke_events[0]["key"] == a.key_id

    bundle = world.export("2.bundle")
    before = everything(world.inside)
    with pytest.raises(
        BundleRefused, match=f"signed by revoked key {a.key_id} .revoked locally on .*: laptop with the key was stolen"
    ) as info:
        imp(world, bundle)
    hint = info.value.hint or ""
    assert f"lineage {a.key_id} has no other key" in hint
    assert "[trust] keys" in hint and "mirrorctl key generate" in hint
    assert everything(world.inside) == before
    last = events(world.inside)[-1]
    assert last["event"] == "import" and last["result"] == "refused" and "revoked" in last["error"]

    # Recovery as the hint says: a new key in [trust] keys starts a new lineage; its bundles import.
    d = new_key(world, "d")
    report = imp(world, export_with(world, d, "3.bundle"), keys=trusted(a, d))
    assert report.lineage == d.key_id and report.sequence == 1


def test_revocation_statement_carried_in_a_bundle(world: World) -> None:
    a, c = world.key, new_key(world, "c")
    keys = trusted(a, c)
    imp(world, export_with(world, c, "c1.bundle", store=side_store(world, "c-side")), keys=keys)
    path = trust.sign_revocation(world.outside, a.private_path, c.key_id, "c's token leaked", now=NOW)
    assert path.name == "revocation-1.json"
    bundle = world.export("1.bundle")
    report = imp(world, bundle, keys=keys)
    assert any(f"key {c.key_id} revoked by a statement of key {a.key_id}" in w for w in report.warnings)
    rec = trust_state(world.inside)["revoked"][c.key_id]
    assert rec["source"] == "statement" and rec["signer"] == a.key_id and rec["reason"] == "c's token leaked"
    ev = [e for e in events(world.inside) if e["event"] == "key-revoke"]
    assert ev and ev[-1]["key"] == c.key_id and ev[-1]["signer"] == a.key_id

    later = export_with(world, c, "c2.bundle", store=side_store(world, "c-side2"), sequence=2)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"signed by revoked key {c.key_id} .revoked by a statement of key "
                                            f"{a.key_id} .*c's token leaked"):
        imp(world, later, keys=keys)
    assert everything(world.inside) == before
    # the statement stays in later bundles; importing them again is not a new revocation
    imp(world, world.export("2.bundle"), keys=keys)
    assert len([e for e in events(world.inside) if e["event"] == "key-revoke"]) == 1


def _revocation(key: str, signer, index: int = 1) -> dict[str, bytes]:
    doc = {"format": trust.REVOCATION_FORMAT, "format-version": 1, "index": index, "key": key,
           "signer": signer.key_id, "reason": "forged", "created": "2026-03-01T12:00:00Z"}
    data, sig = signed_statement(doc, signer)
    return {f"keys/revocation-{index}.json": data, f"keys/revocation-{index}.json.sig": sig}


def test_revocation_signed_by_an_untrusted_key_is_refused(world: World) -> None:
    a, c, x = world.key, new_key(world, "c"), new_key(world, "x")
    keys = trusted(a, c)
    imp(world, world.export("1.bundle"), keys=keys)
    stmt = _revocation(c.key_id, x)
    forged = with_statements(world.export("2.bundle"), world.root / "f.bundle", a.private_path, stmt)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"revocation-1.json: signed by key {x.key_id}, which this store does "
                                            "not trust"):
        imp(world, forged, keys=keys)
    assert everything(world.inside) == before and c.key_id not in trust_state(world.inside).get("revoked", {})


def test_revocation_signed_by_a_revoked_key_is_refused(world: World) -> None:
    a, c, e = world.key, new_key(world, "c"), new_key(world, "e")
    keys = trusted(a, c, e)
    imp(world, world.export("1.bundle"), keys=keys)
    trust.revoke_local(world.inside, c.key_id, "retired")
    stmt = _revocation(e.key_id, c)
    forged = with_statements(world.export("2.bundle"), world.root / "f.bundle", a.private_path, stmt)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"signed by revoked key {c.key_id} .revoked locally.*retired"):
        imp(world, forged, keys=keys)
    assert everything(world.inside) == before


def test_a_bundle_carrying_a_revocation_of_its_own_signer_is_refused(world: World) -> None:
    a, c = world.key, new_key(world, "c")
    keys = trusted(a, c)
    stmt = _revocation(a.key_id, c)
    forged = with_statements(world.export("1.bundle"), world.root / "f.bundle", a.private_path, stmt)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=f"revokes key {a.key_id}, which signed this very bundle"):
        imp(world, forged, keys=keys)
    assert everything(world.inside) == before


def test_forged_signature_on_a_revocation_is_refused(world: World) -> None:
    a, c = world.key, new_key(world, "c")
    keys = trusted(a, c)
    stmt = _revocation(c.key_id, a)
    stmt["keys/revocation-1.json"] = stmt["keys/revocation-1.json"].replace(b"forged", b"FORGED")
    forged = with_statements(world.export("1.bundle"), world.root / "f.bundle", a.private_path, stmt)
    with pytest.raises(BundleRefused, match=f"signature does not verify with key {a.key_id}"):
        imp(world, forged, keys=keys)


def test_revoked_old_key_after_rotation_points_at_the_current_key(world: World) -> None:
    a, b = world.key, new_key(world, "b")
    trust.rotate(world.outside, a.private_path, b.private_path, now=NOW)
    imp(world, export_with(world, b, "1.bundle"))
    trust.revoke_local(world.inside, a.key_id, "superseded and leaked")
    rogue = export_with(world, a, "rogue.bundle", store=side_store(world, "o2"), sequence=9)
    with pytest.raises(BundleRefused, match=f"signed by revoked key {a.key_id}") as info:
        imp(world, rogue)
    assert f"current key {b.key_id}" in (info.value.hint or "")
    # the lineage itself goes on with b, even though its rotation statement was signed by the now revoked a
    assert imp(world, export_with(world, b, "2.bundle")).sequence == 2


def test_outside_refuses_to_sign_with_or_revoke_itself(world: World) -> None:
    a, c = world.key, new_key(world, "c")
    with pytest.raises(UserError, match="revocation must be signed by another trusted key"):
        trust.sign_revocation(world.outside, a.private_path, a.key_id, "x", now=NOW)
    trust.revoke_local(world.outside, a.key_id, "retired outside")
    with pytest.raises(UserError, match=f"signing key {a.key_id} is revoked in this store"):
        world.export("x.bundle")
    with pytest.raises(UserError, match="--reason must be"):
        trust.revoke_local(world.outside, c.key_id, "  ")
    with pytest.raises(UserError, match="is not a key id"):
        trust.revoke_local(world.outside, "../etc", "x")


def test_cli_key_revoke(world: World) -> None:
    a = world.key
    cfg = world.root / "inside.toml"
    cfg.write_text(f'[store]\npath = "inside"\n[trust]\nkeys = ["{a.public_path}"]\n')
    ok = CliRunner().invoke(app, ["--config", str(cfg), "key", "revoke", a.key_id, "--reason", "lost"])
    assert ok.exit_code == 0, ok.output
    assert f"key {a.key_id} revoked" in ok.output
    status = CliRunner().invoke(app, ["--config", str(cfg), "key", "status"])
    assert f"revoked     {a.key_id}: lost (local" in status.output
    bad = CliRunner().invoke(app, ["--config", str(cfg), "key", "revoke", "nothex", "--reason", "x"])
    assert bad.exit_code == 2 and "is not a key id" in bad.output
    before = everything(world.inside)
    refused = CliRunner().invoke(app, ["--config", str(cfg), "import", str(world.export("1.bundle"))])
    assert refused.exit_code == 1
    out = refused.output.replace("\n", "")
    assert f"revoked key {a.key_id}" in out and "lost" in out and "hint:" in out
    assert everything(world.inside) == before

