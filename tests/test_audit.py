"""The audit journal: real imports append to it, the chain verifies, and an edited, removed, reordered or cut
entry is named; concurrent appenders keep one valid chain; no secret reaches it."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import BundleRefused, IntegrityError
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import ECOSYSTEMS, NOW, World, fingerprint, make_world, read_members, write_members

SECRET = "tok-audit-5e4d3c2b1a"


def imp(world: World, bundle: Path, **kw: object):
    kw.setdefault("now", NOW)
    return import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, **kw)  # type: ignore[arg-type]


def lines(store: Store) -> list[bytes]:
    return audit.journal_path(store).read_bytes().splitlines(keepends=True)


def write_lines(store: Store, data: list[bytes]) -> None:
    audit.journal_path(store).write_bytes(b"".join(data))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("UP_TOKEN", SECRET)
    return make_world(tmp_path)


def journal_of_five(world: World) -> Store:
    """Real imports (ok, noop, refused) and a repair, then plain appends: five entries."""
    first = world.export("one.bundle", sequence=1)
    imp(world, first)
    imp(world, first)  # the same bundle again: noop
    imp(world, first, repair=True)
    second = world.export("two.bundle", sequence=2)
    imp(world, second)
    with pytest.raises(BundleRefused):
        imp(world, first)  # an older sequence: refused as a rollback
    return world.inside


def test_real_imports_are_recorded_and_the_chain_verifies(world: World) -> None:
    store = journal_of_five(world)
    entries = audit.last_entries(store)
    assert [(e["seq"], e["event"], e["result"]) for e in entries] == [
        (0, "import", "ok"),
        (1, "import", "noop"),
        (2, "import-repair", "ok"),
        (3, "import", "ok"),
        (4, "import", "refused"),
    ]
    view = store.current_view()
    assert view is not None
    assert entries[3]["bundle-id"] == view.bundle_id and entries[3]["view-id"] == view.view_id
    assert entries[3]["sequence"] == 2 and entries[3]["lineage"] == world.key.key_id
    assert entries[3]["rollback"] is False
    assert "refused as a rollback" in entries[4]["error"] and entries[4]["bundle"] == "one.bundle"
    assert entries[0]["prev"] == "0" * 64 and "@" in entries[0]["who"]
    report = audit.verify(store)
    assert report.entries == 5 and report.last_hash is not None


def test_a_refused_import_still_changes_nothing_served(world: World) -> None:
    imp(world, world.export("one.bundle", sequence=1))
    bad = world.root / "bad.bundle"
    members = read_members(world.export("two.bundle", sequence=2))
    write_members(bad, [members[0], (members[1][0], b"\0" * len(members[1][1])), *members[2:]])
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused):
        imp(world, bad)
    assert fingerprint(world.inside) == before
    last = audit.last_entries(world.inside, 1)[0]
    assert last["result"] == "refused" and last["bundle"] == "bad.bundle"


def _refused_with(store: Store, fragment: str) -> str:
    with pytest.raises(IntegrityError) as exc:
        audit.verify(store)
    assert fragment in exc.value.message, exc.value.message
    return exc.value.message


def test_an_edited_field_names_its_line(world: World) -> None:
    store = journal_of_five(world)
    data = lines(store)
    doc = json.loads(data[2])
    doc["result"] = "failed"
    data[2] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    write_lines(store, data)
    _refused_with(store, "line 3: its hash does not match")


def test_an_edit_with_a_recomputed_hash_breaks_the_next_line(world: World) -> None:
    store = journal_of_five(world)
    data = lines(store)
    doc = json.loads(data[1])
    doc["who"] = "someone-else@elsewhere"
    doc["hash"] = audit.entry_hash(doc)
    data[1] = audit.canonical(doc) + b"\n"
    write_lines(store, data)
    _refused_with(store, "line 3: prev does not match")


def test_a_deleted_middle_line_names_the_break(world: World) -> None:
    store = journal_of_five(world)
    data = lines(store)
    del data[2]
    write_lines(store, data)
    _refused_with(store, "line 3: seq 3 where 2 was expected")


def test_reordered_lines_are_refused(world: World) -> None:
    store = journal_of_five(world)
    data = lines(store)
    data[1], data[2] = data[2], data[1]
    write_lines(store, data)
    _refused_with(store, "line 2:")


def test_a_cut_last_line_is_refused_and_not_appended_to(world: World) -> None:
    store = journal_of_five(world)
    data = lines(store)
    data[-1] = data[-1][: len(data[-1]) // 2]
    write_lines(store, data)
    _refused_with(store, "line 5: cut short")
    before = audit.journal_path(store).read_bytes()
    with pytest.raises(IntegrityError, match="cut short"):
        audit.append(store, "import", result="ok")
    assert audit.journal_path(store).read_bytes() == before


def test_dropping_the_last_line_is_caught_by_the_anchor(world: World) -> None:
    # A chain cannot see its own tail cut at a line boundary; audit/head.json, written after every append, can.
    store = journal_of_five(world)
    head = audit.verify(store).head
    assert head is not None and head.entries == 5
    before = audit.anchor_path(store).read_bytes()
    write_lines(store, lines(store)[:-1])
    message = _refused_with(store, "records 5 entries")
    assert f"head {head}" in message and "entry 5 (seq 4) was removed" in message
    assert "journal has 4 entries" in message
    assert audit.anchor_path(store).read_bytes() == before  # verify never changes the anchor


def _appender(root: str, worker: int, count: int) -> None:
    store = Store(Path(root))
    for i in range(count):
        audit.append(store, "publish", target=f"w{worker}", version=i, result="ok")


def test_concurrent_appends_keep_one_valid_chain(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_appender, args=(str(tmp_path / "store"), w, 25)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    report = audit.verify(Store(tmp_path / "store"))
    assert report.entries == 150
    got = sorted((e["target"], e["version"]) for e in audit.last_entries(Store(tmp_path / "store")))
    assert got == sorted((f"w{w}", i) for w in range(6) for i in range(25))


def test_no_secret_reaches_the_journal(world: World) -> None:
    journal_of_five(world)
    audit.append(
        world.inside, "publish", target="pulp", result="failed",
        error=f"https://admin:{SECRET}@pulp.mirror.internal/api/ refused", extra={"url": f"https://{SECRET}@h/"},
    )
    raw = audit.journal_path(world.inside).read_text()
    assert SECRET not in raw and "admin" not in raw and "https://***@pulp.mirror.internal/api/" in raw
    for name, value in os.environ.items():
        if len(value) >= 12 and any(k in name.upper() for k in ("TOKEN", "PASSWORD", "SECRET", "KEY")):
            assert value not in raw, name
    audit.verify(world.inside)


def test_reserved_field_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seq"):
        audit.append(Store(tmp_path), "import", seq=7)
    assert not audit.journal_path(Store(tmp_path)).exists()


# --- the commands -----------------------------------------------------------------------------------------------


def cli(root: Path, *args: str) -> tuple[int, str]:
    (root / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output.replace("\n", "")


def test_cli_verify_and_show(world: World) -> None:
    store = journal_of_five(world)
    head = audit.verify(store).head
    code, out = cli(world.root, "audit", "verify")
    assert code == 0 and "5 entries, chain intact" in out and f"head: {head}" in out
    code, out = cli(world.root, "audit", "show", "--last", "2")
    # Numbered as verify counts entries (issue 13 item 10): the last two of five are entries 4 and 5 (seq 3, 4).
    assert code == 0 and out.startswith("entry") and "import noop" not in out, out
    assert "refused" in out and "5 entries (entries 4 to 5 shown)" in out
    code, out = cli(world.root, "audit", "show", "--json")
    assert code == 0 and out.count('"hash":') == 5
    data = lines(store)
    del data[1]
    write_lines(store, data)
    code, out = cli(world.root, "audit", "verify")
    assert code == 1 and "line 2:" in out and "chain is broken" in out


def show_and_verify(root: Path, *args: str) -> tuple[list[list[str]], str, str]:
    """`audit show` (its table rows split, and its closing line) and `audit verify`'s output, unjoined."""
    old = Path.cwd()
    os.chdir(root)
    try:
        shown = CliRunner().invoke(app, ["audit", "show", *args])
        verified = CliRunner().invoke(app, ["audit", "verify"])
    finally:
        os.chdir(old)
    assert shown.exit_code == 0, shown.output
    *table, summary = shown.output.splitlines()
    return [row.split() for row in table[1:]], summary, verified.output


