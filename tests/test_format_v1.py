"""Formats stay readable across versions: what the previous release wrote (tests/golden/v1, frozen) is read here.

* a lock-version 1 lock is read (paths derived by the adapters); ``lock --check`` calls it out of date and names
  the format; a plain ``lock`` rewrites it as lock-version 2 without a request, then keeps it byte for byte;
* a format-version 1 bundle verifies, imports and is served (npm tarballs at their scoped paths);
* an inside store as the previous release left it (its view.json without paths) is served and verified, and a
  delta exported by this version ``--since`` its state file (the old release's, or this one's) imports into it.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.bundle.export import export_bundle
from mirrorctl.crossing.bundle.state import read_state
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import ProfileError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Lock, dump_lock, parse_lock, read_lock
from tests.fixtures.mixed_bundles import mirror

from .fixtures.npm_registry import PkgSpec
from .fixtures.npm_store import npm_artifact

V1 = Path(__file__).parent / "golden" / "v1"
ECOS = load_ecosystems()
DEAD = "http://127.0.0.1:9/"  # nothing listens: a lock that made a request would fail
V1_PATHS = {
    "@acme/core/-/core-1.0.0.tgz",
    "mctl-left/-/mctl-left-1.0.0.tgz",
    "mctl-alpha/mctl_alpha-1.0-py3-none-any.whl",
}


def cli(config: Path, *args: str, code: int = 0) -> str:
    done = CliRunner().invoke(app, ["--config", str(config), *args])
    assert done.exit_code == code, f"mirrorctl {' '.join(args)} -> {done.exit_code}\n{done.output}"
    return done.output


def outside(tmp_path: Path) -> Path:
    root = tmp_path / "outside"
    shutil.copytree(V1 / "profiles", root / "profiles")
    (root / "keys").mkdir()
    shutil.copy(V1 / "v1.key", root / "keys" / "v1.key")
    config = root / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "store"\n\n[signing]\nkey = "keys/v1.key"\n\n'
        f'[upstreams.pypi]\nurl = "{DEAD}simple/"\n\n[upstreams.npm]\nurl = "{DEAD}"\n'
    )
    return config


def inside(tmp_path: Path, *, old_store: bool = False) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(V1 / "v1.pub", root / "v1.pub")
    if old_store:
        with tarfile.open(V1 / "inside-v1.tar.gz") as tar:
            tar.extractall(root, filter="tar")
    config = root / "mirrorctl.toml"
    config.write_text('[store]\npath = "s"\n\n[trust]\nkeys = ["v1.pub"]\n')
    return config


def test_the_v1_lock_is_read_with_paths_from_the_adapters() -> None:
    lock = read_lock(V1 / "profiles" / "team.lock", legacy_paths=ECOS)
    assert lock.version == 1
    assert {a.path for a in lock.artifacts} == V1_PATHS
    scoped = next(a for a in lock.artifacts if a.name == "@acme/core")
    assert scoped.filename == "core-1.0.0.tgz" and scoped.attrs["shasum"]


def test_a_v1_record_read_without_the_adapters_is_refused_naming_it() -> None:
    # Only the adapters know a v1 artifact's path; a reader not given them says so instead of guessing one.
    with pytest.raises(ProfileError, match=r"team\.lock: artifacts\[0\]: is a record of lock-version 1"):
        read_lock(V1 / "profiles" / "team.lock")


def test_lock_check_calls_a_v1_lock_stale_and_lock_rewrites_it_as_v2_without_a_request(tmp_path: Path) -> None:
    config = outside(tmp_path)
    lock_file = config.parent / "profiles" / "team.lock"
    old = lock_file.read_bytes()
    out = cli(config, "lock", "--check", code=1)
    assert "team.lock: is lock-version 1 (before artifact paths); run `mirrorctl lock`" in out, out
    assert "changed since the lock was made" not in out  # the content is current: only the format is old
    assert lock_file.read_bytes() == old  # --check changes nothing

    cli(config, "lock")  # the upstreams are dead: this resolves nothing
    new = lock_file.read_bytes()
    assert new != old and b"lock-version = 2" in new and b"filename" not in new
    v1, v2 = parse_lock(old.decode(), "old", legacy_paths=ECOS), parse_lock(new.decode(), "new")
    assert v2.version == 2 and v2.inputs == v1.inputs and v2.targets == v1.targets
    assert sorted(v2.artifacts, key=lambda a: a.path) == sorted(v1.artifacts, key=lambda a: a.path)
    assert 'path = "@acme/core/-/core-1.0.0.tgz"' in new.decode()

    cli(config, "lock", "--check")
    cli(config, "lock")
    assert lock_file.read_bytes() == new  # deterministic: a current v2 lock is kept as it is


async def _served(store: Store, lock: Lock) -> None:
    """Every npm tarball at its scoped path with the locked bytes, and the PyPI project with its file."""
    async with mirror(store) as c:
        for a in lock.artifacts:
            if a.ecosystem == "npm":
                r = await c.get(f"/npm/{a.name}", headers={"Accept": "application/json"})
                assert r.status_code == 200, r.text
                url = r.json()["versions"][a.version]["dist"]["tarball"]
                assert url == f"http://mirror.test/npm/{a.path}"
                tgz = await c.get(url)
                assert tgz.status_code == 200 and hashlib.sha256(tgz.content).hexdigest() == a.sha256
            else:
                r = await c.get(f"/pypi/simple/{a.name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
                assert r.status_code == 200, r.text
                [f] = r.json()["files"]
                assert f["filename"] == a.filename and f["hashes"]["sha256"] == a.sha256
                got = await c.get(httpx.URL(str(r.url)).join(f["url"]))
                assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == a.sha256


def test_a_format_1_bundle_verifies_imports_and_is_served(tmp_path: Path) -> None:
    config = inside(tmp_path)
    out = cli(config, "bundle", "verify", str(V1 / "team-v1.bundle"))
    assert f"OK {V1 / 'team-v1.bundle'}" in out and "artifacts  3 in 6 files" in out, out
    cli(config, "import", str(V1 / "team-v1.bundle"))
    store = Store(config.parent / "s", adapters=lambda: ECOS)
    view = store.current_view()
    assert view is not None and {a.path for a in view.artifacts} == V1_PATHS
    assert b'"path"' in (store.root / "views" / view.view_id / "view.json").read_bytes()
    asyncio.run(_served(store, read_lock(V1 / "profiles" / "team.lock", legacy_paths=ECOS)))
    cli(config, "verify")


def test_the_previous_release_inside_is_served_and_verified(tmp_path: Path) -> None:
    config = inside(tmp_path, old_store=True)
    store = Store(config.parent / "s", adapters=lambda: ECOS)
    view = store.current_view()
    assert view is not None and {a.path for a in view.artifacts} == V1_PATHS
    view_json = store.root / "views" / view.view_id / "view.json"
    assert b'"filename"' in view_json.read_bytes() and b'"path"' not in view_json.read_bytes()
    asyncio.run(_served(store, read_lock(V1 / "profiles" / "team.lock", legacy_paths=ECOS)))
    cli(config, "verify")  # the snapshot's recorded digest still matches: the old view.json is read, not rewritten
    assert b'"path"' not in view_json.read_bytes()


@pytest.mark.parametrize("state_by", ["previous release", "this version"])
def test_a_delta_since_a_v1_inside_adds_the_unscoped_twin(tmp_path: Path, state_by: str) -> None:
    config = inside(tmp_path, old_store=True)
    store = Store(config.parent / "s", adapters=lambda: ECOS)
    state_file = V1 / "inside-v1.state"
    if state_by == "this version":
        state_file = tmp_path / "inside.state"
        cli(config, "state", "export", "--out", str(state_file))
    since = read_state(state_file)

    # Outside, this version: the same profile's lock as v2, plus `core@1.0.0` beside `@acme/core@1.0.0`.
    outside_store = Store(tmp_path / "outside-store")
    twin = npm_artifact(outside_store, PkgSpec("core", "1.0.0", description="plain core"))
    old = read_lock(V1 / "profiles" / "team.lock", legacy_paths=ECOS)
    lock = Lock(old.profile, old.inputs, old.targets, (*old.artifacts, twin))
    data = dump_lock(lock, source="profiles/team.toml").encode()
    out = tmp_path / "delta.bundle"
    report = export_bundle([("team", lock, data)], outside_store, V1 / "v1.key", out, since=since,
                           now=datetime.now(UTC), ecosystems=ECOS)  # fmt: skip
    assert report.kind == "delta" and report.blobs == 1 and report.expected_blobs == 4

    cli(config, "import", str(out))
    view = store.current_view()
    assert view is not None and {a.path for a in view.artifacts} == V1_PATHS | {"core/-/core-1.0.0.tgz"}
    asyncio.run(_served(store, lock))
    cli(config, "verify")
    cli(config, "state", "export", "--out", str(tmp_path / "after.state"))
