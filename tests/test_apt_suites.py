"""Several suites from several archives, resolved together as apt does (issue 13 item 6).

The fixture archive (tests/fixtures/apt_upstream.py) gets three more suites: ``bookworm-updates`` (same archive,
a newer postfix-lite), ``bookworm-backports`` (same archive, ``NotAutomatic: yes`` + ``ButAutomaticUpgrades: yes``:
an even newer libfoo and a package only it has) and ``bookworm-security`` in another archive under
``/debian-security/``, signed by another key (its own keyring in ``[upstreams.apt.archives.security]``), holding
a newer libfoo. The lock takes libfoo from the security suite (500 beats the backports' 100 whatever the
version), postfix-lite from -updates, the backports-only package from backports, and records each package's suite
and archive; the snapshot fetches each .deb from its own archive; the served repository offers every suite (an
empty one too) and the generated sources name them all. Refusals (a suite absent upstream, a keyring that does not
verify one archive, a suite no archive carries, two archives claiming a suite) name file and field and leave the
lock as it was. ``mirrorctl init`` keeps both sources of a deb822 file, each with its Signed-By.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mirrorctl.config import load_settings
from mirrorctl.ecosystems.apt import AptEcosystem
from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.ecosystems.apt.clientconfig import served_suites, sources_text
from mirrorctl.ecosystems.apt.repo import build_repository
from mirrorctl.ecosystems.apt.settings import archives
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.inside.serve.app import StoreContent
from mirrorctl.inside.store import Store
from mirrorctl.inside.workspace import render_workspace_config
from mirrorctl.lockfile import Artifact, read_lock
from mirrorctl.outside.initconfig import init_config
from tests.fixtures.apt_upstream import (  # noqa: F401  (fixtures used by name)
    ARCHES,
    FixtureAptUpstream,
    apt_fixture_material,
    apt_other_key_fixture,
    apt_upstream_fixture,
)
from tests.fixtures.debs import BuiltDeb, TestKey, build_deb
from tests.fixtures.netns import (
    PYTHON_PROBE,
    VENV_BIN,
    netns_script,
    python_client_env,
    read_step,
    require_netns,
    run_in_netns,
    serve_mirror,
)
from tests.fixtures.store_content import publish_view, put_blob
from tests.test_acceptance_apt import APTRUN
from tests.test_apt_lock import artifacts, lock_path, ok, refused, set_profile

SUITES = ("bookworm", "bookworm-updates", "bookworm-backports", "bookworm-security")
SECURITY_LIBFOO = "1.5-1+deb12u1"
BPO_LIBFOO = "2.0-1~bpo12+1"
UPDATES_POSTFIX = "3.7-1+deb12u1"

PROFILE = """\
[apt]
suites = ["bookworm", "bookworm-updates", "bookworm-backports", "bookworm-security"]
architectures = ["amd64", "arm64"]
packages = ["app", "bpo-tool"]
"""

Debs = list[tuple[BuiltDeb, tuple[str, ...]]]


@pytest.fixture(scope="session")
def suite_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Debs]:
    out = tmp_path_factory.mktemp("apt-suite-debs")
    lib = {"source": "libfoo", "multi_arch": "same"}

    def per_arch(name: str, version: str, **kw: object) -> Debs:
        return [(build_deb(out, name, version, arch, **kw), (arch,)) for arch in ARCHES]  # type: ignore[arg-type]

    return {
        "bookworm-updates": per_arch("postfix-lite", UPDATES_POSTFIX, provides="mail-transport-agent"),
        "bookworm-backports": [*per_arch("libfoo", BPO_LIBFOO, **lib),
                               (build_deb(out, "bpo-tool", "1.0-1~bpo12+1", "all"), ARCHES)],
        "bookworm-security": per_arch("libfoo", SECURITY_LIBFOO, **lib),
    }


@pytest.fixture
def upstream(
    apt_upstream: FixtureAptUpstream, suite_debs: dict[str, Debs], apt_other_key: TestKey
) -> FixtureAptUpstream:
    apt_upstream.add_suite("bookworm-updates", suite_debs["bookworm-updates"])
    apt_upstream.add_suite("bookworm-backports", suite_debs["bookworm-backports"],
                           release_fields={"NotAutomatic": "yes", "ButAutomaticUpgrades": "yes"})
    apt_upstream.add_suite("bookworm-security", suite_debs["bookworm-security"], prefix="/debian-security",
                           key=apt_other_key)
    apt_upstream.publish()
    return apt_upstream


def config_text(up: FixtureAptUpstream, *, security_keyring: Path | None = None, main_suites: str = "") -> str:
    sec = up.extra["bookworm-security"]
    return (
        f'[store]\npath = "store"\n[upstreams.apt]\nurl = "{up.url}"\nkeyring = "{up.keyring}"\n{main_suites}'
        f'[upstreams.apt.archives.security]\nurl = "{sec.url}"\nkeyring = "{security_keyring or sec.keyring}"\n'
        'suites = ["bookworm-security"]\n[fetch]\nretries = 0\n'
    )


@pytest.fixture
def work(tmp_path: Path, upstream: FixtureAptUpstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text(config_text(upstream))
    (tmp_path / "profiles").mkdir()
    set_profile(tmp_path, PROFILE)
    return tmp_path


def by_arch(arts: list[Artifact], arch: str) -> dict[str, Artifact]:
    return {a.name: a for a in arts if arch in a.targets}


def test_lock_resolves_every_suite_together_as_apt_does(work: Path, upstream: FixtureAptUpstream) -> None:
    ok("lock", "base")
    arts = artifacts(work)
    for arch in ARCHES:
        got = by_arch(arts, arch)
        # The security suite's libfoo: newer than bookworm's 1.5-1; backports' 2.0 is newer still but its suite is
        # NotAutomatic + ButAutomaticUpgrades (priority 100 < 500), as apt-get would choose.
        assert got["libfoo"].version == SECURITY_LIBFOO
        assert got["libfoo"].attrs["suite"] == "bookworm-security"
        assert got["libfoo"].attrs["archive"] == "security"
        assert got["postfix-lite"].version == UPDATES_POSTFIX
        assert got["postfix-lite"].attrs["suite"] == "bookworm-updates"
        assert "archive" not in got["postfix-lite"].attrs  # [upstreams.apt] itself
        assert got["bpo-tool"].attrs["suite"] == "bookworm-backports"  # only there: a candidate at 100
        assert got["app"].attrs["suite"] == "bookworm"
    assert {a.attrs["suites"] for a in arts} == {" ".join(SUITES)}
    # Each suite's InRelease from its own archive, each verified with its own keyring (two signers).
    paths = [p for _, p in upstream.log]
    assert "/debian-security/dists/bookworm-security/InRelease" in paths
    assert "/debian/dists/bookworm-security/InRelease" not in paths
    text = lock_path(work).read_text()
    assert "127.0.0.1" not in text
    assert ok("lock", "base", "--check") is not None


def test_worker_processes_give_the_same_lock(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Big suites read each architecture's indexes (of every suite) in its own process; force that path here.
    ok("lock", "base")
    threaded = lock_path(work).read_bytes()
    monkeypatch.setattr("mirrorctl.ecosystems.apt.lock._PARALLEL_MIN_BYTES", 0)
    ok("lock", "--refresh", "base")
    assert lock_path(work).read_bytes() == threaded


def test_priorities_and_pins_choose_as_apt_preferences_do(work: Path) -> None:
    set_profile(work, PROFILE + 'priorities = { "bookworm-backports" = 500 }\n')
    ok("lock", "base")
    libfoo = by_arch(artifacts(work), "amd64")["libfoo"]
    assert (libfoo.version, libfoo.attrs["suite"]) == (BPO_LIBFOO, "bookworm-backports")  # same priority: newest
    set_profile(work, PROFILE + 'priorities = { "bookworm-security" = -1 }\n')
    ok("lock", "base")
    libfoo = by_arch(artifacts(work), "amd64")["libfoo"]
    assert (libfoo.version, libfoo.attrs["suite"]) == ("1.5-1", "bookworm")  # never from a negative priority
    set_profile(work, PROFILE.replace('"app",', '"app", "libfoo=1.5-1",'))
    ok("lock", "base")
    libfoo = by_arch(artifacts(work), "arm64")["libfoo"]
    assert (libfoo.version, libfoo.attrs["suite"]) == ("1.5-1", "bookworm")  # a version pin beats priorities


def test_snapshot_fetches_each_deb_from_its_archive(work: Path, upstream: FixtureAptUpstream) -> None:
    ok("lock", "base")
    ok("snapshot", "base")
    store = Store(work / "store")
    for a in artifacts(work):
        assert store.verify_blob(a.sha256, a.size) is None
    debs = [p for _, p in upstream.log if p.endswith(".deb")]
    assert any(p.startswith("/debian-security/pool/") and f"libfoo_{SECURITY_LIBFOO}" in p for p in debs), debs
    assert not any(p.startswith("/debian/") and SECURITY_LIBFOO in p for p in debs), debs


def test_snapshot_verifies_each_archives_inrelease_with_its_own_keyring(work: Path,
                                                                       upstream: FixtureAptUpstream) -> None:
    ok("lock", "base")
    good = (work / "mirrorctl.toml").read_text()
    (work / "mirrorctl.toml").write_text(config_text(upstream, security_keyring=upstream.keyring))
    out = refused(1, "snapshot", "base")
    assert "InRelease of suite 'bookworm-security': signature refused" in out, out
    assert "upstreams.apt.archives.security.keyring" in out
    assert not [p for _, p in upstream.log if p.endswith(".deb")]  # refused before any download
    assert not any(Store(work / "store").has_blob(a.sha256) for a in artifacts(work))
    (work / "mirrorctl.toml").write_text(good)
    ok("snapshot", "base")
    inreleases = [p for _, p in upstream.log if p.endswith("/InRelease")]
    assert "/debian-security/dists/bookworm-security/InRelease" in inreleases
    before = len(upstream.log)
    ok("snapshot", "base")  # everything present: not a request, InRelease included
    assert len(upstream.log) == before


def test_served_repository_and_sources_offer_every_suite(work: Path) -> None:
    set_profile(work, PROFILE.replace(', "bpo-tool"', ""))  # nothing comes from backports now
    ok("lock", "base")
    ok("snapshot", "base")
    arts = artifacts(work)
    assert not [a for a in arts if a.attrs["suite"] == "bookworm-backports"]
    store = Store(work / "store")
    publish_view(store, arts)
    content = StoreContent(store)
    view = content.current()
    assert view is not None
    repo = build_repository(view)
    assert sorted(repo.suites) == sorted(SUITES)  # the empty backports suite too: a later update lands in it
    assert b"Package: libfoo\n" in repo.files["dists/bookworm-security/main/binary-amd64/Packages"]
    assert SECURITY_LIBFOO.encode() in repo.files["dists/bookworm-security/main/binary-amd64/Packages"]
    assert repo.files["dists/bookworm-backports/main/binary-amd64/Packages"] == b""
    suites = served_suites(content)
    assert list(suites) == sorted(SUITES)
    text = sources_text("http://mirror.internal/apt/", suites, "/etc/mirrorctl/k.asc")
    assert [line for line in text.splitlines() if line.startswith("Suites:")] == [
        f"Suites: {s}" for s in sorted(SUITES)]
    # Pulp publishes only suites its packages are placed in: its sources name only those.
    assert "bookworm-backports" not in served_suites(content, siblings=False)


# -- refusals: file and field named, the lock unchanged -------------------------------------------------------


@pytest.fixture
def locked(work: Path) -> bytes:
    ok("lock", "base")
    return lock_path(work).read_bytes()


def test_refusal_suite_absent_upstream(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace('"bookworm-security"]', '"bookworm-security", "bookworm-proposed"]'))
    out = refused(1, "lock", "base")
    assert "base.toml: apt.suites[4] (line 2): suite 'bookworm-proposed' is not on upstreams.apt" in out, out
    assert "HTTP 404" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_keyring_that_does_not_verify_one_archive(work: Path, locked: bytes,
                                                          upstream: FixtureAptUpstream) -> None:
    (work / "mirrorctl.toml").write_text(config_text(upstream, security_keyring=upstream.keyring))
    out = refused(1, "lock", "base", "--refresh")
    assert "InRelease of suite 'bookworm-security': signature refused" in out, out
    assert f"upstreams.apt.archives.security.keyring ({upstream.keyring}) does not vouch for" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_suite_no_archive_carries(work: Path, locked: bytes, upstream: FixtureAptUpstream) -> None:
    (work / "mirrorctl.toml").write_text(config_text(upstream, main_suites='suites = ["bookworm"]\n'))
    out = refused(2, "lock", "base", "--refresh")
    assert "base.toml: apt.suites[1] (line 2): no archive of mirrorctl.toml carries suite 'bookworm-updates'" in out
    assert lock_path(work).read_bytes() == locked


def test_refusal_two_archives_claim_a_suite(work: Path, locked: bytes, upstream: FixtureAptUpstream) -> None:
    (work / "mirrorctl.toml").write_text(config_text(upstream, main_suites='suites = ["bookworm-security"]\n'))
    out = refused(2, "lock", "base", "--refresh")
    assert "mirrorctl.toml: upstreams.apt.archives.security.suites names 'bookworm-security', which upstreams.apt " \
           "carries too" in out, out
    assert lock_path(work).read_bytes() == locked


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('suite = "bookworm"\n', "apt.suites (line 2): give either suite or suites, not both"),
        ('priorities = { "sid" = 500 }\n', "apt.priorities (line 5): 'sid' is not one of the profile's suites"),
        ('priorities = { "bookworm" = "high" }\n', "apt.priorities (line 5): bookworm = 'high' is not a whole"),
    ],
)
def test_refusal_profile_fields(work: Path, locked: bytes, extra: str, message: str) -> None:
    set_profile(work, PROFILE + extra)
    out = refused(2, "lock", "base")
    assert message in out, out
    assert lock_path(work).read_bytes() == locked


def test_lock_check_sees_a_dropped_suite(work: Path, locked: bytes) -> None:
    set_profile(work, PROFILE.replace(', "bookworm-security"]', "]"))
    out = refused(1, "lock", "base", "--check")
    assert "is from suite 'bookworm-security'" in out, out
    assert lock_path(work).read_bytes() == locked


# -- init: every deb822 source, each with its Signed-By -------------------------------------------------------


def test_init_keeps_both_deb822_sources_and_the_lock_uses_them(
    work: Path, upstream: FixtureAptUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    sec = upstream.extra["bookworm-security"]
    etc = work / "etc"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        f"Types: deb\nURIs: {upstream.url}\nSuites: bookworm bookworm-updates bookworm-backports\nComponents: main\n"
        f"Signed-By: {upstream.keyring}\n\n"
        f"Types: deb\nURIs: {sec.url.rstrip('/')}\nSuites: bookworm-security\nComponents: main\n"
        f"Signed-By: {sec.keyring}\n"
    )
    import mirrorctl.ecosystems.apt.discover as discover

    monkeypatch.setattr(discover.discover_upstream, "__kwdefaults__", {"etc": etc})
    config = work / "mirrorctl.toml"
    config.unlink()
    init_config(config, {"apt": AptEcosystem()}, {}, store="store", signing_key=None, trusted_keys=())
    up = load_settings(config, ecosystems=load_ecosystems()).upstream("apt")
    got = [(a.name, a.url, a.keyring, a.suites) for a in archives(up)]
    assert got == [("", upstream.url, upstream.keyring, None),
                   ("debian-security", sec.url, sec.keyring, ("bookworm-security",))]
    ok("lock", "base")
    libfoo = by_arch(artifacts(work), "amd64")["libfoo"]
    assert (libfoo.version, libfoo.attrs["archive"]) == (SECURITY_LIBFOO, "debian-security")
    assert read_lock(lock_path(work)).targets == ("apt:amd64", "apt:arm64")


# -- the real apt-get, inside a loopback-only namespace, reads every suite from the mirror --------------------

NETNS_PORT = 18093

NETNS_SCRIPT = netns_script(
    serve_mirror(PYTHON_PROBE)
    + 'step update sh "$APTRUN" "$WS" suites update\n'
    + 'step install sh "$APTRUN" "$WS" suites install --download-only app\n'
    + 'd="$WORK/state-suites"\n'
    + 'step policy env APT_CONFIG="$WS/mirrorctl-apt.conf" apt-cache -o Dir::State::Lists="$d/lists" '
      '-o Dir::Cache="$d/cache" -o Dir::State::status="$d/status" -o APT::Architecture=amd64 policy libfoo\n'
)


@pytest.mark.netns
def test_real_apt_get_installs_the_security_version_from_the_mirror(work: Path) -> None:
    require_netns(lambda: None if shutil.which("apt-get") and shutil.which("gpgv") else "needs apt-get and gpgv")
    ok("lock", "base")
    ok("snapshot", "base")
    inside = Store(work / "inside")
    for a in artifacts(work):  # the state an import leaves: the locked .debs, the view, an archive key
        put_blob(inside, Store(work / "store").blob_path(a.sha256).read_bytes())
    publish_view(inside, artifacts(work))
    ArchiveKey(inside.root / "keys").generate()
    base = f"http://127.0.0.1:{NETNS_PORT}"
    ws = work / "ws"
    render_workspace_config(base, ws, {"apt": AptEcosystem()}, install_dir=ws, content=StoreContent(inside))
    sources = (ws / "sources.list.d" / "mirrorctl.sources").read_text()
    assert [line for line in sources.splitlines() if line.startswith("Suites:")] == [
        f"Suites: {s}" for s in sorted(SUITES)]
    (work / "inside.toml").write_text(f'[store]\npath = "{inside.root}"\n')
    (work / "aptrun.sh").write_text(APTRUN)
    out = work / "out"
    out.mkdir()
    env = {**python_client_env(work, ws), "APTRUN": str(work / "aptrun.sh"), "PORT": str(NETNS_PORT),
           "CONFIG": str(work / "inside.toml"), "MIRRORCTL": str(VENV_BIN / "mirrorctl"), "HOME": str(work)}
    done = run_in_netns(work / "suites.sh", NETNS_SCRIPT, out, env)
    serve_log = (out / "serve.log").read_text() if (out / "serve.log").exists() else ""
    assert done.returncode == 0, done.stderr
    assert (out / "server-up").read_text().strip() == "1", serve_log
    rc, log = read_step(out, "update")
    assert rc == 0, log + serve_log
    for suite in SUITES:  # every suite's InRelease, verified against the generated keyring
        assert f"{base}/apt {suite} InRelease" in log, log
    assert "W:" not in log and "E:" not in log, log
    rc, log = read_step(out, "install")
    assert rc == 0, log + serve_log
    got = sorted(p.name for p in (work / "state-suites" / "cache" / "archives").glob("*.deb"))
    assert f"libfoo_{SECURITY_LIBFOO.replace(':', '%3a')}_amd64.deb" in got, log
    assert f"postfix-lite_{UPDATES_POSTFIX}_amd64.deb" in got, log
    rc, log = read_step(out, "policy")
    assert rc == 0 and f"Candidate: {SECURITY_LIBFOO}" in log, log
