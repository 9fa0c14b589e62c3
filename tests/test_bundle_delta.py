"""Delta bundles: only the blobs the inside lacks travel; the base must be present at import, else nothing changes."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from mirrorctl.crossing.bundle.export import export_bundle
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.manifest import expected_digest, parse_manifest
from mirrorctl.crossing.bundle.state import export_state, read_state
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.crossing.signing import generate_key, load_public_key
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import BundleRefused, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from tests.fixtures.bundles import (
    ECOSYSTEMS,
    NOW,
    World,
    add_dists,
    fingerprint,
    make_lock,
    make_world,
    read_members,
    resign,
    staging_dirs,
    write_members,
)
from tests.fixtures.wheels import Dist


def _bump(world: World) -> list[Artifact]:
    """gamma 0.3 -> 0.4 in profile data; returns the new artifacts."""
    new = add_dists(world.outside, world.root / "work2", [Dist("gamma", "0.4")])
    web = world.artifacts[:2]
    data = [world.artifacts[1], *new]
    world.locks = [make_lock("web", web), make_lock("data", data)]
    return new


def _full_then_state(world: World) -> Path:
    full = world.export("full.bundle")
    import_bundle(full, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    state = world.root / "inside.state"
    export_state(world.inside, state, signing_key=None, now=NOW)
    return state


def _blob_members(bundle: Path) -> set[str]:
    with tarfile.open(bundle, "r:") as tar:
        return {n.removeprefix("blobs/sha256/") for n in tar.getnames() if n.startswith("blobs/")}


def test_delta_carries_only_new_blobs_and_imports_after_full(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    new = _bump(world)
    state = read_state(state_file)
    delta = world.export("delta.bundle", since=state)

    new_blobs = {sha for a in new for sha, _, _ in a.blobs()}
    assert _blob_members(delta) == new_blobs
    manifest = parse_manifest(read_members(delta)[0][1])
    assert manifest.kind == "delta" and manifest.sequence == 2
    assert manifest.base is not None and manifest.base.state_sha256 == state.digest
    assert manifest.base.sequence == 1 and manifest.base.lineage == world.key.key_id
    all_blobs = {sha: size for name, lock, _ in world.locks for a in lock.artifacts for sha, size, _ in a.blobs()}
    carried = {f.sha256: f.size for f in manifest.files if f.path.startswith("blobs/")}
    assert set(carried) == new_blobs
    # The blobs left out are summarized (count + digest); the importer derives the list from the locks.
    assert manifest.expected == expected_digest({s: n for s, n in all_blobs.items() if s not in new_blobs})
    assert {p for p in manifest.profiles} == {"web", "data"}  # complete metadata: every lock is listed
    # The changed lock and the SBOM travel as line deltas against the inside's copies; web.lock did not change
    # (same bytes as the inside's copy) and travels as a delta too.
    assert {r.path for r in manifest.rebuilt} == {"sbom.cdx.json", "locks/data.lock", "locks/web.lock"}
    with tarfile.open(delta, "r:") as tar:
        names = set(tar.getnames())
    assert "locks/data.lock" not in names and "locks/data.lock.delta" in names and "sbom.cdx.json.delta" in names

    verified = verify_bundle(delta, world.trusted, NOW, ecosystems=ECOSYSTEMS, store=world.inside)  # read only
    assert {(a.name, a.version) for a in verified.artifacts} == {("alpha", "1.0"), ("beta", "2.1"), ("gamma", "0.4")}

    report = import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    # + the SBOM, the changed data.lock (rebuilt) and the three line deltas (kept like every member)
    assert report.new_blobs == len(new_blobs) + 5 and report.sequence == 2
    data_lock = next(b for n, _, b in world.locks if n == "data")
    assert world.inside.blob_path(hashlib.sha256(data_lock).hexdigest()).read_bytes() == data_lock
    view = world.inside.current_view()
    assert view is not None and view.bundle_id == manifest.bundle_id
    served = {(a.name, a.version) for a in view.artifacts}
    assert served == {("alpha", "1.0"), ("beta", "2.1"), ("gamma", "0.4")}
    assert not world.inside.missing_blobs(view.artifacts)
    # The same delta again is a no-op, as for a full bundle.
    before = fingerprint(world.inside)
    assert import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW).noop
    assert fingerprint(world.inside) == before


def test_base_missing_refused_naming_blobs_store_unchanged(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    delta = world.export("delta.bundle", since=read_state(state_file))
    lost = world.artifacts[0]  # alpha's wheel vanished from the inside store after the state was taken
    world.inside.blob_path(lost.sha256).unlink()
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused) as exc:
        import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    msg = exc.value.message
    assert "1 of the" in msg and lost.sha256[:16] in msg and f"({lost.size} bytes)" in msg
    assert read_state(state_file).digest[:16] in msg and "sequence 1" in msg
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)


def test_delta_against_another_store_or_lineage_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    delta = world.export("delta.bundle", since=read_state(state_file))

    # A second inside that trusts both keys but only ever imported bundles of another lineage.
    other_key = generate_key(tmp_path / "keys" / "other.key")
    trusted = [*world.trusted, load_public_key(other_key.public_path)]
    stranger = Store(tmp_path / "stranger")
    other = tmp_path / "other.bundle"
    export_bundle(world.locks, world.outside, other_key.private_path, other, now=NOW, ecosystems=load_ecosystems())
    import_bundle(other, stranger, trusted, ECOSYSTEMS, now=NOW)
    before = fingerprint(stranger)
    with pytest.raises(BundleRefused) as exc:
        import_bundle(delta, stranger, trusted, ECOSYSTEMS, now=NOW)
    assert f"has imported nothing of lineage {world.key.key_id}" in exc.value.message
    assert fingerprint(stranger) == before  # even though every blob is there

    # A third inside of the same lineage, but at sequence 1 with a different bundle: not the state's store.
    twin = Store(tmp_path / "twin")
    twin_bundle = world.export("twin.bundle", sequence=1)
    import_bundle(twin_bundle, twin, world.trusted, ECOSYSTEMS, now=NOW)
    before = fingerprint(twin)
    with pytest.raises(BundleRefused) as exc:
        import_bundle(delta, twin, world.trusted, ECOSYSTEMS, now=NOW)
    assert "the state file does not describe this store" in exc.value.message
    assert fingerprint(twin) == before


def test_export_refuses_a_state_without_the_lineage(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state = world.root / "empty.state"
    export_state(world.inside, state, signing_key=None, now=NOW)  # nothing imported yet
    with pytest.raises(UserError) as exc:
        world.export("delta.bundle", since=read_state(state))
    assert "imported nothing signed by this key" in exc.value.message and "full bundle" in (exc.value.hint or "")
    assert not (world.root / "delta.bundle").exists()


def test_manifest_edited_expected_list_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    members = read_members(world.export("delta.bundle", since=read_state(state_file)))
    # A holder of the key lowers the expected count: the locks still need every blob, so verification refuses.
    edited = resign(members, world.key.private_path, lambda doc: doc["expected"].update(count=1))
    bad = write_members(world.root / "bad.bundle", edited)
    with pytest.raises(BundleRefused, match="expected says 1 blob"):
        verify_bundle(bad, world.trusted, NOW, ecosystems=ECOSYSTEMS, store=world.inside)


def _old_reader() -> ModuleType:
    path = Path(__file__).parent / "fixtures" / "manifest_v1_reader.py"
    spec = importlib.util.spec_from_file_location("manifest_v1_reader", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_format_version_1_readers_refuse_format_2_and_delta(tmp_path: Path) -> None:
    # Format-version 2 (locks with artifact paths) is refused by a format-1 reader naming the version, instead of
    # failing later on a lock it cannot read; its full bundles have no delta fields, as before.
    old = _old_reader()
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    full_bytes = read_members(world.root / "full.bundle")[0][1]
    with pytest.raises(BundleRefused, match=r"format-version 2 is not supported \(expected 1\)"):
        old.parse_manifest(full_bytes)
    assert b'"base"' not in full_bytes and b'"expected"' not in full_bytes
    _bump(world)
    delta_bytes = read_members(world.export("delta.bundle", since=read_state(state_file)))[0][1]
    with pytest.raises(BundleRefused, match="unknown field"):
        old.parse_manifest(delta_bytes)
    doc = json.loads(delta_bytes)  # and even without the new fields, the kind alone is refused
    del doc["base"], doc["expected"], doc["rebuilt"]
    doc["format-version"] = 1
    with pytest.raises(BundleRefused, match="kind 'delta' is not supported"):
        old.parse_manifest(json.dumps(doc).encode())


def _synthetic_world(root: Path, count: int, bump_files: int, bump_size: int) -> tuple[World, list[Artifact]]:
    """``count`` small artifacts (a realistic lock, SBOM and manifest) and one project bumped to big wheels."""
    world = make_world(root, dists=())

    def artifact(name: str, version: str, size: int, tag: str) -> Artifact:
        data = os.urandom(size)
        sha = hashlib.sha256(data).hexdigest()
        tmp = world.outside.tmp_dir / sha
        tmp.write_bytes(data)
        world.outside.commit_blob(tmp, sha)
        return Artifact("pypi", name, version, f"{name}-{version}-{tag}.whl", size, sha,
                        ("py3.11-manylinux_2_28_x86_64",))  # fmt: skip

    old = [artifact(f"proj{i:03d}", "1.0", 2000 + i * 37, "py3-none-any") for i in range(count)]
    world.locks = [make_lock("big", old)]
    new = [
        artifact("proj000", "1.1", bump_size, f"cp311-cp311-manylinux_2_28_{arch}")
        for arch in ("x86_64", "aarch64", "ppc64le", "s390x")[:bump_files]
    ]
    world.artifacts = [*new, *old[1:]]
    return world, new


def test_overhead_under_one_percent_on_a_synthetic_profile(tmp_path: Path) -> None:
    world, new = _synthetic_world(tmp_path, count=200, bump_files=4, bump_size=6 * 1024 * 1024)
    state_file = _full_then_state(world)
    world.locks = [make_lock("big", world.artifacts)]
    delta = world.export("delta.bundle", since=read_state(state_file))
    new_bytes = sum(a.size for a in new)
    overhead = delta.stat().st_size - new_bytes
    assert _blob_members(delta) == {a.sha256 for a in new}
    assert 0 < overhead < new_bytes / 100, f"overhead {overhead} bytes for {new_bytes} bytes of new artifacts"
    report = import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert report.artifacts == 203 and report.new_bytes >= new_bytes  # + the new locks and SBOM


def test_small_bump_in_a_200_artifact_profile_has_small_overhead(tmp_path: Path) -> None:
    # One 300 kB wheel bumped in a 200-artifact profile: the lock and SBOM travel as line deltas, the left-out
    # blobs as a count and digest, so what is not blob bytes is a few kB (it was ~280 kB with complete copies).
    world, new = _synthetic_world(tmp_path, count=200, bump_files=1, bump_size=300 * 1024)
    state_file = _full_then_state(world)
    world.locks = [make_lock("big", world.artifacts)]
    delta = world.export("delta.bundle", since=read_state(state_file))
    new_bytes = sum(a.size for a in new)
    overhead = delta.stat().st_size - new_bytes
    assert overhead < 8 * 1024, f"overhead {overhead} bytes"
    manifest = parse_manifest(read_members(delta)[0][1])
    assert {r.path for r in manifest.rebuilt} == {"sbom.cdx.json", "locks/big.lock"}

    report = import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert report.artifacts == 200
    lock_bytes = world.locks[0][2]  # the inside rebuilt the outside's lock byte for byte
    view = world.inside.current_view()
    assert view is not None and view.profiles["big"] == hashlib.sha256(lock_bytes).hexdigest()
    assert world.inside.blob_path(view.profiles["big"]).read_bytes() == lock_bytes


def _delta_members(tmp_path: Path) -> tuple[World, list]:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    return world, read_members(world.export("delta.bundle", since=read_state(state_file)))


def _replace_member(world: World, members: list, name: str, data: bytes, edit_rebuilt=None) -> Path:
    """A key holder's bundle whose ``name`` member is ``data`` (manifest size and sha256 updated, re-signed)."""
    out = []
    for info, old in members:
        if info.name == name:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            old = data
        out.append((info, old))

    def edit(doc: dict) -> None:
        for f in doc["files"]:
            if f["path"] == name:
                f["size"], f["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        if edit_rebuilt is not None:
            edit_rebuilt(doc)

    return write_members(world.root / "bad.bundle", resign(out, world.key.private_path, edit))


def _ops(members: list, name: str) -> dict:
    return json.loads(next(b for m, b in members if m.name == name))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["ops"].insert(0, [0, 10_000]), "op 0 ([0, 10000]) is neither a text nor a range of the base"),
        (lambda d: d["ops"].insert(0, [5, 5]), "op 0 ([5, 5]) is neither"),
        (lambda d: d["ops"].insert(0, [-1, 2]), "op 0 ([-1, 2]) is neither"),
        (lambda d: d["ops"].insert(0, {"x": 1}), "op 0 ({'x': 1}) is neither"),
        (lambda d: d["ops"].insert(0, ""), "op 0 is empty"),
        (lambda d: d["ops"].append("x" * 5000), "would be larger than the"),
        (lambda d: d["ops"].pop(), "rebuilt from locks/data.lock.delta is"),
        (lambda d: d.update({"base-sha256": "0" * 64}), "line delta is against"),
        (lambda d: d.update({"extra": 1}), "exactly base-sha256 and ops"),
    ],
)
def test_tampered_line_delta_refused_store_unchanged(tmp_path: Path, mutate, message: str) -> None:
    world, members = _delta_members(tmp_path)
    doc = _ops(members, "locks/data.lock.delta")
    mutate(doc)
    bad = _replace_member(world, members, "locks/data.lock.delta", json.dumps(doc).encode())
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused) as exc:
        import_bundle(bad, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert "locks/data.lock" in exc.value.message and message in exc.value.message, exc.value.message
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)


