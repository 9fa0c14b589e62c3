"""The PyPI resolver's search at scale: pip's preference order, the causes of a conflict first, and a search
that cannot finish stopped by the ``[lock]`` bound with a message naming the projects in conflict (issue 14)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.config import LockSettings, load_settings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.ecosystems.pypi.resolver import Req, TargetProvider
from mirrorctl.ecosystems.pypi.search import SearchStopped, SearchWatch, stop_message
from mirrorctl.ecosystems.pypi.spec import PypiSpec
from mirrorctl.ecosystems.pypi.targets import Target
from mirrorctl.errors import UserError
from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    FixtureUpstream,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist

TARGET = Target("3.11", "manylinux_2_28_x86_64")


def provider(requirements: list[str], constraints: list[str] = ()) -> TargetProvider:  # type: ignore[assignment]
    spec = PypiSpec(
        requirements=tuple(Requirement(r) for r in requirements),
        constraints=tuple(Requirement(c) for c in constraints),
        pythons=("3.11",),
        platforms=("manylinux_2_28_x86_64",),
    )
    return TargetProvider(spec, TARGET, index=None, bridge=None)  # type: ignore[arg-type]


def info(name: str, specifier: str = "", parent: object = None) -> SimpleNamespace:
    req = Req(name, frozenset(), SpecifierSet(specifier), f"{name}{specifier}")  # type: ignore[arg-type]
    return SimpleNamespace(requirement=req, parent=parent)


def order(p: TargetProvider, infos: dict[str, list[SimpleNamespace]]) -> list[str]:
    def key(ident: str) -> object:
        return p.get_preference(ident, {}, {}, {k: iter(v) for k, v in infos.items()}, [])

    return sorted(infos, key=key)


def test_preference_is_pips_pinned_then_upper_bounded_then_profile_order() -> None:
    p = provider(["zeta", "alpha", "mid"])
    infos = {
        "alpha": [info("alpha")],
        "zeta": [info("zeta")],
        "mid": [info("mid", ">=1")],
        "bounded": [info("bounded", "<3")],
        "pinned": [info("pinned", "==1.0")],
        "wild": [info("wild", "==1.*")],  # a wildcard is an upper bound, not a pin
        "free": [info("free")],
        "ranged": [info("ranged", ">=2")],
    }
    # Pinned, then upper-bounded (alphabetical among equals), then the profile's order as written
    # (zeta before alpha: not alphabetical), then those with an operator, then the rest by name.
    assert order(p, infos) == ["pinned", "bounded", "wild", "zeta", "alpha", "mid", "ranged", "free"]


def test_a_constraint_counts_as_a_pin() -> None:
    p = provider(["alpha", "beta"], constraints=["beta==2.0"])
    assert order(p, {"alpha": [info("alpha")], "beta": [info("beta")]}) == ["beta", "alpha"]


def test_the_causes_of_the_last_conflict_are_decided_first() -> None:
    p = provider(["a", "b", "c"])
    parent = SimpleNamespace(name="b", extras=frozenset())
    causes = [info("c", "<2", parent=parent)]
    chosen = p.narrow_requirement_selection(["a", "b", "c", "d"], {}, {}, {}, causes)
    assert list(chosen) == ["b", "c"]
    assert list(p.narrow_requirement_selection(["a", "d"], {}, {}, {}, causes)) == ["a", "d"]
    assert list(p.narrow_requirement_selection(["a", "d"], {}, {}, {}, [])) == ["a", "d"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_watch_notes_what_it_backtracks_on_and_stops_at_max_seconds() -> None:
    clock, notes = Clock(), []
    watch = SearchWatch("t1", LockSettings(max_rounds=1000, max_seconds=30), note=notes.append, every=5, clock=clock)
    watch.starting()
    watch.resolving_conflicts([info("lib", "<2", parent=SimpleNamespace(name="other", extras=frozenset()))])
    for _ in range(3):
        watch.rejecting_candidate(None, SimpleNamespace(name="app"))
    watch.rejecting_candidate(None, SimpleNamespace(name="lib"))
    clock.now += 6
    watch.starting_round(16)
    assert notes == [
        "pypi t1: still resolving after 6 s, round 17; backtracking (1 conflicts so far), "
        "in conflict: lib (1), other (1); "
        "candidates rejected: app (3), lib (1)"
    ]
    watch.starting_round(17)  # not a 16th round: the clock is not even read
    clock.now += 30
    with pytest.raises(SearchStopped) as stop:
        watch.starting_round(32)
    message, hint = stop_message(stop.value.watch, stop.value.bound, lambda c: c.requirement.text)
    assert "stopped after 33 rounds and 36 s of backtracking ([lock] max-seconds = 30 in mirrorctl.toml)" in message
    assert (
        "backtracked on (1 conflicts): in conflict: lib (1), other (1); candidates rejected: app (3), lib (1)"
        in message
    )
    assert "the last conflict:\n    lib<2" in message
    assert "constrain the projects in conflict (lib, other)" in hint and "max-rounds / max-seconds" in hint


def test_no_time_bound_when_max_seconds_is_zero() -> None:
    clock = Clock()
    watch = SearchWatch("t1", LockSettings(max_rounds=1000, max_seconds=0), clock=clock)
    watch.starting()
    clock.now += 10**6
    watch.starting_round(16)  # no SearchStopped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[lock]\nmax-rounds = 10\n", "lock.max-rounds must be an integer >= 100, got 10"),
        ("[lock]\nmax-seconds = -1\n", "lock.max-seconds must be an integer >= 0, got -1"),
        ('[lock]\nmax-seconds = "1h"\n', "lock.max-seconds must be an integer >= 0"),
        ("[lock]\nrounds = 5\n", "unknown setting lock.rounds"),
        ("lock = 5\n", "[lock] must be a table"),
    ],
)
def test_lock_settings_are_validated(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    cfg.write_text(text)
    with pytest.raises(UserError) as err:
        load_settings(cfg, ecosystems=load_ecosystems())
    assert message in err.value.message and str(cfg) in err.value.message


def test_lock_settings_are_read(tmp_path: Path) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    cfg.write_text("[lock]\nmax-rounds = 500\nmax-seconds = 0\n")
    assert load_settings(cfg, ecosystems=load_ecosystems()).lock == LockSettings(max_rounds=500, max_seconds=0)
    cfg.write_text("")
    assert load_settings(cfg, ecosystems=load_ecosystems()).lock == LockSettings(max_rounds=20000, max_seconds=600)


N = 60  # versions of app and of tool: each pins its own lib, and no version of one fits one of the other

CONFLICT = """\
[pypi]
requirements = ["app", "tool"]
python = ["3.11"]
platforms = ["manylinux_2_28_x86_64"]
"""


def populate_conflict(up: FixtureUpstream) -> None:
    for k in range(1, N + 1):
        up.add(Dist("app", f"{k}.0", requires=[f"lib=={k}.0"]))
        up.add(Dist("tool", f"{k}.0", requires=[f"lib=={k + 100}.0"]))
        up.add(Dist("lib", f"{k}.0"))
        up.add(Dist("lib", f"{k + 100}.0"))


def test_a_search_that_cannot_finish_stops_at_max_rounds_naming_the_conflict(
    pypi_upstream: FixtureUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate_conflict(pypi_upstream)
    monkeypatch.chdir(tmp_path)
    config = f'[upstreams.pypi]\nurl = "{pypi_upstream.url}"\n\n[lock]\nmax-rounds = 100\n'
    (tmp_path / "mirrorctl.toml").write_text(config)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "web.toml").write_text(CONFLICT)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "profiles").rglob("*"))
    result = CliRunner().invoke(app, ["-q", "lock", "web"])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "pypi target py3.11-manylinux_2_28_x86_64: stopped after 100 rounds" in out
    assert "([lock] max-rounds = 100 in mirrorctl.toml)" in out
    assert re.search(
        r"backtracked on \(\d+ conflicts\): in conflict: app \(\d+\), lib \(\d+\), tool \(\d+\); "
        r"candidates rejected: tool \(\d+\), app \(\d+\)",
        out,
    ), out
    assert re.search(r"lib==\d+\.0 <- app \d+\.0 <- the profile lib==1\d\d\.0 <- tool \d+\.0 <- the profile", out)
    assert "constrain the projects in conflict (lib, app, tool)" in out
    assert "Traceback" not in result.output
    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "profiles").rglob("*"))
    assert after == before, "no lock written"

    # With room to finish, the same search ends in the usual explanation, naming the chain.
    (tmp_path / "mirrorctl.toml").write_text(config.replace("max-rounds = 100", "max-rounds = 5000"))
    result = CliRunner().invoke(app, ["-q", "lock", "web"])
    assert result.exit_code == 1, result.output
    assert "no consistent set of versions" in result.output and "<- tool 1.0 <- the profile" in result.output


def test_the_stop_message_shows_each_distinct_requirement_of_the_last_conflict_once() -> None:
    watch = SearchWatch("t1", LockSettings(max_rounds=100, max_seconds=0))
    watch.starting()

    def parent(name: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, extras=frozenset())

    many = [info("protobuf", ">=6", parent=parent(f"google-{n}")) for n in range(12)]
    watch.resolving_conflicts([*many, info("protobuf", "<6", parent=parent("dbt-core"))])
    message, hint = stop_message(watch, "[lock] max-rounds = 100", lambda c: f"{c.requirement.text} <- {c.parent.name}")
    assert message.count("protobuf>=6 <- ") == 1 and "protobuf<6 <- dbt-core" in message
    assert hint.startswith("constrain the projects in conflict (protobuf, dbt-core, google-0, ")
    assert '(e.g. "protobuf<X"' in hint


def test_memoized_matching_is_the_plain_filter_in_the_same_order() -> None:
    from mirrorctl.ecosystems.pypi.choice import satisfies

    p = provider(["lib"])
    versions = ["3.0", "2.1", "2.0", "2.0rc1", "1.5", "1.0", "0.9"]
    files = [SimpleNamespace(version=Version(v), filename=f"lib-{v}.whl") for v in versions]
    cases = [[], [""], [">=1"], [">=1", "<2.1"], ["<2.1", ">=1"], ["==2.*", "!=2.0"], [">=1", "<1"], ["~=1.0"]]
    for case in cases + cases:  # the second pass is answered from what the first kept
        specs = [SpecifierSet(s) for s in case]
        want = [f for f in files if satisfies(f.version, specs)]
        assert p._matching("lib", files, specs) == want, case  # type: ignore[arg-type]
    assert len(p._admits) == 6  # one entry per distinct non-empty specifier, whatever the combination


def test_a_project_whose_candidates_keep_being_rejected_is_decided_earlier() -> None:
    p = provider(["black", "mypy", "dbt-core"])
    infos = {n: [info(n)] for n in ("black", "mypy", "dbt-core")} | {"pin": [info("pin", "==1")]}
    assert order(p, infos) == ["pin", "black", "mypy", "dbt-core"]
    p.watch = SearchWatch("t1", LockSettings())
    for _ in range(4):
        p.watch.rejecting_candidate(None, SimpleNamespace(name="dbt-core"))
    assert order(p, infos) == ["pin", "black", "mypy", "dbt-core"]  # a few rejections are ordinary
    p.watch.rejecting_candidate(None, SimpleNamespace(name="dbt-core"))
    assert order(p, infos) == ["pin", "dbt-core", "black", "mypy"]
