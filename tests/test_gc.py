"""`mirrorctl gc`: removes blobs no retained snapshot needs, and only those; dry run changes nothing; channel
histories and lock files are retained; runs under the store's lock."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.errors import UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import promote, rollback, view_blobs
from mirrorctl.inside.gc import collect
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import dump_lock
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import fingerprint, make_lock
from tests.fixtures.snapshots import Snapshots, two_snapshots
from tests.fixtures.store_content import put_blob


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path)


def all_blobs(store: Store) -> set[str]:
    return {p.name for p in (store.root / "blobs").rglob("*") if p.is_file()}


def needed(store: Store, *view_ids: str) -> set[str]:
    return {sha for v in view_ids for sha in view_blobs(store, store.load_view(v))}


def test_only_unreferenced_blobs_are_removed(snaps: Snapshots) -> None:
    store = snaps.store
    orphan, size = put_blob(store, b"left over by nobody\n")
    report = collect(store)
    assert (report.blobs_removed, report.bytes_removed) == (1, size)
    assert report.snapshots_removed == () and report.snapshots_kept == (snaps.first, snaps.second)
    assert all_blobs(store) == needed(store, snaps.first, snaps.second)
    assert not store.has_blob(orphan)
    again = collect(store)
    assert again.blobs_removed == 0 and again.blobs_kept == len(all_blobs(store))
    entry = audit.last_entries(store, 1)[0]
    assert entry["event"] == "gc" and entry["blobs-removed"] == 0 and entry["result"] == "ok"


def test_dry_run_changes_nothing(snaps: Snapshots) -> None:
    store = snaps.store
    _, size = put_blob(store, b"orphan\n")
    before = fingerprint(store)
    journal = audit.journal_path(store).read_bytes()
    report = collect(store, keep=0, history_steps=0, dry_run=True)
    only_first = needed(store, snaps.first) - needed(store, snaps.second)
    assert report.dry_run and report.snapshots_removed == (snaps.first,)
    assert report.blobs_removed == len(only_first) + 1
    assert report.bytes_removed == size + sum(store.blob_path(sha).stat().st_size for sha in only_first)
    assert fingerprint(store) == before and audit.journal_path(store).read_bytes() == journal


def test_keep_removes_old_snapshots_and_then_their_blobs(snaps: Snapshots) -> None:
    store = snaps.store
    gamma = snaps.world.artifacts[2]
    # With the default history, current could roll back to the first snapshot: it and gamma stay.
    report = collect(store, keep=0)
    assert report.snapshots_removed == () and store.has_blob(gamma.sha256)
    # Rollback history cut to nothing: the first snapshot goes, and with it what only it needed.
    only_first = needed(store, snaps.first) - needed(store, snaps.second)
    assert gamma.sha256 in only_first
    report = collect(store, keep=0, history_steps=0)
    assert report.snapshots_removed == (snaps.first,) and store.view_ids() == [snaps.second]
    assert report.blobs_removed == len(only_first)
    assert all_blobs(store) == needed(store, snaps.second)
    view = store.current_view()
    assert view is not None
    assert all(store.verify_blob(sha, size) is None for a in view.artifacts for sha, size, _ in a.blobs())
    with pytest.raises(UserError, match="no earlier snapshot"):
        rollback(store, "current", SILENT)


def test_channel_history_is_retained(snaps: Snapshots) -> None:
    store = snaps.store
    gamma = snaps.world.artifacts[2]
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "prod", SILENT)
    collect(store, keep=0, history_steps=None)
    # prod could roll back to the first snapshot: it is kept, with every blob it needs.
    assert snaps.first in store.view_ids() and store.has_blob(gamma.sha256, gamma.size)
    assert rollback(store, "prod", SILENT).view_id == snaps.first
    # Now prod points at it (and current's history is cut): still retained.
    report = collect(store, keep=0, history_steps=0)
    assert report.snapshots_removed == () and store.has_blob(gamma.sha256, gamma.size)


def test_blobs_named_by_lock_files_are_kept(snaps: Snapshots, tmp_path: Path) -> None:
    store = snaps.store
    sha, size = put_blob(store, b"fetched outside for the next bundle\n")
    from mirrorctl.lockfile import Artifact

    art = Artifact("pypi", "delta", "1.0", "delta-1.0-py3-none-any.whl", size, sha, (), {"kind": "wheel"})
    lock_path = tmp_path / "profiles" / "next.lock"
    lock_path.parent.mkdir()
    lock_path.write_text(dump_lock(make_lock("next", [art])[1], source="profiles/next.toml"))
    assert collect(store, lock_files=[lock_path]).blobs_removed == 0 and store.has_blob(sha)
    # Through the CLI, the profiles folder's locks are honoured without naming them.
    config = f'[store]\npath = "inside"\n[profiles]\ndir = "{lock_path.parent}"\n'
    (snaps.world.root / "mirrorctl.toml").write_text(config)
    code, out = _cli(snaps.world.root, "gc")
    assert code == 0 and "removed 0 snapshot(s) and 0 blob(s)" in out and "1 lock file(s) honoured" in out, out
    assert store.has_blob(sha)
    lock_path.write_text("not a lock")
    before = fingerprint(store)
    code, out = _cli(snaps.world.root, "gc")
    assert code != 0 and str(lock_path) in out and fingerprint(store) == before


def test_gc_waits_for_the_store_lock(snaps: Snapshots) -> None:
    store = snaps.store
    orphan, _ = put_blob(store, b"staged by an import that holds the lock\n")
    finished = threading.Event()

    def run() -> None:
        collect(store)
        finished.set()

    with store.exclusive():
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.5)
        assert not finished.is_set() and store.has_blob(orphan)  # gc waits while an import holds the lock
    worker.join(timeout=30)
    assert finished.is_set() and not store.has_blob(orphan)


def test_cli_reports_counts_and_bytes(snaps: Snapshots) -> None:
    root = snaps.world.root
    _, size = put_blob(snaps.store, b"x" * 3000)
    before = fingerprint(snaps.store)
    code, out = _cli(root, "gc", "--dry-run")
    assert code == 0 and f"would remove 0 snapshot(s) and 1 blob(s) ({size} bytes, 3.0 kB)" in out, out
    assert fingerprint(snaps.store) == before
    code, out = _cli(root, "gc")
    assert code == 0 and "removed 0 snapshot(s) and 1 blob(s)" in out
    code, out = _cli(root, "gc", "--keep-history", "1")
    assert code == 2 and "--keep-history goes with --keep" in out
    result = CliRunner().invoke(app, ["gc", "--help"])
    assert result.exit_code == 0 and "Example: mirrorctl gc" in result.output


def _cli(root: Path, *args: str) -> tuple[int, str]:
    if not (root / "mirrorctl.toml").exists():
        (root / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output.replace("\n", " ")


async def test_snapshot_holds_the_store_lock_shared_so_gc_waits_for_fetched_blobs(tmp_path: Path) -> None:
    """A blob a snapshot has just fetched is named by no lock file until the snapshot ends: gc must wait."""
    import httpx

    from mirrorctl.config import Settings, Upstream
    from mirrorctl.errors import NetworkError
    from mirrorctl.lockfile import Artifact
    from mirrorctl.outside.snapshot import snapshot

    store = Store(tmp_path / "store")
    seen: list[str] = []

    class Probe:  # an ecosystem whose fetch plan looks at the store lock while the snapshot runs
        name = "probe"

        async def fetch_plan(self, artifacts: object, ctx: object) -> list[object]:
            try:
                with store.exclusive(wait=False):  # what gc takes
                    seen.append("gc could run")
            except UserError as exc:
                seen.append(exc.message)
            with store.shared():
                seen.append("another snapshot can run")
            return []

    art = Artifact("probe", "thing", "1.0", "thing-1.0.bin", 3, "ab" * 32)
    settings = Settings(None, store.root, tmp_path / "profiles", upstreams={"probe": Upstream("probe", "http://x.test")})
    name, lock, _ = make_lock("web", [art])
    async with httpx.AsyncClient() as client:
        with pytest.raises(NetworkError, match=r"thing-1\.0\.bin"):  # fetched nothing: the missing file is named
            await snapshot([(name, lock)], {"probe": Probe()}, settings, store, client, SILENT)  # type: ignore[dict-item]
    assert seen[0].endswith("another mirrorctl process is changing this store"), seen
    assert seen[1] == "another snapshot can run"
    with store.exclusive(wait=False):  # released when the snapshot ends, failed or not
        pass
