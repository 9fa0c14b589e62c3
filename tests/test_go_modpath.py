"""Go module paths, escaping, semver and pseudo-versions (mirrorctl/ecosystems/go/modpath.py), each verdict
compared with the go command's own module library on a table of tricky inputs (tests/fixtures/go_tools.py
builds it from the installed Go), plus the errors mirrorctl raises."""

from __future__ import annotations

import itertools

import pytest

from mirrorctl.ecosystems.go import modpath
from mirrorctl.ecosystems.go.modpath import InvalidPath, InvalidVersion
from mirrorctl.errors import UserError
from tests.fixtures.go_tools import Oracle, shared_oracle


@pytest.fixture(scope="module")
def go_oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    return shared_oracle(tmp_path_factory)


PATHS = [
    "github.com/spf13/cobra",
    "golang.org/x/sync",
    "example.com",
    "example.com/",
    "/example.com",
    "example",
    "Example.com/m",
    "example.com/M",
    "example.com/m/v2",
    "example.com/m/v1",
    "example.com/m/v0",
    "example.com/m/v02",
    "example.com/m/v2.1",
    "example.com/v2",
    "example.com/m/V2",
    "gopkg.in/yaml.v3",
    "gopkg.in/yaml.v0",
    "gopkg.in/yaml.v1",
    "gopkg.in/yaml.v03",
    "gopkg.in/yaml",
    "gopkg.in/check.v1-unstable",
    "gopkg.in/yaml.v3/sub",
    "gopkg.in/user/pkg.v2",
    "-example.com",
    "exa_mple.com/m",
    "example.com//m",
    "example.com/./m",
    "example.com/../m",
    "example.com/.m",
    "example.com/m.",
    "example.com/m~1",
    "example.com/m~a",
    "example.com/~1a",
    "example.com/con",
    "example.com/CON.txt",
    "example.com/com1x",
    "example.com/lpt9.x",
    "example.com/a+b",
    "example.com/a b",
    "example.com/a@b",
    "example.com/é",
    "exa~mple.com/m",
    "example.com/-m",
    "example.com/a\\b",
    "example.com/a:b",
    "ex-ample.com/m/v10",
    "example.com/m/v2/",
    "example.com/m/v2/sub",
    "x.y",
    ".",
    "..",
    "...com/m",
    "example.com/...",
    "",
    "example.com/m/vv2",
    "example.com/m/v",
    "example.com/m/v20000000000000000000",
    "1.2.3.4/m",
    "a.b/c~",
    "example.com/!m",
    "example.com/m\n",
    "example.com/\x00",
    "example.com/v2.0",
    "example.com/m/v1.0",
    "gopkg.in/yaml.v2-unstable",
    "gopkg.in/a.b.v1",
    "gopkg.in/.v1",
    "example.com/aux/x",
    "example.com/nul.",
]
VERSIONS = [
    "v1",
    "v1.2",
    "v1.2.3",
    "v0.0.0",
    "v01.2.3",
    "v1.02.3",
    "v1.2.03",
    "1.2.3",
    "V1.2.3",
    "v1.2.3-pre",
    "v1.2.3-pre.1",
    "v1.2.3-01",
    "v1.2.3-0",
    "v1.2.3-pre.01",
    "v1.2.3-pre..1",
    "v1.2.3-",
    "v1.2.3+build",
    "v1.2.3+build.01",
    "v1.2.3+",
    "v1.2.3-pre+build",
    "v1.2-pre",
    "v1.2+build",
    "v2.0.0+incompatible",
    "v1.2.3-a.b.c",
    "v1.2.3-a_b",
    "v1.2.3.4",
    "v",
    "",
    "v1.2.3-0.20191109021931-daa7c04131f5",
    "v0.0.0-20191109021931-daa7c04131f5",
    "v1.2.3-pre.0.20191109021931-daa7c04131f5",
    "v2.0.1-0.20191109021931-daa7c04131f5+incompatible",
    "v0.0.0-20191109021931-daa7c04131f5+incompatible",
    "v1.0.0-0.20191109021931-daa7c04131f5",
    "v1.2.3-0.2019110902193-daa7c04131f5",
    "v1.2.3-0.20191109021931-",
    "v1.2.3-1.20191109021931-daa7c04131f5",
    "v10.0.0-20191109021931-abc",
    "v1.2.3-x.0.20191109021931-ab+incompatible",
    "v1.2.3\n",
    "v1.2.3 ",
    "v1.2.3-0.29991399999999-ab",
    "latest",
    "master",
    "v1.2.3-rc.1",
    "v1.2.3-rc.2",
    "v1.2.3-rc.10",
    "v1.2.3-alpha",
    "v1.2.3-alpha.1",
    "v1.2.3-alpha.beta",
    "v1.2.3-beta",
    "v1.2.3-beta.11",
    "v1.10.0",
    "v1.9.0",
    "v11.0.0",
    "v1.2.3-1",
    "v1.2.3-1a",
    "v1.2.3-a1",
    "v1.2.3-A",
    "v1.2.3-!",
    "v1.2.3-é",
    "v1.0.0-00000000000000-000000000000",
]


