"""A view's file tree (mirrorctl/inside/filetree.py): written by import before the view is served, built by
`serve --front` for older views, exactly the served blobs (hard links), checked by `mirrorctl verify`, rebuilt
when damaged, removed by gc with its view."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.ecosystems import base
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.errors import IntegrityError, MirrorctlError
from mirrorctl.inside.filetree import check_tree, ensure_tree, repair_trees, tree_dir, tree_entries, tree_writer
from mirrorctl.inside.gc import collect
from mirrorctl.inside.serve.withfront import prepare_trees
from tests.fixtures.bundles import ECOSYSTEMS, NOW, fingerprint, make_world
from tests.fixtures.snapshots import Snapshots, two_snapshots

LAYOUTS = {"pypi": PypiEcosystem()}


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path / "world")


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path, snaps: Snapshots) -> Path:
    path = tmp_path / "mirrorctl.toml"
    path.write_text(f'[store]\npath = "{snaps.store.root}"\n')
    return path


def entries_on_disk(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_import_writes_the_tree_before_the_view_is_served(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w")
    store = world.inside
    seen: list[bool] = []

    def writer(folder: Path, view: object) -> int:
        # Called while the view is still staged: nothing serves it yet, and views/ does not hold it.
        seen.append(store.current_view_id() is None and not (store.root / "views").exists())
        return tree_writer(store, LAYOUTS)(folder, view)  # type: ignore[arg-type]

    report = import_bundle(world.export("1.bundle"), store, world.trusted, ECOSYSTEMS, now=NOW, view_files=writer)
    assert seen == [True]
    view = store.load_view(report.view_id)
    want = tree_entries(store, view, LAYOUTS)
    assert want and entries_on_disk(tree_dir(store, report.view_id)) == set(want)
    for rel, file in want.items():
        entry = tree_dir(store, report.view_id) / rel
        assert entry.stat().st_ino == store.blob_path(file.sha256).stat().st_ino  # a hard link: the blob itself
    assert check_tree(store, report.view_id, LAYOUTS) == []


def test_a_failing_tree_writer_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w")
    store = world.inside
    bundle = world.export("1.bundle")
    before = fingerprint(store)

    def broken(folder: Path, view: object) -> int:
        raise IntegrityError("blob missing (test)")

    with pytest.raises(MirrorctlError):
        import_bundle(bundle, store, world.trusted, ECOSYSTEMS, now=NOW, view_files=broken)
    assert store.current_view_id() is None and store.view_ids() == []
    assert fingerprint(store) == before


def test_serve_front_builds_missing_trees_and_rebuilds_a_damaged_served_one(snaps: Snapshots) -> None:
    store = snaps.store
    assert not tree_dir(store, snaps.first).exists()
    notes: list[str] = []

    class Notes:
        def note(self, text: str) -> None:
            notes.append(text)

    prepare_trees(store, LAYOUTS, ["current"], Notes())  # type: ignore[arg-type]
    assert tree_dir(store, snaps.first).is_dir() and tree_dir(store, snaps.second).is_dir()
    assert "2 view(s)" in notes[0]
    # Damage the served one: an entry replaced by other bytes of the same size, an extra file.
    tree = tree_dir(store, snaps.second)
    victim = sorted(p for p in tree.rglob("*.whl"))[0]
    size = victim.stat().st_size
    victim.unlink()
    victim.write_bytes(b"x" * size)
    (tree / "pypi" / "extra.txt").write_text("planted\n")
    problems = check_tree(store, snaps.second, LAYOUTS)
    assert {p.problem.split()[0] for p in problems} == {"sha256", "not"}, problems
    prepare_trees(store, LAYOUTS, ["current"], Notes())  # type: ignore[arg-type]
    assert "rebuilt the damaged file tree" in notes[-1]
    assert check_tree(store, snaps.second, LAYOUTS) == []


def test_verify_checks_the_served_trees(config: Path, snaps: Snapshots, tmp_path: Path) -> None:
    store = snaps.store
    ensure_tree(store, snaps.second, LAYOUTS)
    code, out = cli(config, "verify")
    assert code == 0, out
    assert "1 served file tree(s) exactly their blobs" in out
    tree = tree_dir(store, snaps.second)
    wheel = sorted(tree.rglob("*.whl"))[0]
    outside = tmp_path / "outside.txt"
    outside.write_text("not in the store\n")

    damage = [
        ("an extra file", lambda: (wheel.parent / "extra.whl").write_bytes(b"x"), "not a file the view serves"),
        ("a link", lambda: (wheel.parent / "link.whl").symlink_to(outside), "a symbolic link"),
        ("a missing entry", lambda: wheel.unlink(), "missing"),
        ("a changed copy", lambda: (wheel.unlink(), wheel.write_bytes(b"y" * wheel_size)), "sha256"),
    ]
    wheel_size = wheel.stat().st_size
    clean = shutil.copytree(tree, tmp_path / "clean-tree", copy_function=os.link)
    for what, do, named in damage:
        do()
        before = fingerprint(store)
        code, out = cli(config, "verify")
        assert code == 1, (what, out)
        assert "file tree entr" in out and named in out and snaps.second in out, (what, out)
        assert "serve --front nginx" in out, out
        assert fingerprint(store) == before, what  # verify only reads
        shutil.rmtree(tree)
        shutil.copytree(clean, tree, copy_function=os.link)
        assert cli(config, "verify")[0] == 0


def test_gc_removes_a_tree_with_its_view(snaps: Snapshots) -> None:
    store = snaps.store
    for view_id in (snaps.first, snaps.second):
        ensure_tree(store, view_id, LAYOUTS)
    report = collect(store, keep=0, history_steps=0)
    assert report.snapshots_removed == (snaps.first,)
    assert not (store.root / "views" / snaps.first).exists()
    assert tree_dir(store, snaps.second).is_dir() and check_tree(store, snaps.second, LAYOUTS) == []


def test_an_adapter_path_that_climbs_out_is_refused(snaps: Snapshots) -> None:
    class Climbing:
        def served_blobs(self, view: base.ServedView) -> dict[str, base.StaticFile]:
            a = view.artifacts("pypi")[0]
            return {"../../escape.whl": base.StaticFile(a.sha256, a.size, a)}

    store = snaps.store
    with pytest.raises(MirrorctlError, match="unsafe"):
        ensure_tree(store, snaps.second, {"pypi": Climbing()})
    assert not tree_dir(store, snaps.second).exists()
    assert not list((store.root / "tmp").glob("tree-*"))


def test_a_blob_replaced_by_a_repair_gets_its_tree_entry_rebuilt(snaps: Snapshots) -> None:
    store = snaps.store
    ensure_tree(store, snaps.second, LAYOUTS)
    view = store.load_view(snaps.second)
    a = view.artifacts[0]
    blob = store.blob_path(a.sha256)
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # rot in place: the tree's hard link rots with it
    mended = store.tmp_dir / "mended"
    mended.write_bytes(good)
    store.commit_blob(mended, a.sha256)  # what `import --repair` does: a new file, a new inode
    entry = tree_dir(store, snaps.second) / "pypi" / "files" / a.sha256 / a.filename
    assert entry.read_bytes() != good
    assert [p.problem.split()[0] for p in check_tree(store, snaps.second, LAYOUTS)] == ["sha256"]
    assert repair_trees(store, LAYOUTS) == [snaps.second]
    assert entry.read_bytes() == good and entry.stat().st_ino == blob.stat().st_ino
    assert repair_trees(store, LAYOUTS) == []