def test_line_delta_not_json_or_oversized_refused(tmp_path: Path) -> None:
    world, members = _delta_members(tmp_path)
    bad = _replace_member(world, members, "sbom.cdx.json.delta", b"\xff not json")
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=r"sbom\.cdx\.json\.delta: line delta is not valid JSON"):
        import_bundle(bad, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert fingerprint(world.inside) == before

    # A manifest that lists a huge delta is refused before the member is read.
    def huge(doc: dict) -> None:
        next(f for f in doc["files"] if f["path"] == "sbom.cdx.json.delta")["size"] = 17 * 1024 * 1024

    bad = write_members(world.root / "huge.bundle", resign(members, world.key.private_path, huge))
    with pytest.raises(BundleRefused, match=r"sbom\.cdx\.json\.delta is 17825792 bytes, more than the"):
        import_bundle(bad, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert fingerprint(world.inside) == before


def test_rebuilt_entry_edits_refused(tmp_path: Path) -> None:
    world, members = _delta_members(tmp_path)
    cases = [
        (lambda d: d["rebuilt"][0].update(delta="locks/web.lock.delta"), "delta must be"),
        (lambda d: d["rebuilt"][0].update(path="blobs/sha256/" + "0" * 64), "must be a lock or the SBOM"),
        (lambda d: d["rebuilt"].pop(0), "is listed but nothing is rebuilt from it"),
        (lambda d: d["rebuilt"][0].update({"base-size": -1}), "base-size must be an integer"),
    ]
    before = fingerprint(world.inside)
    for edit, message in cases:
        bad = write_members(world.root / "bad.bundle", resign(members, world.key.private_path, edit))
        with pytest.raises(BundleRefused, match=message):
            import_bundle(bad, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
        assert fingerprint(world.inside) == before


def test_base_lock_blob_missing_refused_naming_it(tmp_path: Path) -> None:
    world, members = _delta_members(tmp_path)
    bad = write_members(world.root / "d.bundle", members)
    manifest = parse_manifest(members[0][1])
    base = next(r for r in manifest.rebuilt if r.path == "locks/data.lock")
    world.inside.blob_path(base.base_sha256).unlink()  # the inside's copy of data.lock is gone
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused) as exc:
        import_bundle(bad, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    msg = exc.value.message
    assert "line deltas against copies this store does not hold: locks/data.lock" in msg
    assert base.base_sha256[:16] in msg and "nothing was changed" in msg
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)
    # Verify reads the store it is given and names the copy as well; without one it cannot rebuild.
    with pytest.raises(BundleRefused, match=f"locks/data.lock travels as a line delta .*{base.base_sha256}"):
        verify_bundle(bad, world.trusted, NOW, ecosystems=ECOSYSTEMS, store=world.inside)


def test_full_bundle_never_carries_line_deltas_and_export_falls_back_without_bases(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    assert not any(m.name.endswith(".delta") for m, _ in read_members(world.root / "full.bundle"))
    _bump(world)
    state = read_state(state_file)
    bare = dataclasses.replace(state, bases={})  # an older state file: no copies to diff against
    members = read_members(world.export("whole.bundle", since=bare))
    manifest = parse_manifest(members[0][1])
    assert manifest.kind == "delta" and manifest.rebuilt == ()
    assert {"sbom.cdx.json", "locks/data.lock"} <= {m.name for m, _ in members}
    report = import_bundle(world.root / "whole.bundle", world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert report.sequence == 2


def test_repair_with_a_delta_rebuilds_a_damaged_lock_blob(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state_file = _full_then_state(world)
    _bump(world)
    delta = world.export("delta.bundle", since=read_state(state_file))
    import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    data_lock = next(b for n, _, b in world.locks if n == "data")
    blob = world.inside.blob_path(hashlib.sha256(data_lock).hexdigest())
    blob.write_bytes(b"rot" + data_lock[3:])
    report = import_bundle(delta, world.inside, world.trusted, ECOSYSTEMS, now=NOW, repair=True)
    assert report.new_blobs == 1 and blob.read_bytes() == data_lock  # rebuilt from the old lock, checked