def _ok(check: object, *args: str) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except UserError:
        return False
    return True


def _same(oracle: Oracle, op: str, cases: list[tuple[str, ...]], ours: object) -> None:
    answers = oracle.ask([{"op": op, "a": c[0], "b": c[1] if len(c) > 1 else ""} for c in cases])
    wrong = []
    for case, answer in zip(cases, answers, strict=True):
        mine = ours(*case)  # type: ignore[operator]
        theirs = answer["ok"] if isinstance(mine, bool) else (answer["out"] if answer["ok"] else None)
        if op == "compare":
            theirs = answer["int"]
        if mine != theirs:
            wrong.append((case, mine, theirs, answer["err"]))
    assert not wrong, f"{op}: mirrorctl differs from Go on {wrong}"


def test_module_paths_match_go(go_oracle: Oracle) -> None:
    cases = [(p,) for p in PATHS]
    _same(go_oracle, "checkpath", cases, lambda p: _ok(modpath.check_path, p))
    _same(go_oracle, "checkimport", cases, lambda p: _ok(modpath.check_import_path, p))
    _same(
        go_oracle,
        "checkfile",
        [*cases, ("a b/c#d!e",), ("-x",), ("x/ü",), ("x/😀",)],
        lambda p: _ok(modpath.check_file_path, p),
    )


def test_split_path_version_matches_go(go_oracle: Oracle) -> None:
    def ours(p: str) -> str | None:
        s = modpath.split_path_version(p)
        return None if s is None else f"{s[0]}|{s[1]}"

    _same(go_oracle, "split", [(p,) for p in PATHS if p], ours)


def test_path_and_version_together_match_go(go_oracle: Oracle) -> None:
    paths = [
        "example.com/m",
        "example.com/m/v2",
        "example.com/m/v3",
        "gopkg.in/yaml.v1",
        "gopkg.in/yaml.v2",
        "gopkg.in/check.v1-unstable",
        "gopkg.in/yaml.v0",
        "Example.com/m",
    ]
    versions = [
        "v1.2.3",
        "v0.1.0",
        "v2.0.0",
        "v2.0.0+incompatible",
        "v3.1.0",
        "v0.0.0-20191109021931-daa7c04131f5",
        "v2.0.1-0.20191109021931-daa7c04131f5",
        "v1.0.0-rc.1",
        "v2",
        "junk",
        "v1.2.3+meta",
    ]
    _same(go_oracle, "check", list(itertools.product(paths, versions)), lambda p, v: _ok(modpath.check, p, v))


def test_escaping_matches_go(go_oracle: Oracle) -> None:
    paths = [(p,) for p in [*PATHS, "github.com/BurntSushi/toml", "github.com/Azure/Go-SDK/v2"]]
    _same(go_oracle, "escapepath", paths, lambda p: _none(modpath.escape_path, p))
    escaped = [
        ("github.com/!burnt!sushi/toml",),
        ("github.com/!Burnt",),
        ("github.com/!",),
        ("github.com/a!1",),
        ("github.com/Abc",),
        ("example.com/!!m",),
        ("github.com/!m/v2",),
        ("example.com/é",),
    ]
    _same(go_oracle, "unescapepath", escaped + paths, lambda p: _none(modpath.unescape_path, p))
    versions = [(v,) for v in [*VERSIONS, "v1.0.0-RC1", "v1.0.0-!x", "v1.0.0/x", "v1.0.0-rc1"]]
    _same(go_oracle, "escapeversion", versions, lambda v: _none(modpath.escape_version, v))
    _same(
        go_oracle,
        "unescapeversion",
        [*versions, ("v1.0.0-!rc1",), ("v1.0.0-!",)],
        lambda v: _none(modpath.unescape_version, v),
    )


def _none(fn: object, arg: str) -> str | None:
    try:
        return fn(arg)  # type: ignore[operator,no-any-return]
    except UserError:
        return None


def test_semver_matches_go(go_oracle: Oracle) -> None:
    cases = [(v,) for v in VERSIONS]
    _same(go_oracle, "valid", cases, modpath.is_valid)
    _same(go_oracle, "canonical", cases, lambda v: modpath.canonical_version(v))
    _same(go_oracle, "pseudo", cases, modpath.is_pseudo)
    _same(
        go_oracle,
        "pseudobase",
        [c for c in cases if modpath.is_pseudo(c[0])] + [("v1.2.3",)],
        lambda v: _none(modpath.pseudo_base, v),
    )


def test_compare_matches_go_on_every_pair(go_oracle: Oracle) -> None:
    _same(go_oracle, "compare", list(itertools.product(VERSIONS, VERSIONS)), modpath.compare)