def test_show_and_verify_count_entries_the_same_way(world: World) -> None:
    store = journal_of_five(world)
    cli(world.root, "audit", "verify")  # writes mirrorctl.toml
    rows, summary, verified = show_and_verify(world.root)
    report = audit.verify(store)
    # Entry N is the Nth line in both; show's last row is the entry verify names as the head.
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert "OK: " in verified and "5 entries, chain intact" in verified
    assert f"head: {report.head}  (entry 5:" in verified
    assert summary.startswith("5 entries; ") and f"head {report.head} " in summary
    assert rows[-1][3] == report.head_entry["event"]  # type: ignore[index]
    rows, summary, _ = show_and_verify(world.root, "--last", "1")
    assert [r[0] for r in rows] == ["5"] and summary.startswith("5 entries (entries 5 to 5 shown); ")
    # One more entry: both count six, and show's head is again the head verify prints.
    audit.append(store, "test", result="ok")
    rows, summary, verified = show_and_verify(world.root, "-n", "2")
    head = audit.verify(store).head
    assert [r[0] for r in rows] == ["5", "6"] and f"head {head} " in summary and f"head: {head}" in verified
    assert audit.listing(store).entries == audit.verify(store).entries == 6


def test_show_still_lists_a_damaged_journal_with_the_same_numbers(world: World) -> None:
    store = journal_of_five(world)
    cli(world.root, "audit", "verify")
    data = lines(store)
    data[2] = b"not json\n"
    write_lines(store, data)
    before = audit.journal_path(store).read_bytes()
    rows, summary, verified = show_and_verify(world.root)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"] and "(unreadable" in " ".join(rows[2])
    assert summary.startswith("5 entries; ")
    assert "line 3:" in verified and "not JSON" in verified  # verify names the same entry number
    assert audit.journal_path(store).read_bytes() == before


def test_cli_help_has_examples() -> None:
    for args in (["audit"], ["audit", "verify"], ["audit", "show"]):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Example: mirrorctl audit" in result.output, args


# --- publish and rollback (the fake target of tests/test_publish.py) ---------------------------------------------
from tests.test_publish import FakeTarget, _settings, two_profiles  # noqa: E402, F401


async def test_publish_and_rollback_are_recorded(two_profiles) -> None:  # noqa: F811
    from mirrorctl.errors import TargetError
    from mirrorctl.inside.publish import publish, rollback
    from mirrorctl.progress import SILENT

    store, _ = two_profiles
    await publish(_settings(store), store, FakeTarget(), None, SILENT, target_name="internal")
    with pytest.raises(TargetError):
        await publish(_settings(store), store, FakeTarget(fail="server said no"), None, SILENT)
    with pytest.raises(TargetError):
        await rollback(store, FakeTarget(), "pypi", 1)
    entries = audit.last_entries(store)
    assert [(e["event"], e["result"]) for e in entries] == [
        ("publish", "ok"), ("publish", "failed"), ("rollback", "failed")
    ]
    assert (entries[0]["target"], entries[0]["ecosystem"], entries[0]["changed"]) == ("internal", "pypi", True)
    assert entries[0]["bundle-id"] == "bundle-1" and entries[1]["error"] == "server said no"
    assert entries[2]["version"] == 1 and "no versions" in entries[2]["error"]
    assert audit.verify(store).entries == 3
