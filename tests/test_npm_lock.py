"""`mirrorctl lock` for npm against the fixture registry: the closure npm would install per platform (scoped
packages, every declared platform's optional variant and no other, peer dependencies, aliases, dist-tags,
npm's preference for the latest tag and for versions not deprecated), deprecations noted, deterministic
host-free locks, package.json and package-lock.json inputs, tarballs verified and kept in the store, and
clear errors (nothing written) for a range nothing satisfies, a missing package, a tampered tarball."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import FetchSettings, Settings, Upstream
from mirrorctl.ecosystems.base import Ecosystem, ResolveContext
from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.npm.registry import Packument
from mirrorctl.ecosystems.npm.resolver import check_lock, pick_version, resolve_spec
from mirrorctl.ecosystems.npm.spec import NpmSpec
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.errors import DigestMismatch, IntegrityError, ResolutionError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.outside.locking import lock_profiles
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.npm_registry import (  # noqa: F401  (fixtures used by name)
    FixtureNpmRegistry,
    PkgSpec,
    npm_registry_factory_fixture,
    npm_registry_fixture,
)

X64, ARM = "linux-x64", "linux-arm64"

PROFILE = """\
[npm]
packages = [
    "@acme/app@^1",
    "tool@latest",
    "pad@npm:left-pad@^1",
]
platforms = ["linux-x64", "linux-arm64"]
"""


def ecosystems() -> dict[str, Ecosystem]:
    return {"pypi": PypiEcosystem(), "npm": NpmEcosystem()}


def populate(reg: FixtureNpmRegistry) -> None:
    reg.add(PkgSpec("@acme/app", "1.0.0"))
    reg.add(
        PkgSpec(
            "@acme/app",
            "1.1.0",
            dependencies={"@acme/liba": "~1.2.0", "native": "^1.0.0"},
            peer_dependencies={"react-ish": "^18", "optpeer": "^1"},
            peer_dependencies_meta={"optpeer": {"optional": True}},
        )
    )
    reg.add(PkgSpec("@acme/app", "2.0.0-beta.1"))
    for v in ("1.2.0", "1.2.5", "1.3.0"):
        reg.add(PkgSpec("@acme/liba", v))
    reg.add(
        PkgSpec(
            "native",
            "1.0.0",
            optional_dependencies={
                "@native/linux-x64": "1.0.0",
                "@native/linux-arm64": "1.0.0",
                "@native/win32-x64": "1.0.0",
            },
            bin={"native": "bin/native.js"},
        )
    )
    reg.add(PkgSpec("@native/linux-x64", "1.0.0", os=("linux",), cpu=("x64",), dependencies={"linux-helper": "^1"}))
    reg.add(PkgSpec("@native/linux-arm64", "1.0.0", os=("linux",), cpu=("arm64",)))
    reg.add(PkgSpec("@native/win32-x64", "1.0.0", os=("win32",), cpu=("x64",)))
    reg.add(PkgSpec("linux-helper", "1.0.0"))
    reg.add(PkgSpec("react-ish", "18.2.0"))
    reg.add(PkgSpec("react-ish", "18.3.0"), deprecated="18.3.0 is broken, use 18.2.0")
    reg.add(PkgSpec("optpeer", "1.0.0"))
    reg.add(PkgSpec("tool", "2.0.0"), tags={"latest": "2.0.0"})
    reg.add(PkgSpec("tool", "3.0.0"), tags={"next": "3.0.0"})
    reg.add(PkgSpec("left-pad", "1.3.0"), deprecated="use String.prototype.padStart()")


EXPECTED = {
    ("@acme/app", "1.1.0"): {X64, ARM},
    ("@acme/liba", "1.2.5"): {X64, ARM},
    ("native", "1.0.0"): {X64, ARM},
    ("@native/linux-x64", "1.0.0"): {X64},
    ("@native/linux-arm64", "1.0.0"): {ARM},
    ("linux-helper", "1.0.0"): {X64},
    ("react-ish", "18.2.0"): {X64, ARM},
    ("tool", "2.0.0"): {X64, ARM},
    ("left-pad", "1.3.0"): {X64, ARM},
}


class Recorder:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> Any:
        class _T:
            def advance(self, amount: float = 1) -> None:
                pass

            def close(self) -> None:
                pass

        return _T()

    def note(self, message: str) -> None:
        self.notes.append(message)


def write_profile(root: Path, text: str, name: str = "web") -> Path:
    path = root / "profiles" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def spec_of(root: Path, text: str) -> NpmSpec:
    spec = load_profile(write_profile(root, text), ecosystems()).specs["npm"]
    assert isinstance(spec, NpmSpec)
    return spec


async def resolve(root: Path, url: str, text: str = PROFILE, *, progress: Any = None) -> list[Artifact]:
    spec = spec_of(root, text)
    async with httpx.AsyncClient() as client:
        ctx = ResolveContext(
            client,
            Upstream("npm", url),
            progress or Recorder(),
            "web",
            store=Store(root / "store"),
            fetch=FetchSettings(concurrency=4, retries=2),
        )
        return await resolve_spec(spec, ctx)


def settings_for(root: Path, url: str) -> Settings:
    return Settings(None, root / "store", root / "profiles", upstreams={"npm": Upstream("npm", url)})


async def lock(root: Path, url: str, text: str = PROFILE) -> tuple[list[Artifact], str]:
    path = write_profile(root, text)
    ecos = ecosystems()
    profile = load_profile(path, ecos)
    async with httpx.AsyncClient() as client:
        settings = settings_for(root, url)
        (result,) = await lock_profiles(
            [profile], ecos, settings, Store(settings.store_path), client, Recorder(), refresh=True
        )
    return list(read_lock(result.path).artifacts), result.path.read_text()


def closure(arts: list[Artifact]) -> dict[tuple[str, str], set[str]]:
    return {(a.name, a.version): set(a.targets) for a in arts}


async def test_closure_per_platform(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    rec = Recorder()
    arts = await resolve(tmp_path, npm_registry.url, progress=rec)
    assert closure(arts) == EXPECTED
    # optional peer, the third platform's variant, prereleases, newer-than-latest, deprecated latest: not taken
    names = {a.name for a in arts}
    assert "optpeer" not in names and "@native/win32-x64" not in names
    for a in arts:
        entry = npm_registry.entry(a.name, a.version)
        assert (a.size, a.sha256, a.filename) == (entry.size, entry.sha256, entry.filename)
        assert a.attrs["integrity"] == entry.integrity and a.attrs["shasum"] == entry.shasum
    assert next(a for a in arts if a.name == "@acme/liba").filename == "liba-1.2.5.tgz"
    # scoped names are requested the way npm requests them
    assert npm_registry.requests["/@acme%2fapp"] == 1
    assert npm_registry.requests["/@acme/app"] == 0
    # abbreviated documents asked for first
    accept = next(h["accept"] for _, p, h in npm_registry.log if p == "/tool")
    assert accept.startswith("application/vnd.npm.install-v1+json")


async def test_deprecated_noted_and_recorded(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    rec = Recorder()
    arts = await resolve(tmp_path, npm_registry.url, progress=rec)
    pad = next(a for a in arts if a.name == "left-pad")
    assert pad.attrs["deprecated"] == "use String.prototype.padStart()"
    assert any("left-pad@1.3.0 is deprecated: use String.prototype.padStart()" in n for n in rec.notes), rec.notes
    assert not any("react-ish" in n for n in rec.notes), "the deprecated react-ish 18.3.0 was not picked"


async def test_platform_variants_follow_declared_platforms(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    text = PROFILE.replace('["linux-x64", "linux-arm64"]', '["win32-x64", "darwin-arm64"]')
    got = closure(await resolve(tmp_path, npm_registry.url, text))
    assert got[("@native/win32-x64", "1.0.0")] == {"win32-x64"}
    assert ("@native/linux-x64", "1.0.0") not in got and ("linux-helper", "1.0.0") not in got
    assert got[("native", "1.0.0")] == {"win32-x64", "darwin-arm64"}, "darwin gets the package, no variant"


async def test_lock_is_deterministic_and_names_no_host(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    arts, first = await lock(tmp_path, npm_registry.url)
    tarballs = npm_registry.count_tarballs()
    assert tarballs == len(EXPECTED), "each tarball downloaded once"
    _, second = await lock(tmp_path, npm_registry.url)
    assert first == second
    assert npm_registry.count_tarballs() == tarballs, "a second lock finds the tarballs in the store"
    assert "127.0.0.1" not in first and "http" not in first
    assert 'targets = [\n    "npm:linux-arm64",\n    "npm:linux-x64",\n]' in first
    store = Store(tmp_path / "store")
    assert all(store.has_blob(a.sha256, a.size) for a in arts), "lock kept the verified tarballs"


async def test_range_nothing_satisfies(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    npm_registry.add(PkgSpec("@acme/app", "1.2.0", dependencies={"@acme/liba": "^7.1.0"}))
    # Two retried failures (backoff 0.25 s + 0.5 s) make the error come after the other tarballs were verified.
    npm_registry.fail("/@acme%2fliba", times=2)
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, npm_registry.url)
    msg = err.value.message
    assert "no version of @acme/liba matches the range '^7.1.0'" in msg
    assert "wanted by @acme/app@1.2.0" in msg and "3 version(s), latest 1.3.0" in msg
    assert not (tmp_path / "profiles" / "web.lock").exists()
    assert npm_registry.count_tarballs() >= 3, "tarballs were downloaded while resolving"
    assert_store_empty(tmp_path)


def assert_store_empty(root: Path) -> None:
    """No blob, no partial or staged file: a lock that failed stored nothing."""
    store = root / "store"
    blobs = [p for p in (store / "blobs").rglob("*") if p.is_file()] if (store / "blobs").exists() else []
    assert blobs == [], blobs
    left = sorted(p.name for p in (store / "tmp").iterdir()) if (store / "tmp").exists() else []
    assert left == [], left


HOSTILE_HINT = "the upstream's packument is malformed or hostile; nothing was stored for it and no lock was written"


async def test_hostile_version_via_dist_tag_refused(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    npm_registry.add(PkgSpec("evil", "1.0.0"))
    npm_registry.list_as("evil", "1.0.0/../../x", "1.0.0")
    npm_registry.set_tag("evil", "latest", "1.0.0/../../x")
    text = '[npm]\npackages = ["evil@latest"]\nplatforms = ["linux-x64"]\n'
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, npm_registry.url, text)
    msg = err.value.message
    assert "npm: evil: the upstream gives the version '1.0.0/../../x', which is not a valid npm version" in msg
    assert "wanted as evil@latest by " in msg and "web.toml: npm.packages[0] (line 2))" in msg, msg
    assert err.value.hint == HOSTILE_HINT
    assert not (tmp_path / "profiles" / "web.lock").exists()
    assert npm_registry.count_tarballs() == 0, "refused before any download started"
    assert_store_empty(tmp_path)


async def test_hostile_version_key_picked_by_range_refused(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    # "v1.5.0" parses (loosely, as npm parses) and satisfies ^1, but is no canonical version: as the lock's
    # version it would name a tarball "tool-v1.5.0.tgz" that the served registry never lists.
    npm_registry.add(PkgSpec("tool", "1.0.0"))
    npm_registry.add(PkgSpec("tool", "2.0.0"))
    npm_registry.list_as("tool", "v1.5.0", "1.0.0")
    npm_registry.add(PkgSpec("app", "1.0.0", dependencies={"tool": "^1"}))
    text = '[npm]\npackages = ["app@^1"]\nplatforms = ["linux-x64"]\n'
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, npm_registry.url, text)
    msg = err.value.message
    assert "npm: tool: the upstream gives the version 'v1.5.0', which is not a valid npm version" in msg, msg
    assert "wanted as tool@^1 by app@1.0.0" in msg
    assert err.value.hint == HOSTILE_HINT
    assert not (tmp_path / "profiles" / "web.lock").exists()
    assert_store_empty(tmp_path)


@pytest.mark.parametrize("bad", ["../x", "a/b/c"])
async def test_hostile_dependency_name_refused(npm_registry: FixtureNpmRegistry, tmp_path: Path, bad: str) -> None:
    npm_registry.add(PkgSpec("evil", "1.0.0", dependencies={bad: "^1"}))
    text = '[npm]\npackages = ["evil@^1"]\nplatforms = ["linux-x64"]\n'
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, npm_registry.url, text)
    msg = err.value.message
    assert f"npm: evil: the upstream gives the package name {bad!r}, which is not a valid npm package name" in msg
    assert f"wanted as {bad}@^1 by evil@1.0.0" in msg, msg
    assert err.value.hint == HOSTILE_HINT
    assert not (tmp_path / "profiles" / "web.lock").exists()
    assert npm_registry.count_tarballs() == 0, "refused before evil's own download started"
    assert not any(bad.split("/")[-1] in p for p in npm_registry.requests), "the name was never requested"
    assert_store_empty(tmp_path)


async def test_hostile_alias_target_refused(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    npm_registry.add(PkgSpec("evil", "1.0.0", dependencies={"nice": "npm:../../x@^1"}))
    text = '[npm]\npackages = ["evil@^1"]\nplatforms = ["linux-x64"]\n'
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, npm_registry.url, text)
    msg = err.value.message
    assert "the upstream gives the package name '../../x'" in msg and "wanted as nice@npm:../../x@^1" in msg, msg
    assert_store_empty(tmp_path)


async def test_hostile_optional_dependency_name_skipped(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    # npm skips an optional dependency it cannot install; the hostile name is still never requested.
    npm_registry.add(PkgSpec("evil", "1.0.0", optional_dependencies={"../x": "^1"}))
    rec = Recorder()
    text = '[npm]\npackages = ["evil@^1"]\nplatforms = ["linux-x64"]\n'
    (art,) = await resolve(tmp_path, npm_registry.url, text, progress=rec)
    assert (art.name, art.version) == ("evil", "1.0.0")
    assert any("skipped ../x@^1 (optional" in n and "not a valid npm package name" in n for n in rec.notes)
    assert not any("/x" in p and "evil" not in p for p in npm_registry.requests), npm_registry.requests


async def test_missing_package_names_chain(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    npm_registry.add(PkgSpec("linux-helper", "1.1.0", dependencies={"ghost-pkg": "^2"}))
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, npm_registry.url)
    msg = err.value.message
    assert "package ghost-pkg is not on the upstream" in msg and "ghost-pkg@^2" in msg
    assert "@acme/app@1.1.0 > native@1.0.0 > @native/linux-x64@1.0.0 > linux-helper@1.1.0" in msg
    assert not (tmp_path / "profiles" / "web.lock").exists()


async def test_missing_root_package(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    with pytest.raises(ResolutionError) as err:
        await resolve(tmp_path, npm_registry.url, PROFILE.replace('"tool@latest"', '"@nobody/nothing@^1"'))
    assert "package @nobody/nothing is not on the upstream" in err.value.message
    assert "web.toml: npm.packages[1] (line 4)" in err.value.message


async def test_unknown_dist_tag(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    with pytest.raises(ResolutionError) as err:
        await resolve(tmp_path, npm_registry.url, PROFILE.replace("tool@latest", "tool@canary"))
    assert "no version of tool matches the dist-tag 'canary'" in err.value.message


async def test_dist_tag_other_than_latest(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    got = closure(await resolve(tmp_path, npm_registry.url, PROFILE.replace("tool@latest", "tool@next")))
    assert ("tool", "3.0.0") in got and ("tool", "2.0.0") not in got


async def test_optional_dependency_that_cannot_resolve_is_skipped(
    npm_registry: FixtureNpmRegistry, tmp_path: Path
) -> None:
    populate(npm_registry)
    npm_registry.add(PkgSpec("tool", "2.0.1", optional_dependencies={"fsevents-ish": "^2"}))
    npm_registry.set_tag("tool", "latest", "2.0.1")
    rec = Recorder()
    got = closure(await resolve(tmp_path, npm_registry.url, progress=rec))
    assert ("tool", "2.0.1") in got
    assert any("skipped fsevents-ish@^2 (optional" in n for n in rec.notes), rec.notes


async def test_tampered_tarball_refused_while_locking(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    npm_registry.tamper("@acme/liba", "1.2.5")
    with pytest.raises(IntegrityError) as err:
        await lock(tmp_path, npm_registry.url)
    assert "npm @acme/liba 1.2.5 (liba-1.2.5.tgz)" in err.value.message
    assert "does not match the registry's integrity" in err.value.message
    assert isinstance(err.value, DigestMismatch) and err.value.artifact == "npm @acme/liba 1.2.5 (liba-1.2.5.tgz)"
    assert set(err.value.expected) == set(err.value.actual) == {"sha512"}
    assert err.value.expected["sha512"] != err.value.actual["sha512"]
    assert not (tmp_path / "profiles" / "web.lock").exists()
    entry = npm_registry.entry("@acme/liba", "1.2.5")
    assert not Store(tmp_path / "store").has_blob(entry.sha256), "nothing stored for it"
    assert not list((tmp_path / "store" / "tmp").glob("*.part")), "no partial file left"


async def test_transient_failures_are_retried(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    npm_registry.fail("/@acme%2fliba", times=2)
    npm_registry.fail("/tool/-/tool-2.0.0.tgz", times=1, status=502)
    assert closure(await resolve(tmp_path, npm_registry.url)) == EXPECTED


async def test_shasum_only_package(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    npm_registry.add(PkgSpec("oldie", "0.1.0"), integrity=False)
    rec = Recorder()
    text = '[npm]\npackages = ["oldie"]\nplatforms = ["linux-x64"]\n'
    (art,) = await resolve(tmp_path, npm_registry.url, text, progress=rec)
    entry = npm_registry.entry("oldie", "0.1.0")
    assert art.attrs["shasum"] == entry.shasum
    assert str(art.attrs["integrity"]).startswith("sha512-"), "sha512 of the verified bytes"
    assert any("no sha512 integrity upstream" in n for n in rec.notes)


async def test_works_without_corgi(npm_registry_factory: Any, tmp_path: Path) -> None:
    reg = npm_registry_factory(corgi=False)
    populate(reg)
    assert closure(await resolve(tmp_path, reg.url)) == EXPECTED


def _lock_v3() -> dict[str, Any]:
    return {
        "name": "proj",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "proj", "dependencies": {"@acme/app": "^1.0.0", "pad": "npm:left-pad@^1"}},
            "node_modules/@acme/app": {
                "version": "1.0.0",
                "resolved": "https://registry.example.test/@acme/app/-/app-1.0.0.tgz",
            },
            "node_modules/pad": {"name": "left-pad", "version": "1.3.0"},
            "node_modules/@native/linux-arm64": {
                "version": "1.0.0",
                "optional": True,
                "os": ["linux"],
                "cpu": ["arm64"],
            },
            "node_modules/@native/win32-x64": {"version": "1.0.0", "optional": True, "os": ["win32"], "cpu": ["x64"]},
            "node_modules/@acme/app/node_modules/@acme/liba": {"version": "1.2.0"},
            "node_modules/local": {"resolved": "../local", "link": True},
            "node_modules/gitdep": {"version": "1.0.0", "resolved": "git+ssh://git@example.test/x.git#abc"},
        },
    }


async def test_package_lock_pins_exact_versions(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    proj = tmp_path / "proj"
    proj.mkdir()
    doc = _lock_v3()
    doc["packages"]["node_modules/pad"]["integrity"] = npm_registry.entry("left-pad", "1.3.0").integrity
    (proj / "package-lock.json").write_text(json.dumps(doc))
    text = '[npm]\npackage-lock = "../proj/package-lock.json"\nplatforms = ["linux-x64", "linux-arm64"]\n'
    got = closure(await resolve(tmp_path, npm_registry.url, text))
    assert got == {
        ("@acme/app", "1.0.0"): {X64, ARM},
        ("left-pad", "1.3.0"): {X64, ARM},
        ("@native/linux-arm64", "1.0.0"): {ARM},
        ("@acme/liba", "1.2.0"): {X64, ARM},
    }


async def test_package_lock_integrity_mismatch(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    proj = tmp_path / "proj"
    proj.mkdir()
    doc = _lock_v3()
    doc["packages"]["node_modules/pad"]["integrity"] = npm_registry.entry("tool", "2.0.0").integrity
    (proj / "package-lock.json").write_text(json.dumps(doc))
    text = '[npm]\npackage-lock = "../proj/package-lock.json"\nplatforms = ["linux-x64"]\n'
    with pytest.raises(IntegrityError) as err:
        await resolve(tmp_path, npm_registry.url, text)
    assert "node_modules/pad records integrity" in err.value.message and "left-pad@1.3.0" in err.value.message


async def test_package_lock_v1(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    proj = tmp_path / "proj"
    proj.mkdir()
    doc = {
        "lockfileVersion": 1,
        "dependencies": {
            "@acme/app": {"version": "1.0.0", "dependencies": {"@acme/liba": {"version": "1.3.0"}}},
            "pad": {"version": "npm:left-pad@1.3.0"},
        },
    }
    (proj / "npm-shrinkwrap.json").write_text(json.dumps(doc))
    text = '[npm]\npackage-lock = "../proj/npm-shrinkwrap.json"\nplatforms = ["linux-x64"]\n'
    got = closure(await resolve(tmp_path, npm_registry.url, text))
    assert set(got) == {("@acme/app", "1.0.0"), ("@acme/liba", "1.3.0"), ("left-pad", "1.3.0")}


async def test_package_json_ranges(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    proj = tmp_path / "proj"
    proj.mkdir()
    pkg = {
        "name": "proj",
        "dependencies": {"@acme/liba": "~1.2.0", "local": "file:../local"},
        "devDependencies": {"tool": "next"},
        "optionalDependencies": {"@native/win32-x64": "^1"},
    }
    (proj / "package.json").write_text(json.dumps(pkg))
    text = '[npm]\npackage-json = "../proj/package.json"\nplatforms = ["linux-x64"]\n'
    got = closure(await resolve(tmp_path, npm_registry.url, text))
    assert got == {("@acme/liba", "1.2.5"): {X64}, ("tool", "3.0.0"): {X64}}


async def test_check_lock(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    arts = await resolve(tmp_path, npm_registry.url)
    spec = spec_of(tmp_path, PROFILE)
    assert check_lock(spec, arts) == []
    problems = check_lock(spec_of(tmp_path, PROFILE.replace("@acme/app@^1", "@acme/app@^2")), arts)
    assert any("@acme/app@^2 is not met by the locked versions" in p for p in problems), problems
    wider = spec_of(tmp_path, PROFILE.replace('"linux-arm64"]', '"linux-arm64", "win32-x64"]'))
    assert "npm platform win32-x64: not in the lock" in check_lock(wider, arts)


def test_pick_version_prefers_latest_then_fresh_then_highest() -> None:
    def doc(versions: dict[str, str | None], latest: str) -> Packument:
        objs = {v: {"dist": {}, **({"deprecated": d} if d else {})} for v, d in versions.items()}
        return Packument("p", {"latest": latest}, objs, "fixture")

    plain = doc({"1.0.0": None, "1.5.0": None, "2.0.0": None, "2.1.0-rc.1": None}, "2.0.0")
    assert pick_version(plain, "^1") == "1.5.0"
    assert pick_version(plain, "") == "2.0.0" and pick_version(plain, "*") == "2.0.0"
    assert pick_version(plain, ">=2.1.0-rc.0") == "2.1.0-rc.1", "a prerelease when the range names one"
    assert pick_version(plain, ">=1") == "2.0.0", "latest wins when it satisfies, even if not the highest"
    assert pick_version(plain, "1.0.0") == "1.0.0" and pick_version(plain, "=1.0.0") == "1.0.0"
    assert pick_version(plain, "^3") is None and pick_version(plain, "beta") is None
    backport = doc({"1.0.0": None, "1.1.0": None, "2.0.0": None, "1.2.0": None}, "2.0.0")
    assert pick_version(backport, "^1.0.0") == "1.2.0"
    deprecated = doc({"1.0.0": None, "1.1.0": "bad"}, "1.1.0")
    assert pick_version(deprecated, "^1") == "1.0.0"
    only_bad = doc({"1.0.0": "bad", "1.1.0": "bad"}, "1.1.0")
    assert pick_version(only_bad, "^1") == "1.1.0"
    loose = doc({"1.0.0": None, "1.2.3": None}, "1.0.0")
    assert pick_version(loose, ">= 1.1 < 2") == "1.2.3"


async def test_lock_records_the_upstream_dist_tags(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    npm_registry.set_tag("tool", "stable", "2.0.0")
    npm_registry.set_tag("tool", "1.x", "2.0.0")  # a tag npm would read as a range: never recorded
    npm_registry.set_tag("tool", "canary", "3.0.0")
    text = PROFILE.replace('"tool@latest"', '"tool@latest", "tool@next"')
    arts, lock_text = await lock(tmp_path, npm_registry.url, text)
    tags = {(a.name, a.version): a.attrs.get("dist-tags") for a in arts}
    assert tags[("tool", "2.0.0")] == "latest,stable"
    assert tags[("tool", "3.0.0")] == "canary,next"
    assert tags[("@acme/liba", "1.2.5")] is None, "1.3.0 is latest; 1.2.5 has no tag: the attr is omitted"
    assert tags[("left-pad", "1.3.0")] == "latest"
    assert 'dist-tags = "canary,next"' in lock_text
    assert (await lock(tmp_path, npm_registry.url, text))[1] == lock_text, "deterministic"


async def test_check_lock_and_locks_without_dist_tags(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    text = PROFILE.replace('"tool@latest"', '"tool@next"')
    arts = await resolve(tmp_path, npm_registry.url, text)
    assert check_lock(spec_of(tmp_path, text), arts) == []
    # A lock made before dist-tags were recorded: accepted for ranges and latest (the mirror's latest is then
    # the highest mirrored release), resolved again for another tag the mirror could not serve.
    def untagged(arts: list[Artifact]) -> list[Artifact]:
        return [dataclasses.replace(a, attrs={k: v for k, v in a.attrs.items() if k != "dist-tags"}) for a in arts]

    (problem,) = check_lock(spec_of(tmp_path, text), untagged(arts))
    assert "tool@next: the lock records no dist-tag 'next'" in problem and "lock again" in problem
    assert check_lock(spec_of(tmp_path, PROFILE), untagged(await resolve(tmp_path, npm_registry.url))) == []


async def test_alias_inside_a_dependency_resolves_the_real_package(
    npm_registry: FixtureNpmRegistry, tmp_path: Path
) -> None:
    # "fake" exists nowhere: only the alias branch turns it into real@^1.
    npm_registry.add(PkgSpec("host", "1.0.0", dependencies={"fake": "npm:real@^1"}))
    npm_registry.add(PkgSpec("real", "1.0.0"))
    npm_registry.add(PkgSpec("real", "1.1.0", dependencies={"left-pad": "^1"}))
    npm_registry.add(PkgSpec("real", "2.0.0"))
    npm_registry.add(PkgSpec("left-pad", "1.3.0"))
    text = '[npm]\npackages = ["host@^1"]\nplatforms = ["linux-x64"]\n'
    got = closure(await resolve(tmp_path, npm_registry.url, text))
    assert got == {("host", "1.0.0"): {X64}, ("real", "1.1.0"): {X64}, ("left-pad", "1.3.0"): {X64}}
    assert npm_registry.requests["/fake"] == 0, "the alias is the install folder's name, never requested"


async def test_include_peer_false_excludes_peers(npm_registry: FixtureNpmRegistry, tmp_path: Path) -> None:
    populate(npm_registry)
    with_peers = closure(await resolve(tmp_path, npm_registry.url))
    assert ("react-ish", "18.2.0") in with_peers, "the default installs peers, as npm 7+ does"
    text = PROFILE + "include-peer = false\n"
    got = closure(await resolve(tmp_path, npm_registry.url, text))
    assert got == {k: v for k, v in EXPECTED.items() if k[0] != "react-ish"}
    assert not any(n == "react-ish" for n, _ in got)
