"""Sequences and reissues (issue 13 item 8): re-exporting an unchanged selection keeps its sequence and says it
reissues it; the inside takes either file of one issue, once; a genuinely older sequence is refused naming the
bundle that superseded it and when it was imported. Every refusal leaves the inside as it was."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.against_state import verify_against_state
from mirrorctl.crossing.bundle.chunks import resolve_bundle
from mirrorctl.crossing.bundle.export import EXPORT_STATE, export_records
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.manifest import Reissue, parse_manifest
from mirrorctl.crossing.bundle.state import export_state, read_state
from mirrorctl.errors import BundleRefused
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import (
    ECOSYSTEMS,
    NOW,
    World,
    fingerprint,
    make_world,
    read_members,
    resign,
    sha256_of,
    staging_dirs,
    write_members,
)
from tests.fixtures.wheels import Dist
from tests.test_bundle_cli import cli, sites  # noqa: F401  (the two-site fixture)
from tests.test_bundle_delta import _bump, _full_then_state
from tests.test_update_cycle_cli import _relock


def _export(world: World, name: str, **kw: object) -> Path:
    kw.setdefault("new_sequence", False)  # the default of export_bundle and of the CLI
    return world.export(name, **kw)


def _manifest(bundle: Path):
    if not bundle.exists():  # written in parts: read through its index, as verify and import do
        with resolve_bundle(bundle.with_name(bundle.name + ".parts.json"), []).open("rb") as raw:
            with tarfile.open(fileobj=raw, mode="r|") as tar:
                first = tar.next()
                assert first is not None and first.name == "manifest.json"
                f = tar.extractfile(first)
                assert f is not None
                return parse_manifest(f.read())
    return parse_manifest(read_members(bundle)[0][1])


def imp(world: World, bundle: Path, **kw: object):
    return import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW, **kw)  # type: ignore[arg-type]


def test_unchanged_selection_reuses_its_sequence_and_says_so(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    original = list(world.locks)
    first = _manifest(_export(world, "a.bundle"))
    again = _manifest(_export(world, "b.bundle", chunk_size=4096))  # in parts, for a smaller medium
    assert first.sequence == again.sequence == 1 and first.reissues is None
    assert again.reissues == Reissue(1, first.bundle_id) and again.bundle_id != first.bundle_id
    third = _manifest(_export(world, "c.bundle"))  # a reissue of a reissue names the first issue
    assert third.reissues == Reissue(1, first.bundle_id)

    records = export_records(world.outside, world.key.key_id)  # state/export.json: one record per bundle written
    assert [(r.sequence, r.bundle_id, r.issue) for r in records] == [
        (1, first.bundle_id, first.bundle_id), (1, again.bundle_id, first.bundle_id),
        (1, third.bundle_id, first.bundle_id),
    ]  # fmt: skip
    raw = world.outside.read_state(EXPORT_STATE)
    assert raw["lineages"] == {world.key.key_id: 1} and raw["exports"][1]["file"] == "b.bundle"

    _bump(world)  # another selection: the next sequence
    changed = _manifest(_export(world, "d.bundle"))
    assert changed.sequence == 2 and changed.reissues is None
    assert _manifest(_export(world, "e.bundle", new_sequence=True)).sequence == 3  # on purpose: a new number
    assert _manifest(_export(world, "f.bundle", sequence=7)).reissues is None  # --sequence: never a reissue
    # f was exported with --sequence 7: it is now the latest export, and the same selection again reissues it.
    assert _manifest(_export(world, "g.bundle")).reissues == Reissue(7, _manifest(tmp_path / "f.bundle").bundle_id)
    # A selection that is not the latest one (a's, exported again after d) is a new change: the next sequence.
    world.locks = original
    back = _manifest(_export(world, "h.bundle"))
    assert back.sequence == 8 and back.reissues is None


def test_the_base_is_part_of_the_selection(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)  # full.bundle, sequence 1, imported
    _bump(world)
    state = read_state(state_file)
    full = _manifest(_export(world, "full2.bundle"))
    delta = _manifest(_export(world, "delta.bundle", since=state))
    assert (full.sequence, delta.sequence) == (2, 3) and delta.reissues is None
    parts = _manifest(_export(world, "delta-parts.bundle", since=state, chunk_size=2048))
    assert parts.sequence == 3 and parts.reissues == Reissue(3, delta.bundle_id) and parts.kind == "delta"


def test_reissue_after_the_original_is_a_noop_and_either_imports(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a, b = _export(world, "a.bundle"), _export(world, "b.bundle")
    report = imp(world, a)
    assert report.sequence == 1 and not report.noop
    before = fingerprint(world.inside)
    again = imp(world, b)
    assert again.noop and again.served_as == _manifest(a).bundle_id and again.issue == _manifest(a).bundle_id
    assert fingerprint(world.inside) == before
    assert imp(world, a).noop and fingerprint(world.inside) == before  # and the original again

    # A second inside takes the reissue first; the original after it is the same issue, a no-op.
    other = World(world.root, world.key, world.outside, Store(tmp_path / "inside2"), world.artifacts, world.locks)
    served = imp(other, b)
    assert not served.noop and served.sequence == 1
    view = other.inside.current_view()
    assert view is not None and view.bundle_id == _manifest(b).bundle_id
    before = fingerprint(other.inside)
    later = imp(other, a)
    assert later.noop and later.served_as == _manifest(b).bundle_id and fingerprint(other.inside) == before


def test_a_delta_reissued_in_parts_imports_once(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    state = read_state(state_file)
    one = _export(world, "delta.bundle", since=state)
    two = _export(world, "delta-again.bundle", since=state)  # (chunked in the CLI test below)
    for bundle in (one, two):  # the outside checks each against the state before the media leaves
        assert verify_against_state(bundle, world.trusted, NOW, state, ecosystems=ECOSYSTEMS)
    assert not imp(world, two).noop
    before = fingerprint(world.inside)
    assert imp(world, one).noop and fingerprint(world.inside) == before


def test_older_sequence_refused_naming_what_superseded_it(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    old, old_again = _export(world, "1.bundle"), _export(world, "1b.bundle")
    _bump(world)
    newer = _export(world, "2.bundle")
    imp(world, newer)
    newer_id = _manifest(newer).bundle_id
    digest = sha256_of(world.inside.root / "views" / world.inside.current_view().view_id / "bundle-manifest.json")  # type: ignore[union-attr]
    before = fingerprint(world.inside)
    for bundle in (old, old_again):  # the first issue and its reissue alike
        with pytest.raises(BundleRefused) as exc:
            imp(world, bundle)
        msg = exc.value.message
        assert "refused as a rollback: sequence 1 is older than 2, already imported for lineage" in msg
        assert f"superseded by bundle {newer_id} (sequence 2, manifest sha256 {digest[:16]}…, imported " in msg
        assert "imported 2026-03-01T12:00:00Z)" in msg and "--allow-rollback" in (exc.value.hint or "")
        assert fingerprint(world.inside) == before and not staging_dirs(world.inside)

    # A store whose import record predates these fields: the served view's bundle still says when.
    state = world.inside.read_state("import")
    rec = state["lineages"][world.key.key_id]
    world.inside.write_state("import", {**state, "lineages": {world.key.key_id: {
        "sequence": rec["sequence"], "bundle-id": rec["bundle-id"]}}})  # fmt: skip
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=rf"superseded by bundle {newer_id} \(sequence 2, manifest sha256 "
                       rf"{digest[:16]}…, imported 2026-03-01T12:00:00Z\)"):  # fmt: skip
        imp(world, old)
    assert fingerprint(world.inside) == before


def _claiming(world: World, bundle: Path, name: str, sequence: int, first: str) -> Path:
    """``bundle`` re-signed by the key holder to say it reissues ``first`` at ``sequence``."""

    def edit(doc: dict) -> None:
        doc["sequence"] = sequence
        doc["reissues"] = {"sequence": sequence, "bundle-id": first}

    return write_members(world.root / name, resign(read_members(bundle), world.key.private_path, edit))


def test_a_reissue_with_other_locks_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a = _export(world, "a.bundle")
    _bump(world)
    b = _export(world, "b.bundle")
    liar = _claiming(world, b, "liar.bundle", 1, _manifest(a).bundle_id)
    imp(world, a)
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=r"issued as bundle .* but carries other locks") as exc:
        imp(world, liar)  # the served view is a's
    assert "export the change again" in (exc.value.hint or "")
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)
    # Also when that issue is only in the history: the served view went back to an older bundle on purpose.
    imp(world, world.export("z.bundle", sequence=0), allow_rollback=True)
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match="carries other locks"):
        imp(world, liar)
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)


def test_a_reissue_of_the_newest_imports_again_after_a_rollback(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a, b = _export(world, "a.bundle"), _export(world, "b.bundle")
    imp(world, a)
    imp(world, world.export("z.bundle", sequence=0), allow_rollback=True)
    report = imp(world, b)  # like a again: forward to sequence 1, not a rollback, not refused as reused
    assert not report.noop and not report.rollback and report.sequence == 1
    view = world.inside.current_view()
    assert view is not None and view.bundle_id == _manifest(b).bundle_id


@pytest.mark.parametrize(
    ("reissues", "message"),
    [
        ({"sequence": 2, "bundle-id": "6f1c9a52-8f33-4d0c-9a59-0a1b2c3d4e5f"}, "reissues.sequence 2 is not the"),
        ({"sequence": 1}, "exactly sequence and bundle-id"),
        ({"sequence": 1, "bundle-id": "x"}, "reissues.bundle-id 'x' is not a UUID"),
        ({"sequence": True, "bundle-id": "6f1c9a52-8f33-4d0c-9a59-0a1b2c3d4e5f"}, "must be an integer"),
    ],
)
def test_reissues_field_is_strict(tmp_path: Path, reissues: dict, message: str) -> None:
    world = make_world(tmp_path)
    doc = json.loads(read_members(_export(world, "a.bundle"))[0][1])
    doc["reissues"] = reissues
    with pytest.raises(BundleRefused, match=message):
        parse_manifest(json.dumps(doc).encode())
    doc["reissues"] = {"sequence": 1, "bundle-id": doc["bundle-id"]}
    with pytest.raises(BundleRefused, match="the bundle's own id"):
        parse_manifest(json.dumps(doc).encode())


def test_verify_since_takes_a_reissue_of_what_the_inside_holds(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a, b = _export(world, "a.bundle"), _export(world, "b.bundle")
    imp(world, a)
    state_file = tmp_path / "inside.state"
    export_state(world.inside, state_file, signing_key=None, now=NOW)
    state = read_state(state_file)
    assert verify_against_state(b, world.trusted, NOW, state, ecosystems=ECOSYSTEMS)  # import: a no-op
    # The original after its reissue was imported: the outside's export records say they are one issue.
    other_state = tmp_path / "other.state"
    world.inside.write_state("import", {"lineages": {world.key.key_id: {
        "sequence": 1, "bundle-id": _manifest(b).bundle_id}}})  # fmt: skip
    export_state(world.inside, other_state, signing_key=None, now=NOW)
    issues = {r.bundle_id: r.issue for r in export_records(world.outside)}
    assert verify_against_state(a, world.trusted, NOW, read_state(other_state), ecosystems=ECOSYSTEMS, issues=issues)


def test_cli_reissue_in_parts_then_import_either(sites: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    outside, inside = sites
    assert cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)[0] == 0
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    assert cli("bundle", "export", "--out", "full.bundle", "web", cwd=outside)[0] == 0
    assert cli("import", str(outside / "full.bundle"), cwd=inside)[0] == 0
    state = tmp_path / "inside.state"
    assert cli("state", "export", "--out", str(state), cwd=inside)[0] == 0
    _relock(outside, tmp_path / "work2", [Dist("alpha", "1.0"), Dist("beta", "2.1")])

    code, out = cli("bundle", "export", "--since", str(state), "--out", str(tmp_path / "one.bundle"), cwd=outside)
    assert code == 0 and "sequence 2" in out and "reissues" not in out, out
    first_id = out.split("delta bundle ")[1].split(",")[0]
    code, out = cli(
        "bundle", "export", "--since", str(state), "--chunk-size", "2K", "--out", str(tmp_path / "two.bundle"),
        cwd=outside,
    )  # fmt: skip
    assert code == 0 and "sequence 2" in out, out
    assert f"reissues sequence 2: the selection of bundle {first_id} (exported 20" in out
    index = tmp_path / "two.bundle.parts.json"
    for bundle in (tmp_path / "one.bundle", index):
        code, out = cli("bundle", "verify", "--since", str(state), str(bundle), cwd=outside)
        assert code == 0 and "OK" in out, out

    code, out = cli("import", str(index), cwd=inside)
    assert code == 0 and "imported bundle" in out and "sequence 2" in out, out
    store_before = fingerprint(Store(inside / "store"))
    code, out = cli("import", str(tmp_path / "one.bundle"), cwd=inside)
    assert code == 0, out
    assert "is sequence 2 of lineage" in out and f"(issued as bundle {first_id}), already served from bundle" in out
    assert "nothing changed" in out
    assert fingerprint(Store(inside / "store")) == store_before

    out = " ".join(cli("bundle", "export", "--help", cwd=outside)[1].split())  # rich wraps and pads the help
    assert "--new-sequence" in out and "Example: mirrorctl bundle export --new-sequence" in out
