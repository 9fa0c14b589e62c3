"""What a PyPI lock records and says, tried as a new user would, against the fixture upstream:

* a yanked release pinned with ``==`` (PEP 592) is locked with its yank and reason, and served as yanked (PEP 691
  ``yanked``, PEP 503 ``data-yanked``); a wildcard or a range never takes it;
* pre-releases follow PEP 440's default, as pip and uv do: candidates where no final release satisfies the
  requirement (the lock's ``prerelease`` attr and a note say so), and for a project whose specifier names a
  pre-release; ``prereleases = true`` admits them everywhere; other projects do not drift;
* a resolution error names the reason: pre-releases excluded (and how to admit them), a file refused for its
  ``requires-python``, no wheel for this target while sdists are not allowed, a yanked release, no such project.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.ecosystems.pypi.records import _rows_to_records, _to_row, parse_html_page, parse_json_page
from mirrorctl.ecosystems.pypi.serve import JSON_TYPE
from mirrorctl.errors import ResolutionError
from mirrorctl.inside.serve import create_app
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.outside.locking import lock_profiles
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.store_content import publish_view, put_blob
from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    FixtureUpstream,
    pypi_upstream_factory_fixture,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist

from .test_pypi_lock import settings_for, write_profile

PY311 = "py3.11-manylinux_2_28_x86_64"
PY312 = "py3.12-manylinux_2_28_x86_64"


def profile(*requirements: str, python: str = '"3.12"', extra: str = "") -> str:
    reqs = ", ".join(repr(r) for r in requirements)
    return f'[pypi]\nrequirements = [{reqs}]\npython = [{python}]\nplatforms = ["manylinux_2_28_x86_64"]\n{extra}'


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> object:
        class _T:
            def advance(self, amount: float = 1) -> None:
                pass

            def close(self) -> None:
                pass

        return _T()

    def note(self, message: str) -> None:
        self.lines.append(message)


async def lock(root: Path, url: str, text: str, notes: Notes | None = None) -> dict[str, Artifact]:
    path = write_profile(root, text)
    ecos = load_ecosystems()
    settings = settings_for(root, url)
    async with httpx.AsyncClient() as client:
        (result,) = await lock_profiles(
            [load_profile(path, ecos)], ecos, settings, Store(settings.store_path), client, notes or Notes(),
            refresh=True,
        )
    return {a.name: a for a in read_lock(result.path).artifacts}


async def refused(root: Path, url: str, text: str) -> str:
    with pytest.raises(ResolutionError) as err:
        await lock(root, url, text)
    assert not (root / "profiles" / "web.lock").exists(), "nothing written on failure"
    return err.value.message


# --- yanks -------------------------------------------------------------------------------------------------


def test_every_page_reader_keeps_the_yank_reason() -> None:
    files = [
        {"filename": "yk-1.0-py3-none-any.whl", "url": "f/a", "yanked": "broken <build>"},
        {"filename": "yk-2.0-py3-none-any.whl", "url": "f/b", "yanked": True},
        {"filename": "yk-3.0-py3-none-any.whl", "url": "f/c", "yanked": ""},
        {"filename": "yk-4.0-py3-none-any.whl", "url": "f/d"},
    ]
    want = [(True, "broken <build>"), (True, None), (True, None), (False, None)]
    body = json.dumps({"files": files}).encode()
    fast = parse_json_page(body, "http://up.test/simple/yk/")
    lenient = parse_json_page({"files": files}, "http://up.test/simple/yk/")
    assert [(r.yanked, r.yank_reason) for r in fast] == want
    assert lenient == fast
    page = (
        '<a href="f/a" data-yanked="broken &lt;build&gt;">yk-1.0-py3-none-any.whl</a>'
        '<a href="f/b" data-yanked>yk-2.0-py3-none-any.whl</a>'
        '<a href="f/c" data-yanked="">yk-3.0-py3-none-any.whl</a>'
        '<a href="f/d">yk-4.0-py3-none-any.whl</a>'
    )
    assert [(r.yanked, r.yank_reason) for r in parse_html_page(page, "http://up.test/simple/yk/")] == want
    assert _rows_to_records([_to_row(r) for r in fast]) == fast


@pytest.mark.parametrize("formats", [("json",), ("html",)])
async def test_pinned_yanked_release_is_locked_with_its_reason(
    pypi_upstream_factory: Callable[..., FixtureUpstream], tmp_path: Path, formats: tuple[str, ...]
) -> None:
    up = pypi_upstream_factory(formats=formats)
    up.add(Dist("yk", "1.0"))
    up.add(Dist("yk", "2.0"), yanked="broken <build>")
    up.add(Dist("yk-bare", "1.0"), yanked=True)
    notes = Notes()
    arts = await lock(tmp_path, up.url, profile("yk==2.0", "yk-bare===1.0"), notes)
    assert arts["yk"].version == "2.0" and arts["yk"].attrs["yanked"] == "broken <build>"
    assert arts["yk-bare"].attrs["yanked"] is True, "a yank without a reason is recorded as true"
    assert any("yk 2.0 is yanked: broken <build>; locked because a requirement pins it exactly" in n
               for n in notes.lines), notes.lines
    assert any("yk-bare 1.0 is yanked (no reason given)" in n for n in notes.lines), notes.lines
    text = (tmp_path / "profiles" / "web.lock").read_text()
    assert 'yanked = "broken <build>"' in text and "yanked = true" in text


async def test_unpinned_and_wildcard_requirements_do_not_take_a_yanked_release(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    pypi_upstream.add(Dist("yk", "1.0"))
    pypi_upstream.add(Dist("yk", "2.0"), yanked="broken")
    arts = await lock(tmp_path, pypi_upstream.url, profile("yk"))
    assert arts["yk"].version == "1.0" and "yanked" not in arts["yk"].attrs
    arts = await lock(tmp_path, pypi_upstream.url, profile("yk>=1"))
    assert arts["yk"].version == "1.0"
    msg = await refused(tmp_path / "w", pypi_upstream.url, profile("yk==2.*"))
    assert "yk==2.* <- the profile (versions for this target: 2.0 (yanked), 1.0)" in msg, msg
    assert "yk 2.0 is yanked: broken; only an exact pin (yk==2.0) takes a yanked release (PEP 592)" in msg, msg


async def test_locked_yank_is_served_to_pip_and_uv(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    pypi_upstream.add(Dist("yk", "2.0"), yanked="broken <build>")
    arts = await lock(tmp_path, pypi_upstream.url, profile("yk==2.0"))
    store = Store(tmp_path / "store")  # the bytes the lock names, put where an import puts them
    (art,) = arts.values()
    entry = pypi_upstream.entry(art.filename)
    assert entry.data is not None and entry.metadata is not None
    assert put_blob(store, entry.data)[0] == art.sha256
    assert put_blob(store, entry.metadata)[0] == art.companions[0].sha256
    publish_view(store, [art])
    served = create_app(store, {"pypi": PypiEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://mirror.test") as c:
        doc = (await c.get("/pypi/simple/yk/", headers={"Accept": JSON_TYPE})).json()
        assert [f["yanked"] for f in doc["files"]] == ["broken <build>"]
        page = (await c.get("/pypi/simple/yk/", headers={"Accept": "text/html"})).text
        assert 'data-yanked="broken &lt;build&gt;"' in page


# --- pre-releases ------------------------------------------------------------------------------------------


def populate_pre(up: FixtureUpstream) -> None:
    up.add(Dist("onlypre", "1.0b1"))
    up.add(Dist("onlypre", "1.0b2"))
    up.add(Dist("lib", "1.0"))
    up.add(Dist("lib", "2.0"))
    up.add(Dist("lib", "2.1b1"))


async def test_project_with_only_prereleases_locks_without_prereleases_true(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    populate_pre(pypi_upstream)
    notes = Notes()
    arts = await lock(tmp_path, pypi_upstream.url, profile("onlypre", "lib"), notes)
    assert arts["onlypre"].version == "1.0b2" and arts["onlypre"].attrs["prerelease"] == "no-final-release"
    assert arts["lib"].version == "2.0" and "prerelease" not in arts["lib"].attrs, "lib does not drift"
    assert any(
        "onlypre 1.0b2 is a pre-release, locked because no final release satisfies onlypre" in n
        and PY312 in n
        for n in notes.lines
    ), notes.lines


async def test_no_final_release_satisfies_the_specifier(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate_pre(pypi_upstream)
    arts = await lock(tmp_path, pypi_upstream.url, profile("lib>2.0"))
    assert arts["lib"].version == "2.1b1" and arts["lib"].attrs["prerelease"] == "no-final-release"
    # Through a dependency too, and with a constraint in the merged specifiers.
    pypi_upstream.add(Dist("app", "1.0", requires=["lib>=1"]))
    arts = await lock(tmp_path, pypi_upstream.url, profile("app", extra='constraints = ["lib>2"]\n'))
    assert arts["lib"].version == "2.1b1"
    arts = await lock(tmp_path, pypi_upstream.url, profile("app"))
    assert arts["lib"].version == "2.0"


async def test_final_excluded_by_requires_python_lets_prereleases_in_for_that_target(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    pypi_upstream.add(Dist("rp", "1.0", requires_python=">=3.12"))
    pypi_upstream.add(Dist("rp", "1.1rc1", requires_python=">=3.10"))
    await lock(tmp_path, pypi_upstream.url, profile("rp", python='"3.11", "3.12"'))
    got = {(a.version, a.targets) for a in read_lock(tmp_path / "profiles" / "web.lock").artifacts}
    assert got == {("1.0", (PY312,)), ("1.1rc1", (PY311,))}, "pip's choice per target"


async def test_specifier_naming_a_prerelease_admits_them_for_that_project_only(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    populate_pre(pypi_upstream)
    pypi_upstream.add(Dist("other", "1.0"))
    pypi_upstream.add(Dist("other", "1.1a1"))
    arts = await lock(tmp_path, pypi_upstream.url, profile("lib>=2.0b1", "other"))
    assert arts["lib"].version == "2.1b1" and arts["lib"].attrs["prerelease"] == "specifier"
    assert arts["other"].version == "1.0"
    arts = await lock(tmp_path, pypi_upstream.url, profile("lib", "other", extra='constraints = ["lib>=2.1b1"]\n'))
    assert arts["lib"].version == "2.1b1", "a constraint naming a pre-release admits them as well"


async def test_prereleases_true_still_admits_them_everywhere(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate_pre(pypi_upstream)
    pypi_upstream.add(Dist("other", "1.0"))
    pypi_upstream.add(Dist("other", "1.1a1"))
    arts = await lock(tmp_path, pypi_upstream.url, profile("lib", "other", "onlypre", extra="prereleases = true\n"))
    assert {n: a.version for n, a in arts.items()} == {"lib": "2.1b1", "other": "1.1a1", "onlypre": "1.0b2"}
    assert {a.attrs["prerelease"] for a in arts.values()} == {"profile"}


async def test_prerelease_lock_is_deterministic(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    populate_pre(pypi_upstream)
    await lock(tmp_path, pypi_upstream.url, profile("onlypre", "lib>2", python='"3.11", "3.12"'))
    first = (tmp_path / "profiles" / "web.lock").read_bytes()
    await lock(tmp_path, pypi_upstream.url, profile("onlypre", "lib>2", python='"3.11", "3.12"'))
    assert (tmp_path / "profiles" / "web.lock").read_bytes() == first
    doc = tomllib.loads(first.decode())
    assert {a["attrs"]["prerelease"] for a in doc["artifacts"]} == {"no-final-release"}


# --- why a resolution fails ---------------------------------------------------------------------------------


async def test_error_names_excluded_prereleases_and_how_to_admit_them(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    pypi_upstream.add(Dist("lib", "1.0", requires=["dep>=5"]))
    pypi_upstream.add(Dist("lib", "2.0b1"))
    pypi_upstream.add(Dist("dep", "1.0"))
    msg = await refused(tmp_path, pypi_upstream.url, profile("lib"))
    assert "dep>=5 <- lib 1.0 <- the profile (versions for this target: 1.0)" in msg, msg
    assert (
        "lib: pre-releases were excluded (2.0b1), because final release 1.0 satisfies lib (PEP 440); to admit "
        "them, set prereleases = true in [pypi] or name a pre-release in the requirement (e.g. 'lib>=2.0b1')"
    ) in msg, msg
    # The way out the message names works.
    arts = await lock(tmp_path, pypi_upstream.url, profile("lib>=2.0b1"))
    assert arts["lib"].version == "2.0b1"


async def test_error_marks_prereleases_in_the_versions_it_lists(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    pypi_upstream.add(Dist("lib", "1.0"))
    pypi_upstream.add(Dist("lib", "4.0.dev1"))
    msg = await refused(tmp_path, pypi_upstream.url, profile("lib>=9"))
    assert "lib>=9 <- the profile (versions for this target: 4.0.dev1 (pre-release), 1.0)" in msg, msg


async def test_error_names_a_file_refused_for_its_requires_python(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    pypi_upstream.add(Dist("app", "1.0", requires=["lib>=2"]))
    pypi_upstream.add(Dist("lib", "1.0"))
    pypi_upstream.add(Dist("lib", "2.0", requires_python=">=3.12"))
    msg = await refused(tmp_path, pypi_upstream.url, profile("app", python='"3.11"'))
    assert "lib>=2 <- app 1.0 <- the profile (versions for this target: 1.0)" in msg, msg
    assert f"lib 2.0: requires-python >=3.12 excludes Python 3.11.0 (target {PY311})" in msg, msg


async def test_error_names_no_wheel_for_this_target_and_the_sdist_setting(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    pypi_upstream.add(Dist("native", "1.0", tag="cp312-cp312-win_amd64"), sdist=True)
    pypi_upstream.add(Dist("srconly", "1.0"), wheel=False, sdist=True)
    msg = await refused(tmp_path, pypi_upstream.url, profile("native"))
    assert "native <- the profile (no file installs here)" in msg, msg
    assert (
        f"native 1.0: no wheel fits {PY312} (wheels for: cp312-cp312-win_amd64), and sdists are not allowed "
        '(sdist = "never"); set sdist = "fallback" in [pypi] to take native-1.0.tar.gz'
    ) in msg, msg
    msg = await refused(tmp_path, pypi_upstream.url, profile("srconly"))
    assert 'srconly 1.0: no wheel at all, and sdists are not allowed (sdist = "never")' in msg, msg
    text = profile("srconly", extra='sdist = "fallback"\nsdist-allowed = ["other"]\n')
    msg = await refused(tmp_path, pypi_upstream.url, text)
    assert "srconly 1.0: no wheel at all, and sdist-allowed does not name srconly; add it to take" in msg, msg


async def test_error_names_a_project_the_upstream_does_not_list(
    pypi_upstream: FixtureUpstream, tmp_path: Path
) -> None:
    msg = await refused(tmp_path, pypi_upstream.url, profile("nosuch"))
    assert "nosuch <- the profile (no file installs here)" in msg
    assert "nosuch: the upstream lists no such project (no wheel, no sdist)" in msg, msg


def test_cli_prints_the_reason_and_writes_nothing(
    pypi_upstream: FixtureUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pypi_upstream.add(Dist("app", "1.0", requires=["lib>=2"]))
    pypi_upstream.add(Dist("lib", "2.0", requires_python=">=3.12"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(f'[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n')
    write_profile(tmp_path, profile("app", python='"3.11"'))
    result = CliRunner().invoke(app, ["-q", "lock", "web"])
    assert result.exit_code == 1, result.output
    assert "lib 2.0: requires-python >=3.12 excludes Python 3.11.0" in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "profiles" / "web.lock").exists()


def test_cli_notes_a_prerelease_taken_because_no_final_release_fits(
    pypi_upstream: FixtureUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate_pre(pypi_upstream)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(f'[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n')
    write_profile(tmp_path, profile("onlypre"))
    result = CliRunner().invoke(app, ["lock", "web"])
    assert result.exit_code == 0, result.output
    assert "onlypre 1.0b2 is a pre-release, locked because no final release satisfies onlypre" in result.output
    assert CliRunner().invoke(app, ["lock", "--check"]).exit_code == 0
