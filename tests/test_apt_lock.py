"""`mirrorctl lock` for apt against the fixture archive: InRelease verified with the configured keyring, indexes
checked against the Release, the closure per architecture (Pre-Depends, versioned Depends, a virtual package
through Provides in an or-group, arch-all shared by both architectures as one artifact, pins, the opt-in
essential set, Recommends on request), deterministic host-free bytes, `lock --check`; and refusals (bad
signature, tampered index, package missing for an architecture, unsatisfiable dependency, an architecture or
component the suite lacks, no keyring) that leave the lock file untouched."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mirrorctl.cli.app import app
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact, read_lock
from tests.conftest import skip_or_fail
from tests.fixtures.apt_upstream import (  # noqa: F401  (fixtures used by name)
    FixtureAptUpstream,
    apt_fixture_material,
    apt_other_key_fixture,
    apt_upstream_fixture,
)
from tests.fixtures.debs import TestKey

PROFILE = """\
[apt]
suite = "bookworm"
architectures = ["amd64", "arm64"]
packages = [
    "app",
]
"""

CLOSURE = {"app", "base-essential", "data-common", "init-helper", "libfoo", "postfix-lite"}


@pytest.fixture
def work(tmp_path: Path, apt_upstream: FixtureAptUpstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, apt_upstream)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "base.toml").write_text(PROFILE)
    return tmp_path


def write_config(root: Path, up: FixtureAptUpstream, *, keyring: Path | None = None) -> None:
    ring = keyring or up.keyring
    (root / "mirrorctl.toml").write_text(
        f'[store]\npath = "store"\n[upstreams.apt]\nurl = "{up.url}"\nkeyring = "{ring}"\n[fetch]\nretries = 0\n'
    )


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, ["-q", *args])


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result.output


def refused(code: int, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def lock_path(work: Path) -> Path:
    return work / "profiles" / "base.lock"


def artifacts(work: Path) -> list[Artifact]:
    return list(read_lock(lock_path(work)).artifacts)


def per_arch(arts: list[Artifact]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for a in arts:
        for t in a.targets:
            out.setdefault(t, {})[a.name] = a.version
    return out


def set_profile(work: Path, text: str) -> None:
    (work / "profiles" / "base.toml").write_text(text)


def test_lock_closure_per_architecture(work: Path, apt_upstream: FixtureAptUpstream) -> None:
    ok("lock", "base")
    arts = artifacts(work)
    closure = per_arch(arts)
    assert set(closure) == {"amd64", "arm64"}
    for arch in ("amd64", "arm64"):
        assert set(closure[arch]) == CLOSURE
        assert closure[arch]["libfoo"] == "1.5-1"  # highest version meeting (>= 1.2)
        assert closure[arch]["data-common"] == "1:0.5-2"  # epoch kept as the index has it
    # The arch-all package is one artifact with both targets; the others one per architecture.
    [common] = [a for a in arts if a.name == "data-common"]
    assert common.targets == ("amd64", "arm64")
    assert common.attrs == {
        "architecture": "all", "suite": "bookworm", "component": "main",
        "pool": "pool/main/d/data-common/data-common_0.5-2_all.deb",
    }
    assert common.filename == "data-common_0.5-2_all.deb"
    deb = apt_upstream.deb("data-common", "all")
    assert (common.size, common.sha256) == (deb.size, deb.sha256)
    apps = sorted((a.attrs["architecture"], a.targets) for a in arts if a.name == "app")
    assert apps == [("amd64", ("amd64",)), ("arm64", ("arm64",))]
    assert len(arts) == 2 * len(CLOSURE) - 1
    lock = read_lock(lock_path(work))
    assert lock.targets == ("apt:amd64", "apt:arm64")
    text = lock_path(work).read_text()
    assert "127.0.0.1" not in text and "debian/" not in text.replace("pool/main", "")
    # Only the .gz indexes were fetched (cheaper overall than .xz, see lock.INDEX_FORMS; preferred over plain), and
    # no .deb (the index has the hashes).
    paths = [p for _, p in apt_upstream.log]
    assert "/debian/dists/bookworm/main/binary-amd64/Packages.gz" in paths
    assert not any(p.endswith(("Packages", "Packages.xz", ".deb")) for p in paths)


def test_lock_is_deterministic_and_check_passes(work: Path) -> None:
    ok("lock", "base")
    first = lock_path(work).read_bytes()
    lock_path(work).unlink()
    ok("lock", "base")
    assert lock_path(work).read_bytes() == first
    ok("lock", "--check", "base")
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == first


def test_lock_check_notices_a_changed_profile(work: Path) -> None:
    ok("lock", "base")
    before = lock_path(work).read_bytes()
    set_profile(work, PROFILE.replace('"app",', '"app",\n    "exim-lite",'))
    out = refused(1, "lock", "--check", "base")
    assert "changed since the lock was made" in out
    assert lock_path(work).read_bytes() == before


def test_check_lock_names_a_missing_package_and_a_pin() -> None:
    from mirrorctl.ecosystems.apt.lock import check_lock
    from mirrorctl.ecosystems.apt.spec import AptSpec

    spec = AptSpec("bookworm", ("main",), ("amd64",), ("app", "libfoo"), pins={"libfoo": "1.0-1"},
                   origins={"app": "profiles/base.toml: apt.packages[0] (line 4)"})
    art = Artifact("apt", "libfoo", "1.5-1", "libfoo_1.5-1_amd64.deb", 10, "a" * 64, ("amd64",),
                   {"architecture": "amd64", "suite": "bookworm", "component": "main",
                    "pool": "pool/main/libf/libfoo/libfoo_1.5-1_amd64.deb"})
    problems = check_lock(spec, [art])
    assert "apt app (profiles/base.toml: apt.packages[0] (line 4)) is not locked for amd64" in problems
    assert "apt libfoo is locked at 1.5-1 for amd64, the profile pins 1.0-1" in problems
    assert check_lock(AptSpec("bookworm", ("main",), ("amd64",), ("libfoo",)), [art]) == []


def test_pin_picks_the_older_version(work: Path) -> None:
    set_profile(work, PROFILE.replace('"app",', '"libfoo=1.0-1",'))
    ok("lock", "base")
    assert per_arch(artifacts(work)) == {"amd64": {"libfoo": "1.0-1"}, "arm64": {"libfoo": "1.0-1"}}
    ok("lock", "--check", "base")


def test_essential_set_is_opt_in(work: Path) -> None:
    set_profile(work, PROFILE + "essential = true\n")
    ok("lock", "base")
    closure = per_arch(artifacts(work))
    assert set(closure["amd64"]) == CLOSURE | {"req-tool"}  # Priority: required joins; Essential was in already


def test_recommends_on_request(work: Path) -> None:
    set_profile(work, PROFILE + "recommends = true\n")
    ok("lock", "base")
    arts = artifacts(work)
    assert set(per_arch(arts)["arm64"]) == CLOSURE | {"app-doc"}
    [doc] = [a for a in arts if a.name == "app-doc"]
    assert doc.targets == ("amd64", "arm64")


def test_an_alternative_already_chosen_is_reused(work: Path) -> None:
    set_profile(work, PROFILE.replace('"app",', '"app",\n    "exim-lite",'))
    ok("lock", "base")
    assert set(per_arch(artifacts(work))["amd64"]) == CLOSURE - {"postfix-lite"} | {"exim-lite"}


def test_lock_snapshot_stores_every_deb(work: Path) -> None:
    ok("lock", "--snapshot", "base")
    store = Store(work / "store")
    arts = artifacts(work)
    assert arts and all(store.verify_blob(a.sha256, a.size) is None for a in arts)


# -- refusals: a clear message, exit code, and the lock file untouched ------------------------------------------


@pytest.fixture
def locked(work: Path) -> bytes:
    ok("lock", "base")
    return lock_path(work).read_bytes()


def test_refusal_package_missing_for_an_architecture(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"app",', '"app",\n    "only-amd64",'))
    out = refused(1, "lock", "base")
    assert "package only-amd64 does not exist for architecture arm64" in out
    assert "apt.packages[1] (line 6)" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_unsatisfiable_dependency(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"app",', '"broken",'))
    out = refused(1, "lock", "base")
    assert "broken 1.0-1 on amd64 depends on nonexistent (>= 2), which cannot be satisfied" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_pin_that_breaks_a_dependency(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"app",', '"app",\n    "libfoo=1.0-1",'))
    out = refused(1, "lock", "base")
    assert "app 2.0-1 on amd64 depends on libfoo (>= 1.2), which cannot be satisfied" in out
    assert "libfoo 1.0-1 is already chosen" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_pin_not_in_the_index(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"app",', '"libfoo=9.9-1",'))
    out = refused(1, "lock", "base")
    assert "pin libfoo=9.9-1 cannot be met on amd64: available versions 1.0-1, 1.5-1" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_virtual_package_named(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"app",', '"mail-transport-agent",'))
    out = refused(1, "lock", "base")
    assert "mail-transport-agent (" in out and "profiles/base.toml: apt.packages[0] (line 5)) is a virtual" in out
    assert "package on amd64, provided by postfix-lite" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_signed_by_another_key(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream,
                                       apt_other_key: TestKey) -> None:
    apt_upstream.sign_with(apt_other_key)
    apt_upstream.publish()
    before = len(apt_upstream.log)
    out = refused(1, "lock", "--refresh", "base")
    assert "InRelease of suite 'bookworm': signature refused (made by a key not in the keyring)" in out
    assert lock_path(work).read_bytes() == locked
    # Nothing else is read once the signature is refused.
    assert apt_upstream.log[before:] == [("GET", "/debian/dists/bookworm/InRelease")]


def test_refusal_tampered_inrelease(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream) -> None:
    inrelease = apt_upstream.dists / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Label: Fixture", b"Label: Evilxx"))
    out = refused(1, "lock", "--refresh", "base")
    assert "InRelease of suite 'bookworm': signature refused (bad or missing signature)" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_index_hash_mismatch(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream) -> None:
    apt_upstream.tamper_index("arm64")
    out = refused(1, "lock", "--refresh", "base")
    assert "index main/binary-arm64/Packages.gz of suite 'bookworm'" in out
    assert "Release says" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_expired_release_valid_until(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream) -> None:
    # A Release that was valid when signed, replayed (or left on a stale mirror) after its Valid-Until: refused,
    # although its signature is good.
    apt_upstream.release_fields = {"Valid-Until": "Sat, 08 Jun 2024 00:00:00 UTC"}
    apt_upstream.publish()
    out = refused(1, "lock", "--refresh", "base")
    assert ("InRelease of suite 'bookworm' expired: Valid-Until Sat, 08 Jun 2024 00:00:00 UTC is before the local "
            "clock ") in out
    assert "replays an old signed Release (a freeze attack)" in out
    assert lock_path(work).read_bytes() == locked
    # Still valid: locks as before (the field is only a bound, the closure is the same).
    apt_upstream.release_fields = {"Valid-Until": "Fri, 01 Jan 2100 00:00:00 UTC"}
    apt_upstream.publish()
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == locked


def test_refusal_release_dated_in_the_future(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream) -> None:
    apt_upstream.release_fields = {"Date": "Fri, 01 Jan 2100 00:00:00 UTC"}
    apt_upstream.publish()
    out = refused(1, "lock", "--refresh", "base")
    assert "InRelease of suite 'bookworm' is not valid yet: Date Fri, 01 Jan 2100 00:00:00 UTC is after" in out
    assert "clock is probably behind" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_allowed_fingerprints(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE + f'fingerprints = ["{"0" * 40}"]\n')
    out = refused(1, "lock", "base")
    assert "which is not an allowed key" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_architecture_not_in_the_suite(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"arm64"]', '"arm64", "riscv64"]'))
    out = refused(2, "lock", "base")
    assert "apt.architectures[2] (line 3): suite 'bookworm' has no architecture 'riscv64'" in out
    assert "offers: amd64 arm64" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_component_not_in_the_suite(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE + 'components = ["main", "contrib"]\n')
    out = refused(2, "lock", "base")
    assert "base.toml: apt.components[1] (line 7): suite 'bookworm' has no component 'contrib'" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_no_keyring_configured(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream) -> None:
    (work / "mirrorctl.toml").write_text(f'[store]\npath = "store"\n[upstreams.apt]\nurl = "{apt_upstream.url}"\n')
    before = len(apt_upstream.log)
    out = refused(2, "lock", "--refresh", "base")
    assert "upstreams.apt: no keyring configured to verify" in out
    assert len(apt_upstream.log) == before  # refused before any request
    assert lock_path(work).read_bytes() == locked


def test_refusal_suite_missing_upstream(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"bookworm"', '"trixie"'))
    out = refused(1, "lock", "base")
    assert "apt suite trixie InRelease: HTTP 404" in out
    assert lock_path(work).read_bytes() == locked


def test_worker_processes_give_the_same_lock(work: Path, monkeypatch: pytest.MonkeyPatch,
                                            apt_upstream: FixtureAptUpstream) -> None:
    # Big suites read each architecture's index in its own process while it downloads; the fixture is small, so
    # force that path here.
    ok("lock", "base")
    threaded = lock_path(work).read_bytes()
    monkeypatch.setattr("mirrorctl.ecosystems.apt.lock._PARALLEL_MIN_BYTES", 0)
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == threaded
    set_profile(work, PROFILE.replace('"app",', '"app",\n    "only-amd64",'))
    out = refused(1, "lock", "base")  # an error in a worker keeps its type, message and hint
    assert "package only-amd64 does not exist for architecture arm64" in out
    assert "hint: check the name, the components and the architectures" in out
    assert lock_path(work).read_bytes() == threaded
    # The worker saw the tampered text as it streamed in, but nothing is resolved from an index that fails its check.
    set_profile(work, PROFILE)
    apt_upstream.tamper_index("arm64")
    out = refused(1, "lock", "--refresh", "base")
    assert "index main/binary-arm64/Packages.gz of suite 'bookworm'" in out and "Release says" in out
    assert lock_path(work).read_bytes() == threaded


def test_refusal_index_missing_upstream(work: Path, locked: bytes, apt_upstream: FixtureAptUpstream) -> None:
    (apt_upstream.dists / "main/binary-arm64/Packages.gz").unlink()
    out = refused(1, "lock", "--refresh", "base")
    assert "apt suite bookworm index main/binary-arm64/Packages.gz: HTTP 404" in out
    assert lock_path(work).read_bytes() == locked


def apt_get_simulate(root: Path, up: FixtureAptUpstream, arch: str, packages: list[str], *extra: str) -> set[str]:
    """What the real apt-get would install on an empty system (own state, cache, sources; empty dpkg status)."""
    if shutil.which("apt-get") is None:
        skip_or_fail("apt-get is not installed")
    for sub in ("state/lists/partial", "cache/archives/partial", "sources.list.d"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "state" / "status").write_text("")
    (root / "sources.list").write_text("")
    (root / "sources.list.d" / "fixture.sources").write_text(
        f"Types: deb\nURIs: {up.url}\nSuites: bookworm\nComponents: main\nSigned-By: {up.keyring}\n"
    )
    opts = [
        "-o", f"Dir::State={root / 'state'}", "-o", f"Dir::State::status={root / 'state' / 'status'}",
        "-o", f"Dir::Cache={root / 'cache'}", "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={root / 'sources.list.d'}", "-o", f"APT::Architecture={arch}",
        "-o", f"APT::Architectures::={arch}", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
    ]
    for args in (["update"], ["install", "-s", *extra, *packages]):
        done = subprocess.run(["apt-get", *opts, *args], capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    return {f"{m.group(1).split(':')[0]} {m.group(2)}" for m in re.finditer(r"^Inst (\S+) \((\S+) ", done.stdout, re.M)}


@pytest.mark.parametrize("recommends", [False, True])
def test_closure_agrees_with_apt_get(work: Path, apt_upstream: FixtureAptUpstream, tmp_path: Path,
                                     recommends: bool) -> None:
    packages = ["app", "exim-lite"]
    text = PROFILE.replace('"app",', ", ".join(f'"{p}"' for p in packages) + ",")
    set_profile(work, text + ("recommends = true\n" if recommends else ""))
    ok("lock", "base")
    arts = artifacts(work)
    for arch in ("amd64", "arm64"):
        ours = {f"{a.name} {a.version}" for a in arts if arch in a.targets}
        extra = [] if recommends else ["--no-install-recommends"]
        assert ours == apt_get_simulate(tmp_path / f"apt-{arch}-{recommends}", apt_upstream, arch, packages, *extra)


@pytest.mark.parametrize(("forms", "fetched"), [(("", ".xz"), "Packages.xz"), (("",), "Packages")])
def test_index_form_falls_back_as_the_release_lists(work: Path, apt_upstream: FixtureAptUpstream,
                                                     forms: tuple[str, ...], fetched: str) -> None:
    ok("lock", "base")
    with_gz = lock_path(work).read_bytes()
    apt_upstream.publish(forms=forms)
    before = len(apt_upstream.log)
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == with_gz
    paths = sorted(p for _, p in apt_upstream.log[before:])
    assert paths == ["/debian/dists/bookworm/InRelease"] + [
        f"/debian/dists/bookworm/main/binary-{arch}/{fetched}" for arch in ("amd64", "arm64")
    ]


def test_refusal_index_bigger_than_the_release_says(
    work: Path, locked: bytes, apt_upstream: FixtureAptUpstream
) -> None:
    path = apt_upstream.dists / "main/binary-amd64/Packages.gz"
    path.write_bytes(path.read_bytes() + b"\0" * 100_000)
    out = refused(1, "lock", "--refresh", "base")
    assert "index main/binary-amd64/Packages.gz of suite 'bookworm': more than the" in out
    assert "bytes its Release line says" in out
    assert lock_path(work).read_bytes() == locked
