"""The [npm] profile table: package arguments split as npm splits them (scoped names, aliases, tags), platforms
checked, package.json / package-lock.json inputs read relative to the profile; every refusal names the file,
the field and the line, exits 2 through the CLI, and writes nothing. Plus the artifact grammar import relies
on (names, versions, tarball file names)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import Ecosystem, load_ecosystems
from mirrorctl.ecosystems.npm import NpmEcosystem
from mirrorctl.ecosystems.npm.spec import NpmSpec, Platform, split_arg, validate_artifact
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.errors import BundleRefused, ProfileError
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.npm_registry import FixtureNpmRegistry, PkgSpec, npm_registry_fixture  # noqa: F401

GOOD = """\
[npm]
packages = [
    "typescript@^5.4",
    "@types/node@20",
    "eslint@latest",
    "left-pad@npm:other@^1",
    "react",
]
platforms = ["linux-x64", "linux-arm64", "darwin-arm64", "win32-x64"]
"""


def ecosystems() -> dict[str, Ecosystem]:
    return {"pypi": PypiEcosystem(), "npm": NpmEcosystem()}


def load(tmp_path: Path, text: str, name: str = "web") -> NpmSpec:
    path = tmp_path / "profiles" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    spec = load_profile(path, ecosystems()).specs["npm"]
    assert isinstance(spec, NpmSpec)
    return spec


def test_good_profile(tmp_path: Path) -> None:
    spec = load(tmp_path, GOOD)
    assert [(r.name, r.spec, r.alias) for r in spec.roots] == [
        ("typescript", "^5.4", None),
        ("@types/node", "20", None),
        ("eslint", "latest", None),
        ("other", "^1", "left-pad"),
        ("react", "", None),
    ]
    assert spec.target_ids() == ["linux-x64", "linux-arm64", "darwin-arm64", "win32-x64"]
    assert spec.include_peer is True
    assert spec.roots[3].label == "left-pad@npm:other@^1"
    assert "web.toml: npm.packages[1] (line 4)" in spec.roots[1].origin


def test_split_arg_like_npm() -> None:
    assert split_arg("@types/node@20") == ("@types/node", "20")
    assert split_arg("@types/node") == ("@types/node", "")
    assert split_arg("left-pad@npm:@scope/other@^1") == ("left-pad", "npm:@scope/other@^1")
    assert split_arg("x@>=1 <2") == ("x", ">=1 <2")


def test_platform_rules() -> None:
    x64 = Platform("linux", "x64")
    assert x64.accepts(["linux"], ["x64"]) and not x64.accepts(["darwin"], ["x64"])
    assert x64.accepts(["!win32"], None) and not x64.accepts(["!linux"], ["x64"])
    assert x64.accepts(None, None), "no os/cpu: every platform"
    # Changed on purpose (issue 13 item 11): a linux platform without a libc is glibc, so a musl build is dropped.
    assert not x64.accepts(["linux"], ["x64"], ["musl"]), "linux-x64 is glibc: the musl build is not kept"
    assert x64.accepts(["linux"], ["x64"], ["glibc"]) and x64.accepts(["linux"], ["x64"], ["!musl"])
    assert not Platform("darwin", "arm64").accepts(None, None, ["glibc"]), "npm reports no libc off linux"
    musl = Platform("linux", "x64", "musl")
    assert not musl.accepts(["linux"], ["x64"], ["glibc"]) and musl.accepts(["linux"], ["x64"], ["musl"])


def test_package_inputs_relative_to_profile(tmp_path: Path) -> None:
    proj = tmp_path / "web"
    proj.mkdir()
    (proj / "package.json").write_text(
        '{"dependencies": {"a": "^1", "b": "npm:c@2"}, "devDependencies": {"d": "latest"},'
        ' "optionalDependencies": {"e": "~3"}, "peerDependencies": {"f": "^4", "g": "^5"},'
        ' "peerDependenciesMeta": {"g": {"optional": true}}}'
    )
    spec = load(tmp_path, '[npm]\npackage-json = "../web/package.json"\nplatforms = ["linux-x64"]\n')
    got = [(r.name, r.spec, r.alias, r.optional) for r in spec.roots]
    assert got == [
        ("a", "^1", None, False),
        ("c", "2", "b", False),
        ("d", "latest", None, False),
        ("e", "~3", None, True),
        ("f", "^4", None, False),
    ]


REFUSALS = [
    # (profile text, expected fragments of the message)
    ("[npm\npackages = 1\n", ["web.toml: not valid TOML"]),
    (GOOD + "colour = 'blue'\n", ["web.toml: npm.colour (line 10)", "unknown key 'colour'"]),
    (GOOD.replace('"eslint@latest"', '"Eslint Bad@1"'), ["web.toml: npm.packages[2] (line 5)", "not a valid npm"]),
    (GOOD.replace('"eslint@latest"', '"eslint@>=>2"'), ["web.toml: npm.packages[2] (line 5)", "eslint@>=>2"]),
    (
        GOOD.replace('"eslint@latest"', '"eslint@github:eslint/eslint"'),
        ["web.toml: npm.packages[2] (line 5)", "not a version, a semver range or a dist-tag"],
    ),
    (GOOD.replace('"eslint@latest"', '"eslint@file:../x"'), ["web.toml: npm.packages[2] (line 5)", "local path"]),
    (GOOD.replace('"eslint@latest"', '"../etc@1"'), ["web.toml: npm.packages[2] (line 5)", "not a valid npm"]),
    (GOOD.replace('"eslint@latest"', '"_private@1"'), ["web.toml: npm.packages[2] (line 5)", "not a valid npm"]),
    (GOOD.replace('"eslint@latest"', '"@scope/../x@1"'), ["web.toml: npm.packages[2] (line 5)", "not a valid npm"]),
    (GOOD.replace('"eslint@latest"', f'"{"a" * 215}@1"'), ["web.toml: npm.packages[2] (line 5)", "not a valid npm"]),
    (
        GOOD.replace('"left-pad@npm:other@^1"', '"left-pad@npm:x@npm:y@1"'),
        ["web.toml: npm.packages[3] (line 6)", "alias of an alias"],
    ),
    (GOOD.replace('"win32-x64"', '"windows-x64"'), ["web.toml: npm.platforms[3] (line 9)", "unknown platform"]),
    (GOOD.replace('"win32-x64"', '"darwin-x64-musl"'), ["web.toml: npm.platforms[3] (line 9)", "unknown platform"]),
    (GOOD.replace("platforms", "platform"), ["web.toml: npm.platform (line 9)", "unknown key"]),
    ('[npm]\npackages = ["a"]\n', ["web.toml: npm.platforms", "missing"]),
    ('[npm]\nplatforms = ["linux-x64"]\n', ["web.toml: npm.packages", "missing"]),
    (GOOD + "include-peer = 'yes'\n", ["web.toml: npm.include-peer (line 10)", "true or false"]),
    (GOOD + 'package-lock = "nope/package-lock.json"\n', ["web.toml: npm.package-lock (line 10)", "not found"]),
    (GOOD + "package-json = 3\n", ["web.toml: npm.package-json (line 10)", "must be a path"]),
]


@pytest.mark.parametrize(("text", "fragments"), REFUSALS)
def test_refusals_name_file_field_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    with pytest.raises(ProfileError) as err:
        load(tmp_path, text)
    for fragment in fragments:
        assert fragment in str(err.value) or fragment in (err.value.hint or ""), (fragment, err.value.message)
    assert err.value.exit_code == 2


def test_bad_package_json_names_the_file_and_entry(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"dependencies": {"ok": "^1", "bad": "git+ssh://x/y.git"}}')
    with pytest.raises(ProfileError) as err:
        load(tmp_path, '[npm]\npackage-json = "../package.json"\nplatforms = ["linux-x64"]\n')
    assert "web.toml: npm.package-json (line 2): package.json dependencies.bad" in err.value.message
    (tmp_path / "package.json").write_text("{not json")
    with pytest.raises(ProfileError, match="is not readable JSON"):
        load(tmp_path, '[npm]\npackage-json = "../package.json"\nplatforms = ["linux-x64"]\n')


@pytest.mark.parametrize(("text", "fragments"), REFUSALS[1:6])
def test_refusals_exit_2_through_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragments: list[str]
) -> None:
    # Through the CLI as installed: npm comes from its "mirrorctl.ecosystems.v1" entry point.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text('[upstreams.npm]\nurl = "http://127.0.0.1:9/"\n')
    profile = tmp_path / "profiles" / "web.toml"
    profile.parent.mkdir()
    profile.write_text(text)
    result = CliRunner().invoke(app, ["lock", "web"])
    assert result.exit_code == 2, result.output
    squeeze = "".join  # the console wraps long lines; compare without whitespace
    assert squeeze(fragments[0].split()) in squeeze(result.output.split())
    assert sorted(p.name for p in profile.parent.iterdir()) == ["web.toml"], "no lock written"


def test_lock_through_the_cli_and_the_registered_ecosystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, npm_registry: FixtureNpmRegistry
) -> None:
    assert isinstance(load_ecosystems()["npm"], NpmEcosystem), "registered as an entry point, not patched in"
    npm_registry.add(PkgSpec("@acme/liba", "1.0.0", dependencies={"left-pad": "^1"}))
    npm_registry.add(PkgSpec("left-pad", "1.3.0"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(f'[upstreams.npm]\nurl = "{npm_registry.url}"\n')
    profile = tmp_path / "profiles" / "web.toml"
    profile.parent.mkdir()
    profile.write_text('[npm]\npackages = ["@acme/liba@^1"]\nplatforms = ["linux-x64"]\n')
    result = CliRunner().invoke(app, ["lock", "web"])
    assert result.exit_code == 0, result.output
    lock = read_lock(tmp_path / "profiles" / "web.lock")
    assert {(a.ecosystem, a.name, a.version) for a in lock.artifacts} == {
        ("npm", "@acme/liba", "1.0.0"),
        ("npm", "left-pad", "1.3.0"),
    }
    assert lock.targets == ("npm:linux-x64",)
    assert CliRunner().invoke(app, ["lock", "--check"]).exit_code == 0, "the written lock is up to date"
    # A bad profile field: exit 2, the lock as it was.
    before = (tmp_path / "profiles" / "web.lock").read_bytes()
    profile.write_text('[npm]\npackages = ["@acme/liba@^1"]\nplatforms = ["linux-sparc"]\n')
    bad = CliRunner().invoke(app, ["lock", "web"])
    assert bad.exit_code == 2, bad.output
    assert "unknown platform 'linux-sparc'" in bad.output and "web.toml" in bad.output
    assert (tmp_path / "profiles" / "web.lock").read_bytes() == before


def art(name: str, version: str, path: str) -> Artifact:
    return Artifact("npm", name, version, path, 1, "0" * 64, ("linux-x64",), {"integrity": "sha512-AA=="})


def test_validate_artifact_accepts_real_names() -> None:
    validate_artifact(art("left-pad", "1.3.0", "left-pad/-/left-pad-1.3.0.tgz"))
    validate_artifact(art("@types/node", "20.11.5", "@types/node/-/node-20.11.5.tgz"))
    validate_artifact(art("@esbuild/linux-x64", "0.21.5", "@esbuild/linux-x64/-/linux-x64-0.21.5.tgz"))
    validate_artifact(art("JSONStream", "1.3.5", "JSONStream/-/JSONStream-1.3.5.tgz"))  # a pre-2017 uppercase name
    validate_artifact(art("typescript", "5.5.0-dev.20240301", "typescript/-/typescript-5.5.0-dev.20240301.tgz"))


@pytest.mark.parametrize("path", ["left-pad/-/../left-pad-1.3.0.tgz", "left-pad/-/left-pad-1.3.0.tgz/.."])
def test_an_unsafe_path_is_refused_before_the_adapter(path: str) -> None:
    # Once lockfile.check_path refused only what npm did not; now every path passes it when the Artifact is made.
    with pytest.raises(ProfileError, match=r"npm left-pad 1\.3\.0: unsafe artifact path .*'\.\.' segment"):
        art("left-pad", "1.3.0", path)


@pytest.mark.parametrize(
    ("name", "version", "path", "fragment"),
    [
        ("left-pad", "1.3.0", "left-pad/-/..left-pad-1.3.0.tgz", "is at 'left-pad/-/left-pad-1.3.0.tgz'"),
        ("left-pad", "1.3.0", "left-pad/-/other-1.3.0.tgz", "is at"),
        ("left-pad", "1.3.0", "left-pad-1.3.0.tgz", "is at 'left-pad/-/left-pad-1.3.0.tgz'"),  # a flat v1 name
        ("left-pad", "1.3.0", "other/-/left-pad-1.3.0.tgz", "is at"),
        ("@acme/liba", "1.0.0", "@acme/liba/-/acme-liba-1.0.0.tgz", "is at '@acme/liba/-/liba-1.0.0.tgz'"),
        ("@acme/liba", "1.0.0", "liba/-/liba-1.0.0.tgz", "is at '@acme/liba/-/liba-1.0.0.tgz'"),  # scope dropped
        ("..", "1.0.0", "x/-/..-1.0.0.tgz", "not a valid npm package name"),
        ("@acme/..", "1.0.0", "x/-/..-1.0.0.tgz", "not a valid npm package name"),
        ("a/b/c", "1.0.0", "a/b/c/-/c-1.0.0.tgz", "not a valid npm package name"),
        (".hidden", "1.0.0", ".hidden/-/.hidden-1.0.0.tgz", "not a valid npm package name"),
        ("node_modules", "1.0.0", "node_modules/-/node_modules-1.0.0.tgz", "not a valid npm package name"),
        ("a%2fb", "1.0.0", "a%2fb/-/a%2fb-1.0.0.tgz", "not a valid npm package name"),
        ("left-pad", "v1.3.0", "left-pad/-/left-pad-v1.3.0.tgz", "not a semver version"),
        ("left-pad", "1.3", "left-pad/-/left-pad-1.3.tgz", "not a semver version"),
        ("left-pad", "1.3.0/../../x", "left-pad/-/left-pad-1.3.0.tgz", "not a semver version"),
    ],
)
def test_validate_artifact_refusals(name: str, version: str, path: str, fragment: str) -> None:
    with pytest.raises(BundleRefused) as err:
        validate_artifact(art(name, version, path))
    assert fragment in err.value.message
    assert f"npm artifact {name!r}" in err.value.message
