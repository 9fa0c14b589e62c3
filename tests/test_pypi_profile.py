"""The [pypi] profile table: every refusal names the file, the field and the line, exits 2 through the CLI,
and changes nothing. Plus target tags, marker environments and the artifact grammar import relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.tags import parse_tag
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.ecosystems.pypi.spec import PypiSpec, validate_artifact
from mirrorctl.ecosystems.pypi.targets import Target
from mirrorctl.errors import BundleRefused, ProfileError
from mirrorctl.lockfile import Artifact
from mirrorctl.outside.profiles import load_profile

GOOD = """\
[pypi]
requirements = [
    "requests>=2.31",
    "httpx[http2]; python_version >= '3.11'",
]
python = ["3.11", "3.12"]
platforms = ["manylinux_2_28_x86_64", "win_amd64"]
"""


def load(tmp_path: Path, text: str, name: str = "web") -> PypiSpec:
    path = tmp_path / "profiles" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    spec = load_profile(path, load_ecosystems()).specs["pypi"]
    assert isinstance(spec, PypiSpec)
    return spec


def test_good_profile(tmp_path: Path) -> None:
    spec = load(tmp_path, GOOD)
    assert [str(r) for r in spec.requirements] == ["requests>=2.31", 'httpx[http2]; python_version >= "3.11"']
    assert spec.target_ids() == [
        "py3.11-manylinux_2_28_x86_64",
        "py3.11-win_amd64",
        "py3.12-manylinux_2_28_x86_64",
        "py3.12-win_amd64",
    ]
    assert spec.sdist == "never" and not spec.sdist_ok("requests")


REFUSALS = [
    # (profile text, expected fragments of the message)
    ("[pypi\nrequirements = 1\n", ["web.toml: not valid TOML", "line 1"]),
    (GOOD + "colour = 'blue'\n", ["web.toml: pypi.colour (line 8)", "unknown key 'colour'"]),
    (
        GOOD.replace('"requests>=2.31"', '"requests>=>2"'),
        ["web.toml: pypi.requirements[0] (line 3)", "invalid requirement 'requests>=>2'"],
    ),
    (
        GOOD.replace('"win_amd64"', '"manylinux_2_28_sparc"'),
        [
            "web.toml: pypi.platforms[1] (line 7)",
            "unknown platform 'manylinux_2_28_sparc'",
            "manylinux2014_<arch>",
        ],
    ),
    (GOOD.replace('"3.12"', '"2.7"'), ["web.toml: pypi.python[1] (line 6)", "'2.7' is not a Python version"]),
    (GOOD.replace("python = ", "pythons = "), ["web.toml: pypi.pythons (line 6)", "unknown key 'pythons'"]),
    (GOOD + 'sdist = "always"\n', ["web.toml: pypi.sdist (line 8)", "must be one of 'never' or 'fallback'"]),
    (GOOD + 'sdist-allowed = ["x"]\n', ["web.toml: pypi.sdist-allowed (line 8)", 'sdist = "fallback"']),
    (GOOD + 'constraints = ["urllib3[socks]<3"]\n', ["pypi.constraints[0] (line 8)", "version range only"]),
    (
        GOOD.replace('"requests>=2.31"', '"requests @ https://example.test/r.whl"'),
        ["pypi.requirements[0] (line 3)", "direct URL reference"],
    ),
    ('include = ["nowhere"]\n' + GOOD, ["nowhere.toml: profile not found (included from", "web.toml"]),
    (
        GOOD.replace("[pypi]", "[pypy]"),
        ["web.toml: pypy (line 1): unknown key 'pypy'", "ecosystems: " + ", ".join(sorted(load_ecosystems()))],
    ),
]


@pytest.mark.parametrize(("text", "fragments"), REFUSALS)
def test_refusals_name_file_field_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    with pytest.raises(ProfileError) as err:
        load(tmp_path, text)
    for fragment in fragments:
        assert fragment in str(err.value) or fragment in (err.value.hint or ""), (fragment, err.value.message)


@pytest.mark.parametrize(("text", "fragments"), REFUSALS)
def test_refusals_exit_2_through_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, fragments: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text('[upstreams.pypi]\nurl = "http://127.0.0.1:9/simple/"\n')
    profile = tmp_path / "profiles" / "web.toml"
    profile.parent.mkdir()
    profile.write_text(text)
    result = CliRunner().invoke(app, ["lock", "web"])
    assert result.exit_code == 2, result.output
    squeeze = "".join  # the console wraps long lines; compare without whitespace
    assert squeeze(fragments[0].split()) in squeeze(result.output.split())
    assert sorted(p.name for p in profile.parent.iterdir()) == ["web.toml"], "no lock written"


def test_targets_tags_and_markers() -> None:
    t = Target("3.11", "manylinux_2_28_x86_64")
    plats = t.platform_tags()
    assert plats[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in plats
    assert plats.index("manylinux2014_x86_64") == plats.index("manylinux_2_17_x86_64") + 1
    assert "manylinux1_x86_64" in plats and "manylinux_2_29_x86_64" not in plats
    assert t.tag_priority(parse_tag("cp311-cp311-manylinux_2_17_x86_64")) is not None
    assert t.tag_priority(parse_tag("cp312-cp312-manylinux_2_17_x86_64")) is None
    assert t.tag_priority(parse_tag("cp311-cp311-manylinux_2_31_x86_64")) is None
    best = t.tag_priority(parse_tag("cp311-cp311-manylinux_2_28_x86_64"))
    abi3 = t.tag_priority(parse_tag("cp38-abi3-manylinux_2_28_x86_64"))
    pure = t.tag_priority(parse_tag("py3-none-any"))
    assert best is not None and abi3 is not None and pure is not None and best < abi3 < pure
    assert "manylinux1_aarch64" not in Target("3.11", "manylinux_2_28_aarch64").platform_tags()
    mac = Target("3.12", "macosx_11_0_arm64")
    assert mac.tag_priority(parse_tag("cp312-cp312-macosx_10_9_universal2")) is not None
    assert mac.marker_env()["sys_platform"] == "darwin" and mac.marker_env()["platform_machine"] == "arm64"
    win = Target("3.12", "win_amd64").marker_env()
    assert (win["sys_platform"], win["os_name"], win["platform_machine"]) == ("win32", "nt", "AMD64")
    musl = Target("3.12", "musllinux_1_2_x86_64")
    assert musl.tag_priority(parse_tag("cp312-cp312-musllinux_1_1_x86_64")) is not None
    assert musl.tag_priority(parse_tag("cp312-cp312-manylinux_2_17_x86_64")) is None
    assert t.marker_env()["python_full_version"] == "3.11.0" and t.id == "py3.11-manylinux_2_28_x86_64"


def art(name: str, version: str, filename: str, path: str | None = None) -> Artifact:
    # A crafted name may not make a safe path segment; the adapter refuses the name before it looks at the path.
    folder = name.lower().replace(".", "-").replace("_", "-") if "/" not in name and ".." not in name else "x"
    return Artifact("pypi", name, version, path or f"{folder}/{filename}", 1, "0" * 64)


def test_validate_artifact_accepts_real_names() -> None:
    validate_artifact(art("Foo.Bar", "1.0.post1", "foo_bar-1.0.post1-py3-none-any.whl"))
    validate_artifact(art("foo-bar", "2.0", "foo_bar-2.0.tar.gz"))
    assert art("Foo.Bar", "1.0", "f.whl").path == "foo-bar/f.whl"


@pytest.mark.parametrize(
    "path", ["foo-1.0-py3-none-any.whl", "bar/foo-1.0-py3-none-any.whl", "Foo/foo-1.0-py3-none-any.whl"]
)
def test_validate_artifact_refuses_a_path_not_under_the_normalized_project(path: str) -> None:
    with pytest.raises(BundleRefused) as err:
        validate_artifact(art("foo", "1.0", "foo-1.0-py3-none-any.whl", path))
    assert "the path of foo-1.0-py3-none-any.whl is 'foo/foo-1.0-py3-none-any.whl'" in err.value.message


@pytest.mark.parametrize(
    ("name", "version", "filename", "fragment"),
    [
        ("../x", "1.0", "x-1.0-py3-none-any.whl", "not a valid project name"),
        ("a/b", "1.0", "a-1.0-py3-none-any.whl", "not a valid project name"),
        ("foo", "1.0\x00", "foo-1.0-py3-none-any.whl", "not a PEP 440 version"),
        ("foo", "latest", "foo-1.0-py3-none-any.whl", "not a PEP 440 version"),
        ("foo", "1.0", "bar-1.0-py3-none-any.whl", "file name is for bar 1.0"),
        ("foo", "1.0", "foo-2.0.tar.gz", "file name is for foo 2.0"),
        ("foo", "1.0", "foo-1.0.exe", "not a wheel"),
        ("foo", "1.0", "foo-1.0-py3.whl", "does not parse"),
    ],
)
def test_validate_artifact_refuses_crafted(name: str, version: str, filename: str, fragment: str) -> None:
    with pytest.raises(BundleRefused, match=None) as err:
        validate_artifact(art(name, version, filename))
    assert fragment in err.value.message
