"""Issue #6 for every ecosystem: the update cycle with PyPI, npm and apt artifacts in one profile, through the CLI
(bundle export, --since, import, state export, promote, rollback, gc, diff) and the real served views (the ASGI
app of `mirrorctl serve`: npm packuments and tarballs, apt Packages, signed InRelease and pool, the PyPI index).

The cycle: a full bundle (mctl-left 1.0.0 and mctl-dropnpm on npm, mctl-libbase 3.0-2 and mctl-dropdeb on apt,
mctl-alpha on PyPI) imported into channel prod; one npm and one apt package bumped (a delta); then the two drop
packages taken out of the profile (another delta).
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirrorctl.crossing.bundle.manifest import parse_manifest
from mirrorctl.inside.channels import view_blobs
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from tests.fixtures.bundles import read_members
from tests.fixtures.mixed_bundles import (
    APT_BASE_NEW,
    APT_BASE_OLD,
    APT_DROP,
    BUMPED,
    DROPPED,
    FULL,
    NPM_DROP,
    NPM_LEFT_NEW,
    NPM_LEFT_OLD,
    PYPI_ALPHA,
    SUITE,
    MixedWorld,
    apt_packages,
    mirror,
    mixed_world,
    npm_versions,
    pypi_projects,
)

OLD_APT = {("mctl-libbase", "3.0-2"), ("mctl-dropdeb", "1.0-1")}
NEW_APT = {("mctl-libbase", "1:3.1-1"), ("mctl-dropdeb", "1.0-1")}
DROPPED_APT = {("mctl-libbase", "1:3.1-1")}


@dataclass
class Cycle:
    w: MixedWorld
    full: Path
    snapshots: list[str]  # oldest first: full, bumped, dropped (as far as the test went)
    deltas: list[Path]

    @property
    def store(self) -> Store:
        return self.w.inside


def _blob_members(bundle: Path) -> set[str]:
    with tarfile.open(bundle, "r:") as tar:
        return {n.removeprefix("blobs/sha256/") for n in tar.getnames() if n.startswith("blobs/")}


def _full(tmp_path: Path) -> Cycle:
    w = mixed_world(tmp_path)
    w.set_profile(FULL)
    full = tmp_path / "full.bundle"
    out = w.cli("outside", "bundle", "export", "--out", str(full))
    assert "full bundle" in out and "5 artifacts" in out, out
    # Both named: since issue 13 item 1 an import with --channel moves only the channels it names, and the
    # plain layout these tests serve is current's.
    w.cli("inside", "import", str(full), "--channel", "current", "--channel", "prod", "--create")
    view = w.inside.current_view_id()
    assert view is not None and w.inside.channel_view_id("prod") == view
    return Cycle(w, full, [view], [])


def _delta(c: Cycle, keys: tuple[str, ...]) -> Path:
    """state export inside, the profile changed outside, bundle export --since, import inside."""
    n = len(c.deltas) + 1
    state = c.w.root / f"inside-{n}.state"
    c.w.cli("inside", "state", "export", "--out", str(state))
    c.w.set_profile(keys)
    delta = c.w.root / f"delta-{n}.bundle"
    out = c.w.cli("outside", "bundle", "export", "--since", str(state), "--out", str(delta))
    assert "delta bundle" in out, out
    c.deltas.append(delta)
    return delta


def _import(c: Cycle, bundle: Path) -> str:
    c.w.cli("inside", "import", str(bundle))
    view = c.store.current_view_id()
    assert view is not None and view not in c.snapshots
    c.snapshots.append(view)
    return view


async def _fetch_sha(client: httpx.AsyncClient, path: str) -> tuple[int, str]:
    r = await client.get(path)
    return r.status_code, hashlib.sha256(r.content).hexdigest()


def _tarball(a: Artifact) -> str:
    return f"/npm/{a.name}/-/{a.filename}"


def _pool(a: Artifact) -> str:
    return f"/apt/{a.attrs['pool']}"


# --- 1. full, then a delta carrying only the bumped npm and apt packages --------------------------------------
async def test_full_then_delta_carries_only_the_new_npm_and_apt_blobs_and_serves_them(tmp_path: Path) -> None:
    c = _full(tmp_path)
    w, store = c.w, c.store
    async with mirror(store) as m:
        assert await npm_versions(m, "mctl-left") == {"1.0.0"}
        assert await apt_packages(m) == OLD_APT
        assert await pypi_projects(m) == {"mctl-alpha"}

        delta = _delta(c, BUMPED)
        new_blobs = w.blobs(NPM_LEFT_NEW, APT_BASE_NEW)
        assert len(new_blobs) == 2
        # Exactly the new npm tarball and the new .deb travel: no PyPI wheel, nothing the inside holds.
        assert _blob_members(delta) == new_blobs
        manifest = parse_manifest(read_members(delta)[0][1])
        assert manifest.kind == "delta" and manifest.sequence == 2
        carried = {f.sha256 for f in manifest.files if f.path.startswith("blobs/")}
        assert carried == new_blobs

        _import(c, delta)
        # The same server, the next request: the bumped versions are served, the old ones are not.
        assert await npm_versions(m, "mctl-left") == {"1.1.0"}
        doc = (await m.get("/npm/mctl-left", headers={"Accept": "application/json"})).json()
        assert doc["dist-tags"]["latest"] == "1.1.0"
        assert await npm_versions(m, "mctl-dropnpm") == {"1.0.0"}
        assert await apt_packages(m) == NEW_APT
        assert await pypi_projects(m) == {"mctl-alpha"}
        for path, art in ((_tarball(w.arts[NPM_LEFT_NEW]), w.arts[NPM_LEFT_NEW]),
                          (_pool(w.arts[APT_BASE_NEW]), w.arts[APT_BASE_NEW])):
            assert await _fetch_sha(m, path) == (200, art.sha256), path
        assert (await m.get(_tarball(w.arts[NPM_LEFT_OLD]))).status_code == 404
        assert (await m.get(_pool(w.arts[APT_BASE_OLD]))).status_code == 404
        wheel = w.arts[PYPI_ALPHA]
        page = await m.get("/pypi/simple/mctl-alpha/")
        assert page.status_code == 200 and wheel.filename in page.text

    # Review, inside: the full bundle against the delta (its locks rebuilt from the inside's copies).
    out = w.cli("inside", "diff", str(c.full), str(delta))
    assert "npm: 0 added, 0 removed, 1 upgraded, 0 downgraded, 0 changed, 1 unchanged" in out, out
    assert "apt: 0 added, 0 removed, 1 upgraded, 0 downgraded, 0 changed, 1 unchanged" in out, out
    assert "pypi: 0 added, 0 removed, 0 upgraded, 0 downgraded, 0 changed, 1 unchanged" in out, out
    assert "  ^ mctl-libbase 3.0-2 -> 1:3.1-1 (1 file, " in out and "  ^ mctl-left 1.0.0 -> 1.1.0 (1 file, " in out


async def test_inrelease_of_the_delta_view_verifies_with_the_served_keyring(tmp_path: Path) -> None:
    c = _full(tmp_path)
    _import(c, _delta(c, BUMPED))
    async with mirror(c.store) as m:
        keyring = (await m.get("/apt/archive-keyring.gpg")).content
        inrelease = (await m.get(f"/apt/dists/{SUITE}/InRelease")).content
        packages = await apt_packages(m)  # also checks InRelease names the served Packages' digest
    assert packages == NEW_APT
    keyring_path = tmp_path / "keyring.gpg"
    keyring_path.write_bytes(keyring)
    assert _gpgv(keyring_path, tmp_path / "InRelease", inrelease) == 0
    assert _gpgv(keyring_path, tmp_path / "InRelease", inrelease.replace(b"main", b"mAin")) != 0  # it can fail


def _gpgv(keyring: Path, path: Path, data: bytes) -> int:
    path.write_bytes(data)
    done = subprocess.run(["gpgv", "--keyring", str(keyring), str(path)], capture_output=True, timeout=60, check=False)
    return done.returncode


# --- 2. removals ----------------------------------------------------------------------------------------------
async def test_dropped_npm_and_apt_packages_leave_the_served_view_with_the_import_that_drops_it(
    tmp_path: Path,
) -> None:
    c = _full(tmp_path)
    w, store = c.w, c.store
    _import(c, _delta(c, BUMPED))
    async with mirror(store) as m:
        assert await npm_versions(m, "mctl-dropnpm") == {"1.0.0"}
        assert ("mctl-dropdeb", "1.0-1") in await apt_packages(m)
        assert (await m.get(_tarball(w.arts[NPM_DROP]))).status_code == 200
        assert (await m.get(_pool(w.arts[APT_DROP]))).status_code == 200

        delta = _delta(c, DROPPED)
        assert _blob_members(delta) == set()  # nothing new to carry: only metadata
        _import(c, delta)
        assert await npm_versions(m, "mctl-dropnpm") is None
        assert (await m.get(_tarball(w.arts[NPM_DROP]))).status_code == 404
        assert await apt_packages(m) == DROPPED_APT
        assert (await m.get(_pool(w.arts[APT_DROP]))).status_code == 404
        # What stays is still served.
        assert await npm_versions(m, "mctl-left") == {"1.1.0"}
        assert await pypi_projects(m) == {"mctl-alpha"}
    # The import deletes nothing: the blobs wait for gc.
    assert all(store.has_blob(sha) for sha in w.blobs(NPM_DROP, APT_DROP))
    out = w.cli("inside", "diff", str(c.deltas[0]), str(delta))
    assert "  - mctl-dropnpm 1.0.0 (1 file, -" in out and "  - mctl-dropdeb 1.0-1 (1 file, -" in out, out


# --- 3. channels: promote and rollback switch what the npm and apt endpoints serve -----------------------------
async def test_promote_and_rollback_switch_the_npm_and_apt_endpoints(tmp_path: Path) -> None:
    c = _full(tmp_path)
    w, store = c.w, c.store
    _import(c, _delta(c, BUMPED))
    _import(c, _delta(c, DROPPED))
    first, bumped, dropped = c.snapshots
    assert store.channel_view_id("prod") == first  # import --channel prod pointed it at the full bundle only
    async with mirror(store, ["prod"]) as m:  # `mirrorctl serve --channel prod`
        assert await npm_versions(m, "mctl-left") == {"1.0.0"}
        assert await apt_packages(m) == OLD_APT
        w.cli("inside", "promote", bumped, "--channel", "prod")
        assert await npm_versions(m, "mctl-left") == {"1.1.0"}
        assert await apt_packages(m) == NEW_APT
        assert await _fetch_sha(m, _pool(w.arts[APT_BASE_NEW])) == (200, w.arts[APT_BASE_NEW].sha256)
        w.cli("inside", "promote", dropped, "--channel", "prod")
        assert await npm_versions(m, "mctl-dropnpm") is None and await apt_packages(m) == DROPPED_APT
        w.cli("inside", "rollback", "--channel", "prod")
        assert await npm_versions(m, "mctl-dropnpm") == {"1.0.0"} and await apt_packages(m) == NEW_APT
        w.cli("inside", "rollback", "--channel", "prod")
        assert await npm_versions(m, "mctl-left") == {"1.0.0"}
        assert await apt_packages(m) == OLD_APT
        assert await _fetch_sha(m, _tarball(w.arts[NPM_LEFT_OLD])) == (200, w.arts[NPM_LEFT_OLD].sha256)
        assert await pypi_projects(m) == {"mctl-alpha"}

    # Several channels at once, each under its name, each switching on its own.
    w.cli("inside", "promote", bumped, "--channel", "dev", "--create")
    w.cli("inside", "promote", dropped, "--channel", "dev")
    async with mirror(store, ["dev", "prod"]) as m:
        assert await npm_versions(m, "mctl-left", "/prod") == {"1.0.0"}
        assert await npm_versions(m, "mctl-left", "/dev") == {"1.1.0"}
        assert await apt_packages(m, "/prod") == OLD_APT
        assert await apt_packages(m, "/dev") == DROPPED_APT
        assert await npm_versions(m, "mctl-dropnpm", "/dev") is None
        w.cli("inside", "rollback", "--channel", "dev")
        assert await npm_versions(m, "mctl-dropnpm", "/dev") == {"1.0.0"}
        assert await apt_packages(m, "/dev") == NEW_APT
        assert await apt_packages(m, "/prod") == OLD_APT  # prod did not move


# --- 4. gc: dropped npm and apt blobs go once no retained snapshot needs them, and nothing else ------------------
def _stored(store: Store) -> set[str]:
    return {p.name for p in (store.root / "blobs").rglob("*") if p.is_file()}


def test_gc_removes_exactly_the_unreferenced_npm_and_apt_blobs(tmp_path: Path) -> None:
    c = _full(tmp_path)
    w, store = c.w, c.store
    _import(c, _delta(c, BUMPED))
    _import(c, _delta(c, DROPPED))
    first, bumped, dropped = c.snapshots
    w.cli("inside", "promote", dropped, "--channel", "prod")
    every_artifact = w.blobs(*w.arts)
    assert every_artifact <= _stored(store)

    # Every snapshot is retained by default: nothing goes, although the drop packages are no longer served.
    before = _stored(store)
    w.cli("inside", "gc")
    assert _stored(store) == before

    # Keep the two newest: only the full bundle's snapshot goes, and with it the versions only it served.
    first_needs = _needed(store, first)
    w.cli("inside", "gc", "--keep", "2", "--keep-history", "0")
    assert store.view_ids() == [bumped, dropped]
    gone = before - _stored(store)
    assert gone & every_artifact == w.blobs(NPM_LEFT_OLD, APT_BASE_OLD)
    assert store.has_blob(w.arts[NPM_DROP].sha256) and store.has_blob(w.arts[APT_DROP].sha256)  # bumped needs them
    assert gone == first_needs - _needed(store, bumped, dropped)  # its lock/SBOM copies too, nothing else

    # Keep one: the dropped npm and apt packages go now, exactly those artifacts.
    before = _stored(store)
    w.cli("inside", "gc", "--keep", "1", "--keep-history", "0")
    assert store.view_ids() == [dropped]
    gone = before - _stored(store)
    assert gone & every_artifact == w.blobs(NPM_DROP, APT_DROP)
    assert _needed(store, dropped) <= _stored(store)
    assert w.blobs(PYPI_ALPHA, NPM_LEFT_NEW, APT_BASE_NEW) <= _stored(store)


def _needed(store: Store, *view_ids: str) -> set[str]:
    return {sha for v in view_ids for sha in view_blobs(store, store.load_view(v))}

