"""The [apt] profile table: suite, components and architectures (with defaults), packages with pins, the opt-in
essential and recommends flags, allowed fingerprints; every refusal names file, field and line, exits 2 through
`mirrorctl lock` and writes nothing. Plus the artifact grammar import relies on (Debian names and versions, pool
paths), and the upstream discovered from the machine's apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.config import load_settings
from mirrorctl.ecosystems.apt import AptEcosystem
from mirrorctl.ecosystems.apt.discover import discover_upstream
from mirrorctl.ecosystems.apt.settings import upstream_keyring
from mirrorctl.ecosystems.apt.spec import AptSpec, validate_artifact
from mirrorctl.ecosystems.base import Ecosystem, load_ecosystems
from mirrorctl.errors import BundleRefused, ProfileError, UserError
from mirrorctl.lockfile import Artifact
from mirrorctl.outside.initconfig import init_config
from mirrorctl.outside.profiles import load_profile

ECOSYSTEMS = load_ecosystems()  # the installed adapters, as the runtime loads them

GOOD = """\
[apt]
suite = "bookworm"
architectures = ["amd64", "arm64"]
packages = [
    "build-essential",
    "g++",
    "libstdc++6=12.2.0-14",
    "curl=7.88.1-10+deb12u5",
    "data-common=1:0.5-2",
]
essential = true
"""


def ecosystems() -> dict[str, Ecosystem]:
    return {"apt": AptEcosystem()}


def load(tmp_path: Path, text: str) -> AptSpec:
    path = tmp_path / "profiles" / "base.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    spec = load_profile(path, ecosystems()).specs["apt"]
    assert isinstance(spec, AptSpec)
    return spec


def test_good_profile(tmp_path: Path) -> None:
    spec = load(tmp_path, GOOD)
    assert spec.suite == "bookworm"
    assert spec.components == ("main",)  # the default
    assert spec.target_ids() == ["amd64", "arm64"]
    assert spec.packages == ("build-essential", "g++", "libstdc++6", "curl", "data-common")
    assert spec.pins == {"libstdc++6": "12.2.0-14", "curl": "7.88.1-10+deb12u5", "data-common": "1:0.5-2"}
    assert spec.essential is True and spec.recommends is False and spec.fingerprints is None
    assert spec.origin("curl").endswith("base.toml: apt.packages[3] (line 8)")


def test_defaults_and_fingerprints(tmp_path: Path) -> None:
    fpr = "b8b8 0b5b 623e ab6a d877 5c45 b7c5 d7d6 3509 47f8"
    spec = load(tmp_path, f'[apt]\nsuite = "stable"\npackages = ["git"]\nrecommends = true\nfingerprints = ["{fpr}"]\n')
    assert (spec.components, spec.architectures, spec.essential, spec.recommends) == (("main",), ("amd64",), False,
                                                                                        True)
    assert spec.fingerprints == ("B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\nkeyring = "x"\n', r"apt\.keyring \(line 4\): unknown key"),
        ('[apt]\npackages = ["git"]\n', r"apt\.suite: missing"),
        ('[apt]\nsuite = "../etc"\npackages = ["git"]\n', r"apt\.suite \(line 2\): '\.\./etc' is not a suite name"),
        ('[apt]\nsuite = "bookworm"\n', r"apt\.packages: missing"),
        ('[apt]\nsuite = "bookworm"\npackages = []\n', r"apt\.packages \(line 3\): must be a non-empty list"),
        ('[apt]\nsuite = "bookworm"\npackages = [\n  "git",\n  "Git",\n]\n',
         r"apt\.packages\[1\] \(line 5\): 'Git' is not a Debian package name"),
        ('[apt]\nsuite = "bookworm"\npackages = ["x"]\n', r"apt\.packages\[0\] \(line 3\): 'x' is not a Debian"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git/../evil"]\n', r"'git/\.\./evil' is not a Debian package"),
        ('[apt]\nsuite = "bookworm"\npackages = ["curl=latest"]\n',
         r"apt\.packages\[0\] \(line 3\): pin 'curl=latest': 'latest' is not a Debian version"),
        ('[apt]\nsuite = "bookworm"\npackages = ["curl="]\n', r"pin 'curl=': '' is not a Debian version"),
        ('[apt]\nsuite = "bookworm"\npackages = ["curl=1.0 1"]\n', r"'1\.0 1' is not a Debian version"),
        ('[apt]\nsuite = "bookworm"\npackages = ["curl=a:1.0"]\n', r"'a:1\.0' is not a Debian version"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git", "git=1.0"]\n', r"'git' is listed twice"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\narchitectures = ["x86_64"]\n',
         r"apt\.architectures\[0\] \(line 4\): unknown architecture 'x86_64'"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\narchitectures = ["all"]\n',
         r"apt\.architectures\[0\] \(line 4\): 'all' is not an architecture to lock for"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\ncomponents = ["../x"]\n', r"'\.\./x' is not a component"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\nessential = "yes"\n',
         r"apt\.essential \(line 4\): must be true or false"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\nrecommends = 1\n', r"apt\.recommends \(line 4\): must be"),
        ('[apt]\nsuite = "bookworm"\npackages = ["git"]\nfingerprints = ["ABCD"]\n',
         r"apt\.fingerprints\[0\] \(line 4\): 'ABCD' is not an OpenPGP fingerprint"),
    ],
)
def test_refusals_name_file_field_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as info:
        load(tmp_path, text)
    assert "base.toml" in info.value.message


def test_refusal_through_the_cli_exits_2_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text('[upstreams.apt]\nurl = "http://127.0.0.1:9/debian/"\nkeyring = "k"\n')
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "base.toml").write_text('[apt]\nsuite = "bookworm"\npackages = ["Bad_Name"]\n')
    result = CliRunner().invoke(app, ["-q", "lock", "base"])
    assert result.exit_code == 2, result.output
    assert "apt.packages[0] (line 3): 'Bad_Name' is not a Debian package name" in " ".join(result.output.split())
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == ["base.toml"]


def artifact(**overrides: object) -> Artifact:
    fields: dict[str, object] = {
        "ecosystem": "apt", "name": "libstdc++6", "version": "1:12.2.0-14",
        "path": "pool/main/g/gcc-12/libstdc++6_12.2.0-14_arm64.deb", "size": 10, "sha256": "a" * 64,
        "targets": ("arm64",),
        "attrs": {"architecture": "arm64", "suite": "bookworm", "component": "main",
                  "pool": "pool/main/g/gcc-12/libstdc++6_12.2.0-14_arm64.deb"},
    }
    fields.update(overrides)
    return Artifact(**fields)  # type: ignore[arg-type]


def test_validate_artifact_accepts_a_debian_package() -> None:
    validate_artifact(artifact())
    validate_artifact(artifact(name="tzdata", version="2024a-0+deb12u1",
                               path="pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb",
                               targets=("amd64", "arm64"),
                               attrs={"architecture": "all", "suite": "bookworm", "component": "main",
                                      "pool": "pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb"}))


POOL = "pool/main/g/gcc-12/libstdc++6_12.2.0-14_arm64.deb"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Bad"}, "'Bad' is not a Debian package name"),
        ({"name": "../x"}, "is not a Debian package name"),
        ({"version": "latest"}, "'latest' is not a Debian version"),
        ({"version": "1.0/../x"}, "is not a Debian version"),
        ({"path": "pool/main/o/other/other_1_arm64.deb"}, "the path must be the .deb of attrs.pool"),
        ({"path": "libstdc++6_12.2.0-14_arm64.deb"}, "the path must be the .deb of attrs.pool"),  # a flat v1 name
        ({"attrs": {"architecture": "arm64", "suite": "bookworm", "component": "main",
                    "pool": "dists/bookworm/libstdc++6_12.2.0-14_arm64.deb"}}, "attrs.pool must be a path under pool/"),
        ({"attrs": {"architecture": "arm64", "suite": "bookworm", "component": "main",
                    "pool": "pool/../../etc/libstdc++6_12.2.0-14_arm64.deb"}}, "is not a plain path under pool/"),
        ({"attrs": {"architecture": "arm64", "suite": "bookworm", "component": "main",
                    "pool": "pool/main//libstdc++6_12.2.0-14_arm64.deb"}}, "is not a plain path under pool/"),
        ({"attrs": {"architecture": "arm64", "suite": "bookworm", "component": "main"}}, "attrs.pool must be a path"),
        ({"attrs": {"architecture": "arm64", "suite": "../x", "component": "main", "pool": POOL}},
         "attrs.suite is missing or malformed"),
        ({"attrs": {"architecture": "x86_64", "suite": "bookworm", "component": "main", "pool": POOL}},
         "attrs.architecture 'x86_64' is not a Debian architecture"),
        ({"targets": ("win32",)}, "target 'win32' is not a Debian architecture"),
    ],
)
def test_validate_artifact_refusals(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(BundleRefused, match=message.replace(".", r"\.").replace("(", r"\(")):
        validate_artifact(artifact(**overrides))


# -- the upstream the machine's apt uses ----------------------------------------------------------------------


def test_discover_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "a-disabled.sources").write_text(
        "Types: deb\nURIs: http://disabled.example.test/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n"
    )
    (tmp_path / "sources.list.d" / "b-src.sources").write_text(
        "Types: deb-src\nURIs: http://src.example.test/debian\nSuites: bookworm\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://deb.mirror.internal/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/upstream-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://deb.mirror.internal/debian-security\nSuites: bookworm-security\n"
    )
    found = discover_upstream({}, etc=tmp_path)
    assert found is not None
    assert found.url == "http://deb.mirror.internal/debian/"
    # The security archive is kept too (issue 13 item 6), with the suites it lists; it names no Signed-By here.
    assert found.settings == {
        "keyring": "/usr/share/keyrings/upstream-archive-keyring.gpg",
        "archives": {"debian-security": {"url": "http://deb.mirror.internal/debian-security/",
                                         "suites": ["bookworm-security"]}},
    }
    assert found.source == f"{tmp_path}/sources.list.d/debian.sources (URIs)"


def test_discover_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example.test/debian bookworm main\n"
        "deb-src http://src.example.test/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/up.gpg] https://deb.mirror.internal/debian/ bookworm main\n"
    )
    found = discover_upstream({}, etc=tmp_path)
    assert found is not None
    assert found.url == "https://deb.mirror.internal/debian/"
    assert found.settings == {"keyring": "/etc/apt/keyrings/up.gpg"}
    (tmp_path / "sources.list").write_text("deb file:/srv/local bookworm main\n")
    assert discover_upstream({}, etc=tmp_path) is None
    assert discover_upstream({}, etc=tmp_path / "missing") is None


def test_init_writes_the_discovered_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "etc" / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.mirror.internal/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/upstream-archive-keyring.gpg\n"
    )
    import mirrorctl.ecosystems.apt.discover as discover

    monkeypatch.setattr(discover.discover_upstream, "__kwdefaults__", {"etc": tmp_path / "etc"})
    out = tmp_path / "mirrorctl.toml"
    result = init_config(out, {"apt": AptEcosystem()}, {})
    assert result.upstreams == {"apt": ("http://deb.mirror.internal/debian/", f"{tmp_path}/etc/sources.list.d/"
                                                                             "debian.sources (URIs)")}
    up = load_settings(out, ecosystems=ECOSYSTEMS).upstream("apt")
    assert upstream_keyring(up) == Path("/usr/share/keyrings/upstream-archive-keyring.gpg")


def test_upstream_keyring_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    cfg.write_text('[upstreams.apt]\nurl = "http://deb.mirror.internal/debian/"\nkeyring = "keys/upstream.gpg"\n')
    up = load_settings(cfg, ecosystems=ECOSYSTEMS).upstream("apt")
    assert upstream_keyring(up) == tmp_path.resolve() / "keys" / "upstream.gpg"
    cfg.write_text('[upstreams.apt]\nurl = "http://deb.mirror.internal/debian/"\nkeyring = 3\n')
    with pytest.raises(UserError, match=r"upstreams\.apt\.keyring must be a non-empty string \(a path\)"):
        load_settings(cfg, ecosystems=ECOSYSTEMS)
    cfg.write_text('[upstreams.pypi]\nurl = "http://pypi.mirror.internal/simple/"\n')
    pypi = load_settings(cfg, ecosystems=ECOSYSTEMS).upstream("pypi")
    assert upstream_keyring(pypi) is None
    assert pypi.options is None  # pypi has no keys beyond url and credentials
