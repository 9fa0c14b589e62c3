"""Online (opt-in: ``pytest --online``; never in CI): lock against the real archives this machine's own apt reads.

``mirrorctl init`` discovers every source of /etc/apt (the release, its -updates, its security archive, each with
its Signed-By keyring); a profile naming all their suites is locked, every InRelease verified with its own archive's
keyring, and packages that have updates come from the suite that holds the newest version. No host is written
here: the URLs are whatever this machine's apt is configured with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt import discover
from mirrorctl.ecosystems.apt.discover import discover_upstream
from mirrorctl.lockfile import read_lock
from tests.test_apt_lock import ok

pytestmark = pytest.mark.online

# Packages a Debian or Ubuntu release updates through its -updates or security suite during its life.
PACKAGES = ("libc6", "openssl", "tzdata", "libssl3")


def test_lock_from_this_machines_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = discover_upstream({})
    if found is None:
        pytest.skip("this machine's apt has no http(s) deb source")
    sources = [s for s in discover._sources(discover.APT_ETC) if s.uri.startswith(("http://", "https://"))]
    suites = list(dict.fromkeys(s for src in sources for s in src.suites))
    monkeypatch.chdir(tmp_path)
    ok("init", "--out", "mirrorctl.toml")
    text = (tmp_path / "mirrorctl.toml").read_text()
    assert len(suites) < 2 or "[upstreams.apt.archives." in text, text  # every source kept
    (tmp_path / "profiles").mkdir(exist_ok=True)
    quoted = ", ".join(f'"{s}"' for s in suites)
    wanted = ", ".join(f'"{p}"' for p in PACKAGES)
    (tmp_path / "profiles" / "base.toml").write_text(
        f'[apt]\nsuites = [{quoted}]\narchitectures = ["amd64"]\npackages = [{wanted}]\n')
    ok("lock", "base")
    arts = read_lock(tmp_path / "profiles" / "base.lock").artifacts
    assert {a.name for a in arts} >= set(PACKAGES) - {"libssl3"}
    assert all(a.attrs["suite"] in suites for a in arts)
    if len(suites) > 1:
        # A release past its first point release carries updates in its other suites.
        assert {a.attrs["suite"] for a in arts} - {suites[0]}, [(a.name, a.version, a.attrs["suite"]) for a in arts]
    ok("lock", "base", "--check")
