"""`mirrorctl snapshots list|show|prune`: the served snapshots, addressed by id or unique prefix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.inside.channels import promote
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import fingerprint
from tests.fixtures.snapshots import Snapshots, two_snapshots


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path)


def cli(root: Path, *args: str) -> tuple[int, str]:
    (root / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def test_list_shows_every_snapshot_with_its_channels(snaps: Snapshots) -> None:
    promote(snaps.store, snaps.first, "prod", SILENT)
    code, out = cli(snaps.world.root, "snapshots", "list")
    assert code == 0, out
    lines = out.splitlines()
    # A size column (issue 13 item 10): sequence, profiles, artifacts, size, channels after the bundle id.
    assert lines[0].split() == ["id", "created", "bundle", "sequence", "profiles", "artifacts", "size", "channels"]
    first, second = lines[1], lines[2]
    assert first.startswith(snaps.first) and first.split()[3:6] == ["1", "data,web", "3"]
    assert first.endswith("prod, current (rollback)")  # prod points at it; current could roll back to it
    assert second.startswith(snaps.second) and second.split()[3:6] == ["2", "data,web", "2"]
    assert second.endswith(" current")
    code, out = cli(snaps.world.root, "snapshots", "list", "--json")
    doc = json.loads(out)
    assert [d["id"] for d in doc] == [snaps.first, snaps.second]
    assert doc[0]["channels"] == ["prod"] and doc[0]["rollback-for"] == ["current"]
    assert doc[1]["artifacts"] == 2 and doc[1]["profiles"] == ["data", "web"]


def test_show_by_unique_prefix(snaps: Snapshots) -> None:
    code, out = cli(snaps.world.root, "snapshots", "show", snaps.second[:23])
    assert code == 0, out
    assert f"snapshot  {snaps.second}" in out and "sequence 2" in out and "channels  current" in out
    assert "artifacts pypi: 2" in out and "blobs     all present" in out
    assert "pypi gamma" not in out and "pypi alpha 1.0" in out


def test_show_names_missing_blobs(snaps: Snapshots) -> None:
    gamma = snaps.world.artifacts[2]
    snaps.store.blob_path(gamma.sha256).unlink()
    code, out = cli(snaps.world.root, "snapshots", "show", snaps.first)
    assert code == 0 and "1 MISSING" in out and gamma.filename in out


def test_show_refusals(snaps: Snapshots) -> None:
    before = fingerprint(snaps.store)
    code, out = cli(snaps.world.root, "snapshots", "show", "2")
    assert code == 2 and "is ambiguous" in out and snaps.first in out and snaps.second in out
    code, out = cli(snaps.world.root, "snapshots", "show", "nosuch")
    assert code == 2 and "no snapshot 'nosuch'" in out
    code, out = cli(snaps.world.root, "snapshots", "show", "../views")
    assert code == 2 and "not a snapshot id" in out
    assert fingerprint(snaps.store) == before


def test_prune_keeps_what_channels_need(snaps: Snapshots) -> None:
    root = snaps.world.root
    store = snaps.store
    code, out = cli(root, "snapshots", "prune", "--keep", "0", "--dry-run")
    # The first snapshot is current's rollback target: retained even with --keep 0.
    assert code == 0 and "would remove 0 snapshot(s); kept 2" in out, out
    third = snaps.world.export("3.bundle")
    from mirrorctl.crossing.bundle.importer import import_bundle
    from tests.fixtures.bundles import ECOSYSTEMS, NOW

    import_bundle(third, store, snaps.world.trusted, ECOSYSTEMS, now=NOW)
    # current's history: first, second; a gc that keeps one history step lets the first go.
    code, out = cli(root, "gc", "--keep", "0", "--keep-history", "1", "--dry-run")
    assert code == 0 and "would remove 1 snapshot(s)" in out and snaps.first in out, out
    assert snaps.first in store.view_ids()
    code, out = cli(root, "snapshots", "prune", "--keep", "1")
    assert code == 0 and "removed 0 snapshot(s)" in out  # without --keep-history all three are retained


def test_help_says_it_is_not_the_fetch_command() -> None:
    result = CliRunner().invoke(app, ["snapshots", "--help"])
    assert result.exit_code == 0 and "Not the same as `mirrorctl snapshot` (singular)" in result.output
    for sub in ("list", "show", "prune"):
        result = CliRunner().invoke(app, ["snapshots", sub, "--help"])
        assert result.exit_code == 0 and "Example: mirrorctl snapshots" in result.output, sub
    result = CliRunner().invoke(app, ["snapshot", "--help"])  # the fetch command is still there
    assert result.exit_code == 0 and "Download every artifact" in result.output
