"""`mirrorctl lock` for PyPI against the fixture upstream: closures per target, determinism, no host in the
lock, PEP 658 used when offered, HTML-only fallback, sdist policy, constraints, and `lock --check`."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.config import FetchSettings, Settings, Upstream
from mirrorctl.ecosystems.base import FetchContext, load_ecosystems
from mirrorctl.ecosystems.pypi.fetchplan import fetch_plan
from mirrorctl.errors import NetworkError, ResolutionError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.outside.locking import check_locks, lock_profiles
from mirrorctl.outside.profiles import load_profile
from mirrorctl.progress import SILENT
from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    FixtureUpstream,
    pypi_upstream_factory_fixture,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist

PY311_X86 = "py3.11-manylinux_2_28_x86_64"
PY311_ARM = "py3.11-manylinux_2_28_aarch64"
PY312_X86 = "py3.12-manylinux_2_28_x86_64"
PY312_ARM = "py3.12-manylinux_2_28_aarch64"
ALL = {PY311_X86, PY311_ARM, PY312_X86, PY312_ARM}

PROFILE = """\
[pypi]
requirements = [
    "app[fast]",
    "native",
]
python = ["3.11", "3.12"]
platforms = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"]
"""


def populate(up: FixtureUpstream) -> None:
    up.add(
        Dist(
            "App",
            "1.0",
            extras=["fast"],
            requires=[
                "lib>=1",
                'extra-dep; extra == "fast"',
                'winonly; sys_platform == "win32"',
                'py312only; python_version >= "3.12"',
            ],
        )
    )
    up.add(Dist("lib", "1.0"))
    up.add(Dist("lib", "2.0", requires_python=">=3.12"))
    up.add(Dist("lib", "3.0"), yanked="broken")
    up.add(Dist("extra_dep", "1.0"))
    up.add(Dist("winonly", "1.0"))
    up.add(Dist("py312only", "1.0"))
    for tag in (
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64",
        "cp38-abi3-manylinux_2_17_x86_64",
        "cp38-abi3-manylinux_2_17_aarch64",
        "cp312-cp312-musllinux_1_2_x86_64",
        "cp312-cp312-manylinux_2_31_aarch64",  # too new a glibc for manylinux_2_28
    ):
        up.add(Dist("native", "1.0", tag=tag))


def write_profile(root: Path, text: str, name: str = "web") -> Path:
    path = root / "profiles" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings_for(root: Path, url: str) -> Settings:
    return Settings(None, root / "store", root / "profiles", upstreams={"pypi": Upstream("pypi", url)})


async def lock(root: Path, url: str, text: str = PROFILE) -> tuple[list[Artifact], str]:
    path = write_profile(root, text)
    ecos = load_ecosystems()
    profile = load_profile(path, ecos)
    async with httpx.AsyncClient() as client:
        # refresh: these tests change the upstream between locks and want a new resolution every time
        settings = settings_for(root, url)
        (result,) = await lock_profiles(
            [profile], ecos, settings, Store(settings.store_path), client, SILENT, refresh=True
        )
    lock_text = result.path.read_text()
    return list(read_lock(result.path).artifacts), lock_text


def by_target(arts: list[Artifact]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for a in arts:
        for t in a.targets:
            out.setdefault(t, {})[a.name] = a.filename
    return out


async def test_closure_per_target(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    arts, text = await lock(tmp_path, pypi_upstream.url)
    closure = by_target(arts)
    assert set(closure) == ALL
    for t in ALL:
        assert "extra-dep" in closure[t], "the extra's requirement is part of the closure"
        assert "winonly" not in closure[t], "markers are evaluated for the target, not this machine"
    assert "py312only" in closure[PY312_X86] and "py312only" not in closure[PY311_X86]
    # requires-python honoured per target; the yanked 3.0 never picked
    assert closure[PY311_X86]["lib"] == "lib-1.0-py3-none-any.whl"
    assert closure[PY312_ARM]["lib"] == "lib-2.0-py3-none-any.whl"
    # the best wheel per target by tag priority; abi3 where no cp312 manylinux wheel exists
    assert closure[PY311_X86]["native"].startswith("native-1.0-cp311-cp311-manylinux_2_17_x86_64")
    assert closure[PY311_ARM]["native"].startswith("native-1.0-cp311-cp311-manylinux_2_17_aarch64")
    assert closure[PY312_X86]["native"] == "native-1.0-cp38-abi3-manylinux_2_17_x86_64.whl"
    doc = tomllib.loads(text)
    assert doc["targets"] == sorted(f"pypi:{t}" for t in ALL)
    lib1 = next(a for a in arts if a.filename == "lib-1.0-py3-none-any.whl")
    assert set(lib1.targets) == {PY311_X86, PY311_ARM} and lib1.attrs["kind"] == "wheel"
    assert lib1.sha256 == pypi_upstream.entry(lib1.filename).sha256
    assert lib1.size == pypi_upstream.entry(lib1.filename).size


async def test_unreachable_arch_is_a_resolution_error(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    pypi_upstream.remove("native-1.0-cp38-abi3-manylinux_2_17_aarch64.whl")  # now cp312 has no aarch64 wheel
    profile = PROFILE.replace('"manylinux_2_28_x86_64", ', "")
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, pypi_upstream.url, profile)
    assert (
        PY312_ARM in err.value.message
        and "native <- the profile (no file installs here)" in err.value.message
    )
    assert not (tmp_path / "profiles" / "web.lock").exists(), "nothing written on failure"


async def test_deterministic_and_host_free(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    _, first = await lock(tmp_path, pypi_upstream.url)
    _, second = await lock(tmp_path, pypi_upstream.url)
    assert first == second
    assert "127.0.0.1" not in first and "http" not in first.split("\n", 1)[1]


async def test_pep658_means_no_file_download(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    arts, _ = await lock(tmp_path, pypi_upstream.url)
    assert pypi_upstream.count_files() == 0, pypi_upstream.requests
    assert pypi_upstream.count(lambda p: p.endswith(".metadata")) > 0
    app_art = next(a for a in arts if a.name == "app")
    (comp,) = app_art.companions
    meta = pypi_upstream.entry(app_art.filename).metadata
    assert comp.suffix == ".metadata" and meta is not None and comp.size == len(meta)


@pytest.mark.parametrize("formats", [("html",), ("json",)])
async def test_without_pep658_and_formats(
    pypi_upstream_factory: Callable[..., FixtureUpstream], tmp_path: Path, formats: tuple[str, ...]
) -> None:
    plain = pypi_upstream_factory(formats=formats, pep658=False, absolute_urls=False)
    populate(plain)
    rich = pypi_upstream_factory()
    populate(rich)
    arts_plain, _ = await lock(tmp_path / "a", plain.url)
    arts_rich, _ = await lock(tmp_path / "b", rich.url)
    assert by_target(arts_plain) == by_target(arts_rich)
    assert [(a.filename, a.size, a.sha256) for a in arts_plain] == [
        (a.filename, a.size, a.sha256) for a in arts_rich
    ]
    assert all(not a.companions for a in arts_plain)
    assert plain.count_files(".whl") > 0, "without PEP 658 the wheels are read for their metadata"


SDIST_WORLD = """\
[pypi]
requirements = ["srconly"]
python = ["3.12"]
platforms = ["manylinux_2_28_x86_64"]
"""


async def test_sdist_only_when_allowed(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    pypi_upstream.add(Dist("srconly", "1.0", requires=["lib"]), wheel=False, sdist=True)
    pypi_upstream.add(Dist("lib", "1.0"), sdist=True)
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, pypi_upstream.url, SDIST_WORLD)
    assert "py3.12-manylinux_2_28_x86_64" in err.value.message and "srconly" in err.value.message
    with pytest.raises(ResolutionError):
        await lock(
            tmp_path, pypi_upstream.url, SDIST_WORLD + 'sdist = "fallback"\nsdist-allowed = ["other"]\n'
        )
    arts, _ = await lock(tmp_path, pypi_upstream.url, SDIST_WORLD + 'sdist = "fallback"\n')
    kinds = {a.filename: a.attrs["kind"] for a in arts}
    assert kinds == {"srconly-1.0.tar.gz": "sdist", "lib-1.0-py3-none-any.whl": "wheel"}


async def test_constraints_apply_to_closure(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    arts, _ = await lock(tmp_path, pypi_upstream.url, PROFILE + 'constraints = ["lib<2"]\n')
    assert {a.filename for a in arts if a.name == "lib"} == {"lib-1.0-py3-none-any.whl"}


async def test_unsatisfiable_names_target_and_chain(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    pypi_upstream.add(Dist("top", "1.0", requires=["middle"]))
    pypi_upstream.add(Dist("middle", "1.0", requires=["lib>=9"]))
    pypi_upstream.add(Dist("lib", "1.0"))
    with pytest.raises(ResolutionError) as err:
        await lock(tmp_path, pypi_upstream.url, SDIST_WORLD.replace("srconly", "top"))
    msg = err.value.message
    assert "py3.12-manylinux_2_28_x86_64" in msg
    assert "lib>=9 <- middle 1.0 <- top 1.0 <- the profile" in msg, msg


async def test_transient_failures_are_retried(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    pypi_upstream.fail("/simple/lib/", times=2)
    arts, _ = await lock(tmp_path, pypi_upstream.url)
    assert any(a.name == "lib" for a in arts)
    assert pypi_upstream.requests["/simple/lib/"] == 3


async def test_fetch_plan_finds_files_on_upstream(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)
    arts, _ = await lock(tmp_path, pypi_upstream.url)
    async with httpx.AsyncClient() as client:
        store = Store(tmp_path / "plan-store")  # not the lock's: its URL cache would answer without the index
        ctx = FetchContext(client, Upstream("pypi", pypi_upstream.url), SILENT, store, FetchSettings())
        items = await fetch_plan(arts, ctx)
        assert len(items) == sum(1 + len(a.companions) for a in arts)
        lib = next(i for i in items if i.filename == "lib-1.0-py3-none-any.whl")
        assert lib.url == pypi_upstream.file_url("lib-1.0-py3-none-any.whl")
        assert any(i.filename == "lib-1.0-py3-none-any.whl.metadata" for i in items)
        pypi_upstream.remove("lib-1.0-py3-none-any.whl")
        with pytest.raises(
            NetworkError, match=r"lib-1\.0-py3-none-any\.whl\): the upstream .* no longer lists"
        ):
            await fetch_plan(arts, ctx)


def test_cli_lock_and_check(
    pypi_upstream: FixtureUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(pypi_upstream)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(f'[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n')
    profile = write_profile(tmp_path, PROFILE)
    runner = CliRunner()
    missing = runner.invoke(app, ["lock", "--check"])
    assert missing.exit_code == 1 and "missing" in missing.output
    done = runner.invoke(app, ["-q", "lock", "web"])
    assert done.exit_code == 0, done.output
    assert "web:" in done.output and "4 targets" in done.output and "(changed)" in done.output
    again = runner.invoke(app, ["-q", "lock"])
    assert again.exit_code == 0 and "(up to date, not resolved again" in again.output
    refreshed = runner.invoke(app, ["-q", "lock", "--refresh"])
    assert refreshed.exit_code == 0 and "(unchanged)" in refreshed.output
    ok = runner.invoke(app, ["lock", "--check"])
    assert ok.exit_code == 0 and "up to date" in ok.output
    lock_bytes = profile.with_suffix(".lock").read_bytes()
    profile.write_text(PROFILE.replace('"native",', '"native",\n    "lib<2",'))
    stale = runner.invoke(app, ["lock", "--check"])
    assert stale.exit_code == 1 and "changed since the lock was made" in stale.output
    assert profile.with_suffix(".lock").read_bytes() == lock_bytes, "--check changes nothing"


def test_check_lock_finds_unmet_requirement(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate(pypi_upstream)

    asyncio.run(lock(tmp_path, pypi_upstream.url))
    ecos = load_ecosystems()
    path = tmp_path / "profiles" / "web.toml"
    assert check_locks([load_profile(path, ecos)], ecos) == []
    path.write_text(PROFILE.replace('"native",', '"native>=2",').replace('"3.12"]', '"3.12", "3.13"]'))
    problems = check_locks([load_profile(path, ecos)], ecos)
    assert any("changed since" in p for p in problems)
    assert any("native>=2" in p and "not met by locked 1.0" in p for p in problems)
    assert any("py3.13-manylinux_2_28_x86_64: not in the lock" in p for p in problems)


async def test_prereleases_only_when_asked(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    pypi_upstream.add(Dist("lib", "1.0"))
    pypi_upstream.add(Dist("lib", "4.0.dev1"))
    profile = SDIST_WORLD.replace("srconly", "lib")
    arts, _ = await lock(tmp_path, pypi_upstream.url, profile)
    assert [a.version for a in arts] == ["1.0"]
    arts, _ = await lock(tmp_path, pypi_upstream.url, profile.replace('"lib"', '"lib>=4.0.dev0"'))
    assert [a.version for a in arts] == ["4.0.dev1"]
    arts, _ = await lock(tmp_path, pypi_upstream.url, profile + "prereleases = true\n")
    assert [a.version for a in arts] == ["4.0.dev1"]