def test_sort_key_orders_as_go() -> None:
    got = sorted(
        [
            "v1.10.0",
            "v1.2.3",
            "v1.2.3-rc.10",
            "v1.2.3-rc.2",
            "junk",
            "v1.2.3-0.20191109021931-daa7c04131f5",
            "v1.2.2",
            "v2.0.0+incompatible",
            "v1.2",
        ],
        key=modpath.sort_key,
    )
    assert got == [
        "junk",
        "v1.2",
        "v1.2.2",
        "v1.2.3-0.20191109021931-daa7c04131f5",
        "v1.2.3-rc.2",
        "v1.2.3-rc.10",
        "v1.2.3",
        "v1.10.0",
        "v2.0.0+incompatible",
    ]


def test_errors_carry_kind_value_and_reason() -> None:
    with pytest.raises(InvalidPath) as err:
        modpath.check_path("Example.com/m")
    assert (err.value.kind, err.value.path, err.value.reason) == (
        "module",
        "Example.com/m",
        "invalid char 'E' in first path element",
    )
    assert str(err.value) == "malformed module path 'Example.com/m': invalid char 'E' in first path element"
    assert err.value.exit_code == 2
    with pytest.raises(InvalidVersion, match="should be v2, not v1"):
        modpath.check("example.com/m/v2", "v1.0.0")
    with pytest.raises(InvalidVersion, match=r"pseudo-version .* negative patch"):
        modpath.pseudo_base("v1.0.0-0.20191109021931-daa7c04131f5")
    with pytest.raises(InvalidPath) as long:
        modpath.check_path("example.com/" + "A" * 5000 + "\x00")
    assert len(str(long.value)) < 400


def test_pseudo_parts_and_timestamp() -> None:
    v = "v1.2.4-0.20191109021931-daa7c04131f5+incompatible"
    assert modpath.pseudo_parts(v) == ("20191109021931", "daa7c04131f5", "+incompatible")
    assert modpath.pseudo_base(v) == "v1.2.3+incompatible"
    assert modpath.pseudo_timestamp_valid(v)
    assert not modpath.pseudo_timestamp_valid("v1.2.3-0.29991399999999-ab")
    with pytest.raises(InvalidVersion):
        modpath.pseudo_parts("v1.2.3")


def test_proxy_paths_are_safe_artifact_paths_and_round_trip() -> None:
    from mirrorctl.lockfile import check_path

    cases = [
        ("github.com/BurntSushi/toml", "v1.3.2", "zip", "github.com/!burnt!sushi/toml/@v/v1.3.2.zip"),
        ("example.com/m/v2", "v2.0.0-RC1", "info", "example.com/m/v2/@v/v2.0.0-!r!c1.info"),
        ("example.com/old", "v3.0.0+incompatible", "mod", "example.com/old/@v/v3.0.0+incompatible.mod"),
        ("gopkg.in/yaml.v3", "v3.0.1", "zip", "gopkg.in/yaml.v3/@v/v3.0.1.zip"),
    ]
    for module, version, ext, want in cases:
        got = modpath.proxy_path(module, version, ext)
        assert got == want
        check_path(got, f"go {module} {version}")
        assert modpath.parse_proxy_path(got) == (module, version, ext)
    assert modpath.parse_proxy_path("example.com/!m/@v/list") == ("example.com/M", None, "list")
    assert modpath.parse_proxy_path("example.com/!m/@latest") == ("example.com/M", None, "latest")
    # two modules differing only by case have paths that differ under casefold too
    a, b = modpath.proxy_path("example.com/M", "v1.0.0", "zip"), modpath.proxy_path("example.com/m", "v1.0.0", "zip")
    assert a.casefold() != b.casefold()


@pytest.mark.parametrize(
    "path",
    [
        "example.com/M/@v/v1.0.0.zip",
        "example.com/m/@v/v1.0.zip",
        "example.com/m/@v/v1.0.0.tgz",
        "example.com/m/x",
        "example.com/m/@v/v2.0.0.zip",
        "example.com/m/@v/../v1.0.0.zip",
        "example.com/m/@v/v1.0.0-!.zip",
        "../m/@v/v1.0.0.zip",
        "example.com/m/@v/V1.0.0.zip",
    ],
)
def test_parse_proxy_path_refuses_what_a_proxy_does_not_serve(path: str) -> None:
    with pytest.raises(UserError):
        modpath.parse_proxy_path(path)


def test_proxy_path_refuses_non_canonical_and_mismatched_versions() -> None:
    with pytest.raises(InvalidVersion, match="not canonical"):
        modpath.proxy_path("example.com/m", "v1.2", "zip")
    with pytest.raises(InvalidVersion, match="should be v0 or v1"):
        modpath.proxy_path("example.com/m", "v2.0.0", "zip")
    with pytest.raises(ValueError):
        modpath.proxy_path("example.com/m", "v1.0.0", "tgz")
