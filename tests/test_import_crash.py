"""Crash safety and concurrency of import, with real processes.

The import runs in a subprocess that is killed with SIGKILL at each step (``MIRRORCTL_TEST_CRASH_AT``). After
every kill the store serves exactly the old view or the new one, every served blob verifies, the bundle is
unchanged and still verifies, and importing it again succeeds (or is a no-op when it already went live).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.importer import CRASH_ENV, import_bundle
from mirrorctl.crossing.bundle.manifest import parse_manifest
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.errors import BundleRefused
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import ECOSYSTEMS, NOW, World, fingerprint, make_world, read_members, sha256_of

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = """
import sys
from pathlib import Path
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import MirrorctlError
from mirrorctl.crossing.signing import load_public_key
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import ECOSYSTEMS, NOW
try:
    r = import_bundle(Path(sys.argv[1]), Store(Path(sys.argv[2])), [load_public_key(Path(sys.argv[3]))],
                      ECOSYSTEMS, now=NOW)
except MirrorctlError as exc:
    print("refused:", exc.message)
    sys.exit(exc.exit_code)
print("noop" if r.noop else "imported", r.sequence)
"""

STEPS = ["staged", "blob-committed", "blobs-committed", "view-written", "switched", "recorded"]


def run_import(world: World, bundle: Path, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORCTL_")}
    env["PYTHONPATH"] = str(REPO)
    if crash_at:
        env[CRASH_ENV] = crash_at
    args = [sys.executable, "-c", _SCRIPT, str(bundle), str(world.inside.root), str(world.key.public_path)]
    return subprocess.Popen(
        args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def served(store: Store) -> tuple[str | None, bytes | None]:
    view_id = store.current_view_id()
    if view_id is None:
        return None, None
    return view_id, (store.root / "views" / view_id / "view.json").read_bytes()


def assert_consistent(store: Store) -> None:
    view = store.current_view()
    assert view is not None
    for a in view.artifacts:
        for sha, size, _ in a.blobs():
            assert store.verify_blob(sha, size) is None


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step(tmp_path: Path, step: str) -> None:
    world = make_world(tmp_path)
    import_bundle(world.export("old.bundle"), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    bundle = world.export("new.bundle")
    new_id = parse_manifest(read_members(bundle)[0][1]).bundle_id
    bundle_sha = sha256_of(bundle)
    old = served(world.inside)

    proc = run_import(world, bundle, crash_at=step)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (out, err)

    view = world.inside.current_view()
    assert view is not None
    went_live = STEPS.index(step) >= STEPS.index("switched")
    if went_live:
        assert view.bundle_id == new_id
    else:
        assert served(world.inside) == old  # exactly the old view, byte for byte
    assert_consistent(world.inside)
    assert sha256_of(bundle) == bundle_sha
    verify_bundle(bundle, world.trusted, NOW, ecosystems=ECOSYSTEMS)

    again = run_import(world, bundle)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, (out, err)
    assert out.split() == (["noop", "2"] if went_live else ["imported", "2"])
    view = world.inside.current_view()
    assert view is not None and view.bundle_id == new_id and view.sequence == 2
    assert_consistent(world.inside)
    assert not list((world.inside.root / "tmp").glob("import-*"))  # a killed run's staging is swept
    # And the rollback guard holds whichever step the crash hit.
    with pytest.raises(BundleRefused, match="rollback"):
        import_bundle(tmp_path / "old.bundle", world.inside, world.trusted, ECOSYSTEMS, now=NOW)


def test_kill_before_anything_was_served(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    bundle = world.export()
    proc = run_import(world, bundle, crash_at="view-written")
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert world.inside.current_view_id() is None
    assert import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW).sequence == 1


def test_concurrent_imports_are_serialized_with_a_reader_looping(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    import_bundle(world.export("1.bundle"), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    b2, b3 = world.export("2.bundle"), world.export("3.bundle")
    ids = {parse_manifest(read_members(b)[0][1]).bundle_id: n for n, b in ((2, b2), (3, b3))}

    procs = [run_import(world, b) for b in (b2, b3, b3, b2)]
    seen: set[int] = set()
    while any(p.poll() is None for p in procs):
        view = world.inside.current_view()  # a reader never sees a torn or missing view
        assert view is not None
        seen.add(view.sequence)
        assert_consistent(world.inside)
        time.sleep(0.005)
    outputs = [p.communicate()[0] for p in procs]
    codes = [p.returncode for p in procs]
    # Each imported, was a no-op, or was refused as a rollback (if 3 got in before 2): nothing else.
    for code, out in zip(codes, outputs, strict=True):
        assert (code == 0 and out.split()[0] in ("imported", "noop")) or (code == 1 and "rollback" in out), (
            out
        )
    view = world.inside.current_view()
    assert view is not None and ids[view.bundle_id] == 3 and view.sequence == 3
    assert seen <= {1, 2, 3}
    assert_consistent(world.inside)
    assert sum(out.startswith("imported 3") for out in outputs) == 1  # the second b3 found it already served
    assert fingerprint(world.inside)  # state readable
