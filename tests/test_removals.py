"""A package dropped from a profile disappears from the served view with the import that drops it."""

from __future__ import annotations

from pathlib import Path

from mirrorctl.crossing.bundle.importer import import_bundle
from tests.fixtures.bundles import ECOSYSTEMS, NOW, make_lock, make_world
from tests.fixtures.snapshots import client, project_names


async def test_dropped_package_is_gone_after_the_import_that_drops_it(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    store = world.inside
    import_bundle(world.export("1.bundle"), store, world.trusted, ECOSYSTEMS, now=NOW)
    async with client(store) as c:
        assert await project_names(c) == {"alpha", "beta", "gamma"}
        assert (await c.get("/pypi/simple/gamma/")).status_code == 200
        alpha, beta, gamma = world.artifacts
        world.locks = [make_lock("web", [alpha, beta]), make_lock("data", [beta])]  # gamma dropped from data
        import_bundle(world.export("2.bundle"), store, world.trusted, ECOSYSTEMS, now=NOW)
        # The same server, the next request: gamma is gone from the index and its page is a 404.
        assert await project_names(c) == {"alpha", "beta"}
        assert (await c.get("/pypi/simple/gamma/")).status_code == 404
        assert (await c.get("/pypi/simple/beta/")).status_code == 200
    # Nothing was deleted by the import: the blob stays until gc finds nothing retained needs it.
    assert store.has_blob(gamma.sha256, gamma.size)


async def test_a_dropped_profile_takes_its_only_packages_with_it(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    store = world.inside
    import_bundle(world.export("1.bundle"), store, world.trusted, ECOSYSTEMS, now=NOW)
    world.locks = world.locks[:1]  # only web (alpha, beta) left
    import_bundle(world.export("2.bundle"), store, world.trusted, ECOSYSTEMS, now=NOW)
    view = store.current_view()
    assert view is not None and sorted(view.profiles) == ["web"]
    async with client(store) as c:
        assert await project_names(c) == {"alpha", "beta"}
