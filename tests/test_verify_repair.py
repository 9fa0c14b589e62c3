"""`mirrorctl verify` names damaged blobs of the served view; `mirrorctl import --repair` with the served bundle
replaces exactly those, leaving the served view as it was."""

from __future__ import annotations

from pathlib import Path

from mirrorctl.inside.store import Store
from tests.fixtures.bundles import fingerprint

from .test_bundle_cli import cli, sites  # noqa: F401 - fixture


def _imported(sites: tuple[Path, Path]) -> tuple[Path, Path, Store]:  # noqa: F811
    outside, inside = sites
    assert cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)[0] == 0
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    assert cli("bundle", "export", "--out", "web.bundle", "web", cwd=outside)[0] == 0
    bundle = outside / "web.bundle"
    assert cli("import", str(bundle), cwd=inside)[0] == 0
    return bundle, inside, Store(inside / "store")


def test_verify_passes_then_names_a_flipped_and_a_missing_blob(sites: tuple[Path, Path]) -> None:  # noqa: F811
    _bundle, inside, store = _imported(sites)
    code, out = cli("verify", cwd=inside)
    assert code == 0 and "OK: " in out, out
    view = store.current_view()
    assert view is not None
    alpha = next(a for a in view.artifacts if a.name == "alpha")
    beta = next(a for a in view.artifacts if a.name == "beta")
    path = store.blob_path(alpha.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only a re-hash finds it
    path.write_bytes(bytes(data))
    store.blob_path(beta.sha256).unlink()
    code, out = cli("verify", cwd=inside)
    assert code == 1
    assert "2 of " in out and alpha.filename in out and beta.filename in out and "missing" in out
    assert "--repair" in out


def test_repair_restores_exactly_the_damaged_blobs(sites: tuple[Path, Path]) -> None:  # noqa: F811
    bundle, inside, store = _imported(sites)
    before = fingerprint(store)
    view_before = store.current_view_id()
    view = store.current_view()
    assert view is not None
    alpha = next(a for a in view.artifacts if a.name == "alpha")
    path = store.blob_path(alpha.sha256)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert cli("verify", cwd=inside)[0] == 1
    code, out = cli("import", "--repair", str(bundle), cwd=inside)
    assert code == 0, out
    assert "repaired 1 blob(s)" in out
    assert path.read_bytes() == good
    assert store.current_view_id() == view_before
    assert fingerprint(store) == before
    assert cli("verify", cwd=inside)[0] == 0


def test_repair_refuses_a_bundle_that_is_not_served(sites: tuple[Path, Path]) -> None:  # noqa: F811
    outside, inside = sites
    assert cli("key", "generate", "--out", "keys/mirrorctl.key", cwd=outside)[0] == 0
    (inside / "keys" / "mirrorctl.pub").write_bytes((outside / "keys" / "mirrorctl.key.pub").read_bytes())
    assert cli("bundle", "export", "--out", "web.bundle", "web", cwd=outside)[0] == 0
    code, out = cli("import", "--repair", str(outside / "web.bundle"), cwd=inside)
    assert code == 2
    assert "--repair takes the bundle being served" in out
    assert Store(inside / "store").current_view_id() is None


def test_verify_with_nothing_imported_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    code, out = cli("verify", cwd=tmp_path)
    assert code == 2 and "no store here" in out
    (tmp_path / "store" / "blobs").mkdir(parents=True)
    code, out = cli("verify", cwd=tmp_path)
    assert code == 2 and "nothing imported yet" in out and "--all" in out


def test_a_snapshot_edited_after_its_import_is_named(sites: tuple[Path, Path]) -> None:  # noqa: F811
    import json

    from mirrorctl.inside import audit

    _bundle, inside, store = _imported(sites)
    view_id = store.current_view_id()
    assert view_id is not None
    assert set(audit.recorded_view_digests(store)) == {view_id}  # the import entry recorded the snapshot
    code, out = cli("verify", cwd=inside)
    assert code == 0 and "1 snapshot(s) as their import made them" in out, out
    # Someone points an artifact of the snapshot at other bytes (a blob the store holds, so every blob verifies).
    path = store.root / "views" / view_id / "view.json"
    doc = json.loads(path.read_text())
    arts = doc["artifacts"]
    arts[0]["sha256"], arts[1]["sha256"] = arts[1]["sha256"], arts[0]["sha256"]
    arts[0]["size"], arts[1]["size"] = arts[1]["size"], arts[0]["size"]
    path.write_text(json.dumps(doc))
    code, out = cli("verify", cwd=inside)
    flat = out.replace("\n", " ")
    assert code == 1 and f"snapshot {view_id}" in flat and "changed since its import" in flat, out
    assert "1 of 1 recorded snapshots changed" in flat and "mirrorctl promote" in flat
