"""Import outcomes over time: the first import, no-op re-import, rollback refusal and override, expiry at the
exact boundary, and what the served view holds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.importer import import_bundle, lineage_history
from mirrorctl.crossing.bundle.manifest import parse_manifest
from mirrorctl.errors import BundleRefused
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import merge_artifacts
from tests.fixtures.bundles import ECOSYSTEMS, NOW, World, fingerprint, make_world, read_members, sha256_of


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> Notes:
        return self

    def advance(self, amount: float = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def note(self, message: str) -> None:
        self.lines.append(message)


def imp(world: World, bundle: Path, **kw: object):
    kw.setdefault("now", NOW)
    return import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, **kw)  # type: ignore[arg-type]


def test_first_import_serves_the_bundle(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    bundle = world.export()
    bundle_sha = sha256_of(bundle)
    before = fingerprint(world.inside)
    notes = Notes()
    report = imp(world, bundle, progress=notes)
    assert fingerprint(world.inside) != before
    assert sha256_of(bundle) == bundle_sha  # never consumed or changed
    view = world.inside.current_view()
    assert view is not None and view.view_id == report.view_id
    manifest = parse_manifest(read_members(bundle)[0][1])
    assert (view.bundle_id, view.sequence, view.lineage) == (manifest.bundle_id, 1, world.key.key_id)
    assert view.profiles == {name: p.sha256 for name, p in manifest.profiles.items()}
    assert list(view.artifacts) == merge_artifacts(lock.artifacts for _, lock, _ in world.locks)
    for a in view.artifacts:
        for sha, size, _ in a.blobs():
            assert world.inside.verify_blob(sha, size) is None
    for p in manifest.profiles.values():  # the locks are kept as blobs too, for later audits
        assert world.inside.verify_blob(p.sha256, p.size) is None
    assert report.new_blobs == len(manifest.files)
    view_dir = world.inside.root / "views" / view.view_id
    assert (view_dir / "bundle-manifest.json").read_bytes() == read_members(bundle)[0][1]
    assert (view_dir / "bundle-manifest.json.sig").read_bytes() == read_members(bundle)[1][1]
    assert any("local clock 2026-03-01T12:00:00Z" in line for line in notes.lines)
    assert lineage_history(world.inside, world.key.key_id) == (1, manifest.bundle_id)


def test_same_bundle_again_is_a_noop(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    bundle = world.export()
    imp(world, bundle)
    before = fingerprint(world.inside)
    report = imp(world, bundle)
    assert report.noop and report.view_id is None
    assert fingerprint(world.inside) == before


def test_rollback_refused_then_allowed_and_logged(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    b1, b2 = world.export("1.bundle"), world.export("2.bundle")
    imp(world, b2)
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match="refused as a rollback: sequence 1 is older than 2") as info:
        imp(world, b1)
    assert "--allow-rollback" in (info.value.hint or "")
    assert fingerprint(world.inside) == before
    assert imp(world, b2).noop  # N again: nothing changes
    assert fingerprint(world.inside) == before

    notes = Notes()
    report = imp(world, b1, allow_rollback=True, progress=notes)
    assert report.rollback and report.sequence == 1
    assert any(line.startswith("ROLLBACK allowed") for line in notes.lines)
    view = world.inside.current_view()
    assert view is not None and view.sequence == 1
    # History keeps the highest: going forward again to 2 works, and 1 stays refused afterwards.
    assert lineage_history(world.inside, world.key.key_id)[0] == 2
    assert imp(world, b2).sequence == 2
    with pytest.raises(BundleRefused, match="rollback"):
        imp(world, b1)


def test_reused_sequence_with_another_bundle_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a, b = world.export("a.bundle", sequence=4), world.export("b.bundle", sequence=4)
    imp(world, a)
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=r"sequence 4 of lineage .* was already imported as bundle"):
        imp(world, b)
    assert fingerprint(world.inside) == before


def test_the_current_view_counts_even_without_state(tmp_path: Path) -> None:
    """A crash between switch and state record must not open a rollback window."""
    world = make_world(tmp_path)
    b1, b2 = world.export("1.bundle"), world.export("2.bundle")
    imp(world, b2)
    (world.inside.root / "state" / "import.json").unlink()
    with pytest.raises(BundleRefused, match="rollback"):
        imp(world, b1)


def test_lineages_are_independent(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    imp(world, world.export("1.bundle", sequence=10))
    assert lineage_history(world.inside, "0" * 16) == (-1, None)


def test_expiry_at_the_exact_boundary(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    expires = NOW + timedelta(days=2)
    bundle = world.export(expires=expires)
    before = fingerprint(world.inside)
    with pytest.raises(
        BundleRefused, match=r"bundle expired at 2026-03-03T12:00:00Z .local clock says 2026-03-03T12:00:01Z"
    ):
        imp(world, bundle, now=expires + timedelta(seconds=1))
    assert fingerprint(world.inside) == before
    report = imp(world, bundle, now=expires)  # at the instant itself it is still valid
    assert report.sequence == 1 and not report.noop


def test_two_inside_stores_are_independent(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    bundle = world.export()
    imp(world, bundle)
    other = Store(tmp_path / "inside2")
    report = import_bundle(bundle, other, world.trusted, ECOSYSTEMS, now=NOW)
    assert not report.noop
