"""The go.mod parser (mirrorctl/ecosystems/go/gomodfile.py): on fixture go.mod files every field equals what
the real `go mod edit -json` reports (module, go, toolchain, require with indirect, exclude, replace in both
forms, retract with rationale); line numbers are kept; lines the go command refuses are refused naming the
file and line, the input file unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mirrorctl.ecosystems.go.gomodfile import GoMod, GoModError, parse
from tests.fixtures.go_tools import go_env, run_go

FIXTURES = {
    "blocks": """\
// Package comment
// Deprecated: use example.com/new instead.
module example.com/team/app

go 1.22.1

toolchain go1.23.4

require (
	github.com/spf13/cobra v1.10.2
	golang.org/x/sync v0.7.0 // indirect
	example.com/Upper/Case v0.2.0-rc.1 // indirect; needed by tests
	example.com/two/v2 v2.3.0
	example.com/old v3.0.0+incompatible
	example.com/pseudo v0.0.0-20260102030405-abcdef123456 //indirect
)

require "example.com/quoted" "v1.0.0"

exclude example.com/two/v2 v2.2.0

exclude (
	github.com/spf13/cobra v1.9.0
)

replace example.com/pseudo => ../pseudo

replace (
	example.com/old v3.0.0+incompatible => example.com/fork v1.1.0
	golang.org/x/sync => ./vendor-sync // local
	example.com/abs => /srv/abs
)

// Published by mistake.
retract v1.0.1

retract (
	// Broken builds.
	[v1.1.0, v1.1.5]
	v1.2.0 // leaks memory
)

retract [v0.9.0, v0.9.9]

godebug default=go1.21
""",
    "single": """\
module example.com/m
go 1.21
require example.com/dep v1.2
""",
    "bare": "module example.com/bare\n",
}


def _go_json(tmp_path: Path, name: str, text: str) -> dict[str, Any]:
    work = tmp_path / name
    work.mkdir()
    (work / "go.mod").write_text(text)
    done = run_go(["mod", "edit", "-json"], work, go_env(tmp_path / "home"))
    return dict(json.loads(done.stdout))


def _ours_as_go_json(mod: GoMod) -> dict[str, Any]:
    out: dict[str, Any] = {"Module": {"Path": mod.module}}
    if mod.deprecated:
        out["Module"]["Deprecated"] = mod.deprecated
    if mod.go:
        out["Go"] = mod.go
    if mod.toolchain:
        out["Toolchain"] = mod.toolchain
    if mod.require:
        out["Require"] = [
            {"Path": r.path, "Version": r.version, **({"Indirect": True} if r.indirect else {})} for r in mod.require
        ]
    if mod.exclude:
        out["Exclude"] = [{"Path": e.path, "Version": e.version} for e in mod.exclude]
    if mod.replace:
        out["Replace"] = [
            {
                "Old": {"Path": r.old_path, **({"Version": r.old_version} if r.old_version else {})},
                "New": {"Path": r.new_path, **({"Version": r.new_version} if r.new_version else {})},
            }
            for r in mod.replace
        ]
    if mod.retract:
        out["Retract"] = [
            {"Low": r.low, "High": r.high, **({"Rationale": r.rationale} if r.rationale else {})} for r in mod.retract
        ]
    return out


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fields_equal_go_mod_edit_json(name: str, tmp_path: Path) -> None:
    theirs = {k: v for k, v in _go_json(tmp_path, name, FIXTURES[name]).items() if v is not None}
    theirs.pop("GoDebug", None)
    theirs.pop("Tool", None)
    theirs.pop("Ignore", None)
    ours = _ours_as_go_json(parse(FIXTURES[name].encode(), f"{name}/go.mod"))
    assert ours == theirs


def test_lines_local_replacements_and_rationale() -> None:
    mod = parse(FIXTURES["blocks"].encode(), "app/go.mod")
    assert mod.module_line == 3
    assert {r.path: r.line for r in mod.require}["golang.org/x/sync"] == 11
    local = [(r.old_path, r.new_path, r.line) for r in mod.replace if r.local]
    assert local == [
        ("example.com/pseudo", "../pseudo", 26),
        ("golang.org/x/sync", "./vendor-sync", 30),
        ("example.com/abs", "/srv/abs", 31),
    ]
    assert [(r.low, r.high, r.rationale) for r in mod.retract] == [
        ("v1.0.1", "v1.0.1", "Published by mistake."),
        ("v1.1.0", "v1.1.5", "Broken builds."),
        ("v1.2.0", "v1.2.0", "leaks memory"),
        ("v0.9.0", "v0.9.9", ""),
    ]


def test_lax_mode_ignores_what_go_ignores_in_a_dependency() -> None:
    text = FIXTURES["blocks"] + "\nfuturedirective x\n"
    mod = parse(text.encode(), "dep/go.mod", strict=False)
    assert mod.replace == () and mod.exclude == ()
    assert len(mod.require) == 7


BAD = {
    "unknown": ("module example.com/m\nfrobnicate x\n", 2, "unknown directive: frobnicate"),
    "bad version": ("module example.com/m\nrequire example.com/d 1.2.3\n", 2, "must be of the form v1.2.3"),
    "major mismatch": ("module example.com/m\nrequire example.com/d/v2 v1.0.0\n", 2, "should be v2, not v1"),
    "v2 without suffix": ("module example.com/m\nrequire example.com/d v2.0.0\n", 2, "should be v0 or v1, not v2"),
    "bad path": ("module example.com/m\nrequire example.com//d v1.0.0\n", 2, "double slash"),
    "unterminated block": (
        "module example.com/m\nrequire (\n\texample.com/d v1.0.0\n",
        4,
        "unterminated require block started at line 2",
    ),
    "replace without version": ("module example.com/m\nreplace a.com/x => b.com/y\n", 2, "must be directory path"),
    "bad go": ("module example.com/m\ngo 1.21.x\n", 2, "invalid go version"),
    "usage": ("module example.com/m\nrequire example.com/d\n", 2, "usage: require"),
    "backquote": ("module example.com/m\nrequire example.com/d `v1.0.0`\n", 2, "cannot contain quote"),
    "two modules": ("module example.com/m\nmodule example.com/n\n", 2, "repeated module"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_refusals_name_file_and_line_as_go_refuses(case: str, tmp_path: Path) -> None:
    text, line, reason = BAD[case]
    path = tmp_path / case / "go.mod"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(GoModError) as err:
        parse(path.read_bytes(), "team/go.mod")
    assert (err.value.source, err.value.line) == ("team/go.mod", line)
    assert str(err.value).startswith(f"team/go.mod:{line}: ") and reason in str(err.value)
    assert err.value.exit_code == 2
    assert path.read_text() == text
    done = run_go(["mod", "edit", "-json"], path.parent, go_env(tmp_path / "home"), check=False)
    assert done.returncode != 0, f"go accepts {case!r}: {done.stdout}"
