"""The [go] profile table (mirrorctl/ecosystems/go/profile.py), read through the core's profile loader: module
arguments split and checked with Go's rules (queries the go command answers from a proxy, checked against the
real go on a file:// proxy), go-mod inputs parsed with their go.sum noted, toolchains per platform; every
refusal names file, field and line and leaves the profile as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from mirrorctl.ecosystems.base import Ecosystem, ProfileSource
from mirrorctl.ecosystems.go.profile import GoSpec, parse_module_arg, parse_spec
from mirrorctl.errors import ProfileError
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.go_modules import GoModule, write_proxy
from tests.fixtures.go_tools import go_env, run_go


class _GoOnly:
    """Stands in for the adapter, which is not registered yet: the profile loader calls parse_profile."""

    name = "go"

    def parse_profile(self, table: Any, source: ProfileSource) -> GoSpec:
        return parse_spec(table, source)


def load(tmp_path: Path, text: str) -> GoSpec:
    path = tmp_path / "profiles" / "svc.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    spec = load_profile(path, {"go": cast(Ecosystem, _GoOnly())}).specs["go"]
    assert isinstance(spec, GoSpec)
    return spec


GOOD = """\
[go]
modules = [
    "github.com/spf13/cobra@v1.10.2",
    "golang.org/x/sync@latest",
    "example.com/m@v1",
    "example.com/m@<v1.5",
    "example.com/Up/v2@v2.1.0",
    "example.com/old@v3.0.0+incompatible",
    "example.com/p@v0.0.0-20260102030405-abcdef123456",
]
go-mod = ["../app/go.mod"]
toolchains = ["go1.27.3"]
platforms = ["linux-amd64", "linux-arm64"]
"""


def test_good_profile(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "go.mod").write_text("module example.com/app\n\ngo 1.22\n\nrequire example.com/m v1.4.0\n")
    (tmp_path / "app" / "go.sum").write_text("example.com/m v1.4.0/go.mod h1:abc=\n")
    spec = load(tmp_path, GOOD)
    assert [(m.path, m.kind, m.version, m.op) for m in spec.modules] == [
        ("github.com/spf13/cobra", "version", "v1.10.2", ""),
        ("golang.org/x/sync", "latest", "", ""),
        ("example.com/m", "prefix", "v1", ""),
        ("example.com/m", "range", "v1.5", "<"),
        ("example.com/Up/v2", "version", "v2.1.0", ""),
        ("example.com/old", "version", "v3.0.0+incompatible", ""),
        ("example.com/p", "version", "v0.0.0-20260102030405-abcdef123456", ""),
    ]
    assert spec.modules[3].origin.endswith("go.modules[3] (line 6)")
    (gomod,) = spec.gomods
    assert gomod.gomod.module == "example.com/app"
    assert gomod.gosum is not None and gomod.gosum.resolve() == tmp_path / "app" / "go.sum"
    assert [r.path for r in gomod.gomod.require] == ["example.com/m"]
    assert gomod.sums is not None and gomod.sums.hashes("example.com/m", "v1.4.0", gomod=True) == ("h1:abc=",)
    assert [(t.version, t.module_version) for t in spec.toolchains] == [
        ("go1.27.3", "v0.0.1-go1.27.3.linux-amd64"),
        ("go1.27.3", "v0.0.1-go1.27.3.linux-arm64"),
    ]
    assert spec.target_ids() == ()


BAD = {
    "unknown key": ('[go]\nmodules = ["example.com/m@v1.0.0"]\nvendor = true\n', "go.vendor (line 3)", "unknown key"),
    "nothing": ("[go]\n", "go.modules", "missing"),
    "no query": ('[go]\nmodules = ["example.com/m"]\n', "go.modules[0] (line 2)", "names no query"),
    "bad path": ('[go]\nmodules = ["Example.com/m@v1.0.0"]\n', "go.modules[0] (line 2)", "malformed module path"),
    "no dot": ('[go]\nmodules = ["localhost/m@v1.0.0"]\n', "go.modules[0]", "missing dot in first path element"),
    "major": ('[go]\nmodules = ["example.com/m/v2@v1.0.0"]\n', "go.modules[0]", "should be v2, not v1"),
    "v2 no suffix": ('[go]\nmodules = ["example.com/m@v2.0.0"]\n', "go.modules[0]", "should be v0 or v1, not v2"),
    "branch": (
        '[go]\nmodules = [\n  "example.com/m@v1.0.0",\n  "example.com/m@master",\n]\n',
        "go.modules[1] (line 4)",
        "branch or commit",
    ),
    "upgrade": ('[go]\nmodules = ["example.com/m@upgrade"]\n', "go.modules[0]", "needs a version already required"),
    "bad range": ('[go]\nmodules = ["example.com/m@<1.5"]\n', "go.modules[0]", "invalid semantic version"),
    "ambiguous": ('[go]\nmodules = ["example.com/m@<=v1.5"]\n', "go.modules[0]", "ambiguous semantic version"),
    "twice": ('[go]\nmodules = ["example.com/m@v1", "example.com/m@v1"]\n', "go.modules[1]", "listed twice"),
    "not a list": ('[go]\nmodules = "example.com/m@v1"\n', "go.modules (line 2)", "non-empty list"),
    "go-mod missing": ('[go]\ngo-mod = ["../none/go.mod"]\n', "go.go-mod[0] (line 2)", "not found"),
    "go-mod not go.mod": ('[go]\ngo-mod = ["../app"]\n', "go.go-mod[0]", "is not a go.mod file"),
    "go-mod bad line": ('[go]\ngo-mod = ["../bad/go.mod"]\n', "go.go-mod[0]", "go.mod:2: unknown directive"),
    "go-sum bad line": ('[go]\ngo-mod = ["../sum/go.mod"]\n', "go.go-mod[0]", "go.sum:2: malformed go.sum"),
    "toolchain": (
        '[go]\ntoolchains = ["1.27.3"]\nplatforms = ["linux-amd64"]\n',
        "go.toolchains[0]",
        "not a Go release",
    ),
    "platform": ('[go]\ntoolchains = ["go1.27.3"]\nplatforms = ["linux-x64"]\n', "go.platforms[0]", "unknown platform"),
    "no platforms": ('[go]\ntoolchains = ["go1.27.3"]\n', "go.platforms", "missing"),
    "platforms alone": (
        '[go]\nmodules = ["example.com/m@v1"]\nplatforms = ["linux-amd64"]\n',
        "go.platforms",
        "only to toolchains",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_refusals_name_file_field_and_line(case: str, tmp_path: Path) -> None:
    text, where, reason = BAD[case]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "go.mod").write_text("module example.com/bad\nfrobnicate\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "sum").mkdir()
    (tmp_path / "sum" / "go.mod").write_text("module example.com/sum\n")
    (tmp_path / "sum" / "go.sum").write_text("example.com/m v1.0.0 h1:a=\nexample.com/m v1.0.0\n")
    with pytest.raises(ProfileError) as err:
        load(tmp_path, text)
    message = str(err.value)
    assert f"svc.toml: {where}" in message and reason in message, message
    assert err.value.exit_code == 2
    assert (tmp_path / "profiles" / "svc.toml").read_text() == text
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == ["svc.toml"]


QUERIES = [
    "latest",
    "v1",
    "v1.4",
    "v1.4.0",
    "<v1.5",
    "<v1.5.0",
    "<=v1.4.0",
    ">v1.0.0",
    ">=v1.4",
    ">=v1.0.0-rc.1",
    "v1.0.0+meta",
    "<=v1.5",
    ">v1",
    "<1.5",
    "master",
    "v1.4.0-0.20260102030405-abcdef123456",
]


def test_queries_we_accept_are_ones_go_resolves_from_a_proxy(tmp_path: Path) -> None:
    mods = [GoModule("example.com/m", v, {"m.go": "package m\n"}) for v in ("v1.0.0", "v1.4.0", "v1.5.0")]
    mods.append(GoModule("example.com/m", "v1.4.0-0.20260102030405-abcdef123456", {"m.go": "package m\n"}))
    proxy = write_proxy(tmp_path / "proxy", mods)
    work = tmp_path / "main"
    work.mkdir()
    (work / "go.mod").write_text("module main.test/app\n\ngo 1.21\n")
    env = go_env(tmp_path / "home", proxy=f"file://{proxy}")
    verdicts = []
    for q in QUERIES:
        try:
            parse_module_arg(f"example.com/m@{q}", "t")
            ours = True
        except ProfileError:
            ours = False
        done = run_go(["list", "-m", f"example.com/m@{q}"], work, env, check=False)
        theirs = done.returncode == 0
        verdicts.append((q, ours, theirs, done.stderr.strip()))
    # every query we accept, go resolves; every one we refuse, go refuses (a branch name included: no VCS here)
    assert [v for v in verdicts if v[1] != v[2]] == [], verdicts


def test_platforms_are_ones_go_knows(tmp_path: Path) -> None:
    from mirrorctl.ecosystems.go.profile import PLATFORMS

    done = run_go(["tool", "dist", "list"], tmp_path, go_env(tmp_path / "home"))
    known = {line.replace("/", "-") for line in done.stdout.split()}
    assert PLATFORMS <= known, PLATFORMS - known
