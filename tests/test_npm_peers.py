"""npm peers placed as @npmcli/arborist places them, the lock recording why each package is there, the served
``latest`` the highest version a profile asked for, and optional builds kept only for the libc the platforms name
(issue 13 items 7 and 11), against the fixture registry."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.inside.serve import create_app
from mirrorctl.inside.store import Store
from mirrorctl.targets.pulp.files import layout_files
from tests.fixtures.npm_registry import (  # noqa: F401  (fixtures used by name)
    FixtureNpmRegistry,
    PkgSpec,
    npm_registry_fixture,
)
from tests.fixtures.store_content import publish_view
from tests.test_npm_lock import closure, lock, resolve

X64, MUSL = "linux-x64", "linux-x64-musl"


def lint_world(reg: FixtureNpmRegistry) -> None:
    """A linter with three majors (the upstream's latest the newest), a plugin whose peer range every major
    satisfies, one that wants the oldest major, and a config package reaching the plugin as a dependency."""
    for version in ("8.57.0", "9.5.0", "10.1.0"):
        reg.add(PkgSpec("mctl-lint", version, dependencies={"mctl-lint-core": f"^{version.split('.')[0]}"}))
    for version in ("8.0.0", "9.0.0", "10.0.0"):
        reg.add(PkgSpec("mctl-lint-core", version))
    reg.add(PkgSpec("mctl-lint-plugin", "1.2.0", peer_dependencies={"mctl-lint": ">=8"}))
    reg.add(PkgSpec("mctl-lint-config", "2.0.0", dependencies={"mctl-lint-plugin": "^1"}))
    reg.add(PkgSpec("mctl-lint-legacy", "0.3.0", peer_dependencies={"mctl-lint": "^8"}))


PROFILE = """\
[npm]
packages = ["mctl-lint@^9", "mctl-lint-config@^2"]
platforms = ["linux-x64"]
"""


async def test_peer_reuses_the_version_the_root_chose(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    lint_world(npm_registry)
    arts, text = await lock(tmp_path, npm_registry.url, PROFILE)
    versions = {(a.name, a.version) for a in arts}
    # npm: the plugin's peer >=8 is already met by the root's 9.5.0 (an edge that is valid is not resolved
    # again), so no 10.x is installed, and so none is mirrored.
    assert versions == {
        ("mctl-lint", "9.5.0"),
        ("mctl-lint-core", "9.0.0"),
        ("mctl-lint-plugin", "1.2.0"),
        ("mctl-lint-config", "2.0.0"),
    }, versions
    by = {(a.name, a.version): a.attrs for a in arts}
    assert by[("mctl-lint", "9.5.0")]["roots"] == "mctl-lint@^9"
    assert by[("mctl-lint", "9.5.0")]["required-by"] == "mctl-lint-plugin@1.2.0"
    assert by[("mctl-lint-core", "9.0.0")]["required-by"] == "mctl-lint@9.5.0"
    assert "roots" not in by[("mctl-lint-core", "9.0.0")]
    assert by[("mctl-lint-plugin", "1.2.0")]["required-by"] == "mctl-lint-config@2.0.0"
    assert by[("mctl-lint-config", "2.0.0")]["roots"] == "mctl-lint-config@^2"
    assert "required-by" not in by[("mctl-lint-config", "2.0.0")]
    # Deterministic and readable: one line per attr, the same bytes when locked again.
    assert 'roots = "mctl-lint@^9"' in text and 'required-by = "mctl-lint-plugin@1.2.0"' in text
    _, text2 = await lock(tmp_path, npm_registry.url, PROFILE)
    assert text2 == text


async def test_served_latest_is_the_highest_version_a_root_asked_for(
    npm_registry: FixtureNpmRegistry, tmp_path: Path
) -> None:
    lint_world(npm_registry)
    text = PROFILE.replace('"mctl-lint-config@^2"', '"mctl-lint-config@^2", "mctl-lint-legacy@0.3"')
    arts, _ = await lock(tmp_path, npm_registry.url, text)
    # The legacy plugin's peer ^8 is met by nothing the tree has: a second copy, as npm nests one.
    assert {a.version for a in arts if a.name == "mctl-lint"} == {"9.5.0", "8.57.0"}
    legacy = next(a for a in arts if a.name == "mctl-lint" and a.version == "8.57.0")
    assert "roots" not in legacy.attrs and legacy.attrs["required-by"] == "mctl-lint-legacy@0.3.0"
    store = Store(tmp_path / "store")
    publish_view(store, arts)
    app = create_app(store, {"npm": NpmEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        doc = (await c.get("/npm/mctl-lint")).json()
        core = (await c.get("/npm/mctl-lint-core")).json()
    assert sorted(doc["versions"]) == ["8.57.0", "9.5.0"]
    assert doc["dist-tags"]["latest"] == "9.5.0", "the root's version, not the upstream's latest tag (10.1.0)"
    # No profile asked for the core: the highest mirrored release, as before.
    assert core["dist-tags"]["latest"] == "9.0.0"
    # The static registry published to Pulp carries the same tag.
    files = {f.relative_path: f for f in layout_files(NpmEcosystem(), arts, store, "http://pulp.internal/npm/")}
    assert json.loads(files["-/packuments/mctl-lint"].data or b"")["dist-tags"]["latest"] == "9.5.0"


async def test_peers_in_one_round_share_a_version_when_one_fits_all(
    npm_registry: FixtureNpmRegistry, tmp_path: Path
) -> None:
    for version in ("1.0.0", "2.4.0", "3.0.0"):
        npm_registry.add(PkgSpec("mctl-host", version))
    npm_registry.add(PkgSpec("mctl-wide", "1.0.0", peer_dependencies={"mctl-host": ">=1"}))
    npm_registry.add(PkgSpec("mctl-narrow", "1.0.0", peer_dependencies={"mctl-host": "^2"}))
    text = '[npm]\npackages = ["mctl-wide@1", "mctl-narrow@1"]\nplatforms = ["linux-x64"]\n'
    arts = await resolve(tmp_path, npm_registry.url, text)
    # arborist resolves the broad edge with the narrow one as an advisory: one 2.x, not 3.0.0 beside it.
    host = {a.version: a.attrs["required-by"] for a in arts if a.name == "mctl-host"}
    assert host == {"2.4.0": "mctl-narrow@1.0.0, mctl-wide@1.0.0"}, host


async def test_optional_peer_only_when_the_tree_holds_it(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    for version in ("17.0.0", "18.2.0"):
        npm_registry.add(PkgSpec("mctl-view", version))
    npm_registry.add(PkgSpec("mctl-other", "1.0.0"))
    npm_registry.add(
        PkgSpec(
            "mctl-widget",
            "1.0.0",
            peer_dependencies={"mctl-view": "^18", "mctl-other": "^1"},
            peer_dependencies_meta={"mctl-view": {"optional": True}, "mctl-other": {"optional": True}},
        )
    )
    text = '[npm]\npackages = ["mctl-widget@1"]\nplatforms = ["linux-x64"]\n'
    alone = await resolve(tmp_path, npm_registry.url, text)
    assert {a.name for a in alone} == {"mctl-widget"}, "optional peers the tree does not hold: not installed"
    # The tree holds the view at 17, which the optional peer ^18 does not accept: npm resolves the invalid
    # peerOptional edge (a satisfying version beside it); mctl-other is still absent, so still not installed.
    text = '[npm]\npackages = ["mctl-widget@1", "mctl-view@17"]\nplatforms = ["linux-x64"]\n'
    arts = await resolve(tmp_path / "b", npm_registry.url, text)
    assert closure(arts) == {
        ("mctl-widget", "1.0.0"): {X64},
        ("mctl-view", "17.0.0"): {X64},
        ("mctl-view", "18.2.0"): {X64},
    }


def native_world(reg: FixtureNpmRegistry) -> None:
    """esbuild-like: one optional build per libc (the fixture's abbreviated documents leave ``libc`` out, as
    the public registry's do)."""
    builds = {
        "mctl-fast-linux-x64-gnu": ("x64", "glibc"),
        "mctl-fast-linux-x64-musl": ("x64", "musl"),
        "mctl-fast-linux-arm64-gnu": ("arm64", "glibc"),
    }
    for name, (cpu, libc) in builds.items():
        reg.add(PkgSpec(name, "1.0.0", os=("linux",), cpu=(cpu,), extra={"libc": [libc]}))
    reg.add(PkgSpec("mctl-fast-darwin-arm64", "1.0.0", os=("darwin",), cpu=("arm64",)))
    optional = {n: "1.0.0" for n in [*builds, "mctl-fast-darwin-arm64"]}
    reg.add(PkgSpec("mctl-fast", "1.0.0", optional_dependencies=optional))


async def test_linux_platform_keeps_only_its_libc(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    native_world(npm_registry)
    glibc = await resolve(tmp_path, npm_registry.url, '[npm]\npackages = ["mctl-fast@1"]\nplatforms = ["linux-x64"]\n')
    assert closure(glibc) == {("mctl-fast", "1.0.0"): {X64}, ("mctl-fast-linux-x64-gnu", "1.0.0"): {X64}}
    # libc is read from the full document of the builds a declared linux platform takes by os/cpu only (the
    # abbreviated one has none): not the arm64 or darwin builds.
    full = [p for m, p, h in npm_registry.log if "application/json" in h.get("accept", "").split(";")[0]]
    assert sorted(full) == ["/mctl-fast-linux-x64-gnu", "/mctl-fast-linux-x64-musl"], full

    both = '[npm]\npackages = ["mctl-fast@1"]\nplatforms = ["linux-x64", "linux-x64-musl"]\n'
    arts = await resolve(tmp_path / "b", npm_registry.url, both)
    assert closure(arts) == {
        ("mctl-fast", "1.0.0"): {X64, MUSL},
        ("mctl-fast-linux-x64-gnu", "1.0.0"): {X64},
        ("mctl-fast-linux-x64-musl", "1.0.0"): {MUSL},
    }
    musl_only = '[npm]\npackages = ["mctl-fast@1"]\nplatforms = ["linux-x64-musl"]\n'
    arts = await resolve(tmp_path / "c", npm_registry.url, musl_only)
    assert {a.name for a in arts} == {"mctl-fast", "mctl-fast-linux-x64-musl"}


async def test_libc_filter_with_full_documents(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    npm_registry.corgi = False  # a registry that answers with full documents: libc is there, nothing refetched
    native_world(npm_registry)
    arts = await resolve(tmp_path, npm_registry.url, '[npm]\npackages = ["mctl-fast@1"]\nplatforms = ["linux-x64"]\n')
    assert {a.name for a in arts} == {"mctl-fast", "mctl-fast-linux-x64-gnu"}
    assert npm_registry.count_packuments() == 5, npm_registry.requests
