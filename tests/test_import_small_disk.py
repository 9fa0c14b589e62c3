"""Import onto a really small file system (a 1 MiB tmpfs): a clean error, staging removed, the mirror
unchanged; both when the free-space check catches it and when the disk fills up during staging."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle import importer as importer_mod
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import UserError
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import DEFAULT_DISTS, ECOSYSTEMS, NOW, World, fingerprint, make_lock, make_world
from tests.fixtures.wheels import Dist


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        cmd = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.fixture
def world(tmp_path: Path, small_fs: Path) -> World:
    big = Dist("big", "1.0", files={"big/data.txt": os.urandom(900_000).hex()})  # ~1 MB compressed
    w = make_world(tmp_path / "w", dists=(*DEFAULT_DISTS, big))
    w.inside = Store(small_fs / "store")
    w.locks = [make_lock("web", w.artifacts[:3])]
    import_bundle(w.export("small.bundle"), w.inside, w.trusted, ECOSYSTEMS, now=NOW)
    w.locks = [make_lock("web", w.artifacts)]
    return w


def _refused(world: World, match: str) -> None:
    bundle = world.export("big.bundle")
    before = fingerprint(world.inside)
    with pytest.raises(UserError, match=match) as info:
        import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert "nothing was changed" in info.value.message
    assert fingerprint(world.inside) == before
    assert not list((world.inside.root / "tmp").glob("import-*"))


def test_free_space_check_refuses_before_staging(world: World) -> None:
    _refused(world, "not enough free space to import")


def test_disk_filling_up_during_staging(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(importer_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=10**12))
    _refused(world, "cannot stage the bundle .No space left on device")
