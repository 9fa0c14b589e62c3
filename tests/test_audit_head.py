"""The audit head kept outside the chain: the anchor (audit/head.json), a head noted by hand (--expect-head) and the
head a state export carries (--against-state) each catch what a hash chain alone cannot: its last entries or the
whole file removed, or every hash after an edit recomputed. Promote and rollback entries name their bundle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.state import export_state, read_state
from mirrorctl.crossing.signing import generate_key
from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import promote, rollback
from mirrorctl.inside.store import Store
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import World, make_world
from tests.test_audit import cli, imp, journal_of_five, lines, write_lines


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def refused(store: Store, *expect: audit.Head) -> str:
    with pytest.raises(IntegrityError) as exc:
        audit.verify(store, expect)
    return exc.value.message


def rewrite_from(store: Store, index: int, **changes: object) -> None:
    """Edit entry ``index`` (0-based) and recompute every later hash and prev, as someone covering tracks would;
    the anchor is rewritten to match too, so only a head kept elsewhere can tell."""
    data = lines(store)
    prev = audit.ZERO if index == 0 else hashlib.sha256(data[index - 1]).hexdigest()
    for i in range(index, len(data)):
        doc = json.loads(data[i])
        if i == index:
            doc.update(changes)
        doc["prev"] = prev
        doc["hash"] = audit.entry_hash(doc)
        data[i] = audit.canonical(doc) + b"\n"
        prev = hashlib.sha256(data[i]).hexdigest()
    write_lines(store, data)
    doc = json.loads(data[-1])
    audit._write_anchor(store, len(data), prev, doc)


# --- the anchor ------------------------------------------------------------------------------------------------


def test_every_append_moves_the_anchor_to_the_head(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert audit.read_anchor(store) is None and audit.verify(store).head is None
    for i in range(3):
        audit.append(store, "publish", target="t", version=i, result="ok")
        report = audit.verify(store)
        assert report.head is not None and report.anchor is not None
        assert (report.anchor.entries, report.anchor.sha256) == (i + 1, report.head.sha256)
    assert report.head_entry is not None and report.head_entry["version"] == 2


def test_cutting_several_last_entries_names_them(world: World) -> None:
    store = journal_of_five(world)
    write_lines(store, lines(store)[:3])
    message = refused(store)
    assert "entries 4 to 5 (seq 3 to 4) were removed" in message and "journal has 3 entries" in message


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_the_whole_journal_removed_is_refused(world: World, how: str) -> None:
    store = journal_of_five(world)
    path = audit.journal_path(store)
    if how == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"")
    message = refused(store)
    assert "records 5 entries" in message and "no entries (empty or absent)" in message
    assert "entries 1 to 5 (seq 0 to 4) were removed" in message


def test_a_cut_journal_stays_refused_after_the_next_append(world: World) -> None:
    # The next import must not move the anchor onto the shortened chain and so hide the cut.
    store = journal_of_five(world)
    anchor = audit.anchor_path(store).read_bytes()
    write_lines(store, lines(store)[:-2])
    audit.append(store, "publish", target="t", result="ok")
    assert audit.anchor_path(store).read_bytes() == anchor
    assert "entries 5 to 5" not in (message := refused(store)) and "entry 5 (seq 4) was removed" in message
    audit.append(store, "publish", target="t", result="ok")  # now as long as the anchor: a different entry 5
    assert "rewritten at or before entry 5" in refused(store)


def test_a_journal_from_before_anchors_verifies_and_gets_one(world: World) -> None:
    store = journal_of_five(world)
    audit.anchor_path(store).unlink()
    report = audit.verify(store)
    assert report.entries == 5 and report.anchor is None
    code, out = cli(world.root, "audit", "verify")
    assert code == 0 and "anchor: none yet" in out
    audit.append(store, "publish", target="t", result="ok")
    report = audit.verify(store)
    assert report.anchor is not None and report.head is not None
    assert (report.anchor.entries, report.anchor.sha256) == (6, report.head.sha256)


def test_a_damaged_anchor_is_named(world: World) -> None:
    store = journal_of_five(world)
    audit.anchor_path(store).write_text("{not json")
    message = refused(store)
    assert "head.json: not an audit anchor" in message
    before = audit.anchor_path(store).read_bytes()
    audit.append(store, "publish", target="t", result="ok")  # recorded, the damaged anchor left as evidence
    assert audit.anchor_path(store).read_bytes() == before and len(lines(store)) == 6


# --- a head noted by hand ----------------------------------------------------------------------------------------


def test_a_cut_last_entry_is_caught_by_the_noted_head_without_the_anchor(world: World) -> None:
    store = journal_of_five(world)
    head = audit.verify(store).head
    assert head is not None
    write_lines(store, lines(store)[:-1])
    audit.anchor_path(store).unlink()  # cut with the anchor: only the head kept elsewhere remains
    assert audit.verify(store).entries == 4
    message = refused(store, audit.parse_head(str(head)))
    assert f"the head you gave records 5 entries (head {head})" in message
    assert "entry 5 (seq 4) was removed" in message


def test_a_rewrite_with_every_hash_recomputed_is_caught_by_the_noted_head(world: World) -> None:
    store = journal_of_five(world)
    head = audit.verify(store).head
    assert head is not None
    rewrite_from(store, 1, who="someone-else@elsewhere")
    assert audit.verify(store).entries == 5  # the chain and the anchor alone are satisfied
    message = refused(store, audit.parse_head(str(head)))
    assert f"records entry 5 (seq 4) as {head.sha256}" in message and "rewritten at or before entry 5" in message
    bare = refused(store, audit.parse_head(head.sha256))
    assert "is not any of the journal's entries" in bare and "5 entries, head 5:" in bare


def test_appends_after_a_noted_head_are_accepted(world: World) -> None:
    store = journal_of_five(world)
    head = audit.verify(store).head
    assert head is not None
    for i in range(2):
        audit.append(store, "publish", target="t", version=i, result="ok")
    report = audit.verify(store, (audit.parse_head(str(head)), audit.parse_head(head.sha256)))
    assert report.entries == 7 and len(report.checked) == 2
    older = audit.Head(2, hashlib.sha256(lines(store)[1]).hexdigest())
    assert audit.verify(store, (older,)).entries == 7


def test_a_malformed_head_is_a_user_error() -> None:
    for text in ("5:abc", "0:" + "a" * 64, "x" * 64, ""):
        with pytest.raises(UserError, match="is not an audit head"):
            audit.parse_head(text)
    assert audit.parse_head(" 3:" + "AB" * 32).sha256 == "ab" * 32


# --- the head a state export carries ------------------------------------------------------------------------------


def test_state_export_carries_the_head(world: World) -> None:
    store = journal_of_five(world)
    head = audit.verify(store).head
    assert head is not None
    state = export_state(store, world.root / "inside.state", signing_key=None)
    assert (state.audit_entries, state.audit_head) == (head.entries, head.sha256)
    again = read_state(world.root / "inside.state")
    assert (again.audit_entries, again.audit_head) == (5, head.sha256)


def _config(world: World, signing: Path | None = None) -> None:
    text = '[store]\npath = "inside"\n' + (f'[signing]\nkey = "{signing}"\n' if signing else "")
    (world.root / "mirrorctl.toml").write_text(text)


def test_cli_against_state_catches_a_cut_and_a_rewrite(world: World) -> None:
    store = journal_of_five(world)
    _config(world)
    state_file = world.root / "inside.state"
    export_state(store, state_file, signing_key=world.key.private_path)
    code, out = cli(world.root, "audit", "verify", "--against-state", str(state_file))
    assert code == 0 and "checked: 5:" in out and "the state file" in out
    rewrite_from(store, 0, result="refused")
    code, out = cli(world.root, "audit", "verify", "--against-state", str(state_file))
    assert code == 1 and "rewritten at or before entry 5" in out and "inside.state" in out


def test_against_state_signed_by_another_key_is_refused(world: World) -> None:
    store = journal_of_five(world)
    own = generate_key(world.root / "keys" / "inside.key")
    state_file = world.root / "inside.state"
    export_state(store, state_file, signing_key=world.key.private_path)  # not the inside's key
    (world.root / "mirrorctl.toml").write_text(f'[store]\npath = "inside"\n[signing]\nkey = "{own.private_path}"\n')
    from typer.testing import CliRunner

    from mirrorctl.cli.app import app

    result = CliRunner().invoke(app, ["-c", str(world.root / "mirrorctl.toml"), "audit", "verify",
                                      "--against-state", str(state_file)])
    out = result.output.replace("\n", "")
    assert result.exit_code == 1 and f"signed by key {world.key.key_id}" in out and "journal not checked" in out


# --- the commands ---------------------------------------------------------------------------------------------------


def test_cli_prints_the_head_and_checks_an_expected_one(world: World) -> None:
    store = journal_of_five(world)
    head = audit.verify(store).head
    assert head is not None
    code, out = cli(world.root, "audit", "verify")
    assert code == 0 and f"head: {head}" in out and "entry 5: import refused" in out
    assert f"--expect-head {head}" in out and "anchor: 5:" in out
    code, out = cli(world.root, "audit", "verify", "--json")
    doc = json.loads(out)
    assert doc["entries"] == 5 and doc["head"]["head"] == str(head) and doc["head"]["seq"] == 4
    assert doc["head"]["event"] == "import" and doc["anchor"] == str(head)
    code, out = cli(world.root, "audit", "verify", "--expect-head", str(head))
    assert code == 0 and f"checked: {head} (the head you gave" in out
    write_lines(store, lines(store)[:-1])
    audit.anchor_path(store).unlink()
    code, out = cli(world.root, "audit", "verify", "--expect-head", str(head))
    assert code == 1 and "entry 5 (seq 4) was removed" in out and "hint:" in out and "restore the journal" in out
    code, out = cli(world.root, "audit", "verify", "--expect-head", "5:nothex")
    assert code == 2 and "is not an audit head" in out


def test_cli_help_names_the_head_options() -> None:
    from typer.testing import CliRunner

    from mirrorctl.cli.app import app

    result = CliRunner().invoke(app, ["audit", "verify", "--help"])
    assert result.exit_code == 0 and "--expect-head" in result.output and "--against-state" in result.output
    assert "Example: mirrorctl audit verify --expect-head" in result.output


# --- promote and rollback name their bundle ---------------------------------------------------------------------------


def test_promote_and_rollback_entries_name_the_bundle(world: World) -> None:
    one = imp(world, world.export("one.bundle", sequence=1))
    two = imp(world, world.export("two.bundle", sequence=2))
    store = world.inside
    promote(store, str(one.view_id), "prod", SILENT)
    promote(store, str(two.view_id), "prod", SILENT)
    rollback(store, "prod", SILENT)
    entries = [e for e in audit.last_entries(store) if e["event"] in ("promote", "rollback")]
    got = [(e["event"], e["view-id"], e["bundle-id"], e["sequence"], e["lineage"]) for e in entries]
    lineage = world.key.key_id
    assert got == [
        ("promote", one.view_id, one.bundle_id, 1, lineage),
        ("promote", two.view_id, two.bundle_id, 2, lineage),
        ("rollback", one.view_id, one.bundle_id, 1, lineage),
    ]
    assert audit.verify(store).entries == 5


def test_state_files_are_signed_by_the_stores_own_key_without_a_signing_key(world: World, tmp_path: Path) -> None:
    store = journal_of_five(world)
    _config(world)  # no [signing] key inside
    state_file = world.root / "inside.state"
    code, out = cli(world.root, "state", "export", "--out", str(state_file))
    key_path = store.root / "keys" / "state" / "state.key"
    assert code == 0 and key_path.is_file() and "(the store's own state key)" in out, out
    state = read_state(state_file)
    assert state.signer is not None and state.signer in out
    assert (key_path.stat().st_mode & 0o777) == 0o600 and (key_path.parent.stat().st_mode & 0o777) == 0o700
    code, out = cli(world.root, "state", "export", "--out", str(world.root / "again.state"))
    assert code == 0 and read_state(world.root / "again.state").signer == state.signer  # one key, kept
    code, out = cli(world.root, "audit", "verify", "--against-state", str(state_file))
    assert code == 0 and f"signed by this store's state key {state.signer}" in out.replace("\n", ""), out
    # A state file of another store (its own state key) is not this store's: refused, journal not checked.
    other = make_world(tmp_path / "other")
    journal_of_five(other)
    _config(other)
    foreign = other.root / "other.state"
    assert cli(other.root, "state", "export", "--out", str(foreign))[0] == 0
    code, out = cli(world.root, "audit", "verify", "--against-state", str(foreign))
    flat = out.replace("\n", "")
    assert code == 1 and "journal not checked" in flat and f"state key {state.signer}" in flat, out
    # A journal rewritten behind the signed head is caught.
    rewrite_from(store, 0, result="refused")
    code, out = cli(world.root, "audit", "verify", "--against-state", str(state_file))
    assert code == 1 and "rewritten at or before entry 5" in out.replace("\n", ""), out
