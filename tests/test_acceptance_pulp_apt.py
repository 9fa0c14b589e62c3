"""The real apt-get against apt content published into Pulp (pulp_deb, signed by the services' signing service).

apt runs in a loopback-only network namespace; Pulp's content app is carried in over a unix socket bridge
(tests/fixtures/netns_bridge.py, the same port inside as outside) and nothing else. apt uses only the sources
written here (host sources excluded with Dir::Etc::SourceList=/dev/null and its own SourceParts), an empty dpkg
status and its own state and cache, and trusts only the key the target hands to workspaces (trust_files).
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.progress import SilentProgress
from mirrorctl.targets.pulp import PulpTarget
from mirrorctl.targets.pulp.deb import WORKSPACE_KEYRING
from tests.conftest import skip_or_fail
from tests.fixtures.debs import TestKey
from tests.fixtures.netns import BRIDGE, netns_script, read_step, require_netns, run_in_netns, tcp_bridges
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401
from tests.fixtures.store_content import publish_view

from .test_pulp_deb import SUITE, Debs, client, deb_settings, debs, environ, repo_name, signing_service_name  # noqa: F401

pytestmark = [pytest.mark.live, pytest.mark.netns]

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    python3 "$BRIDGE" "$CONTENT_PORT" "$CONTENT_SOCK" > "$OUT/bridge.log" 2>&1 &
    B=$!
    trap 'kill $B 2>/dev/null' EXIT
    sleep 0.5
    for ws in good wrong; do
        A="$WORK/apt-$ws"
        mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/etc/preferences.d"
        : > "$A/status"
        set -- -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$WORK/sources-$ws" \\
            -o "Dir::State=$A" -o "Dir::State::Lists=$A/lists" -o "Dir::State::status=$A/status" \\
            -o "Dir::Cache=$A/cache" -o "Dir::Etc::Preferences=/dev/null" \\
            -o "Dir::Etc::PreferencesParts=$A/etc/preferences.d" -o Dir::Etc::Trusted=/dev/null \\
            -o "Dir::Etc::TrustedParts=$A/etc" -o APT::Architecture=amd64 -o APT::Architectures::=amd64 \\
            -o APT::Sandbox::User=root -o Debug::NoLocking=1 -o Acquire::Languages=none
        step "update-$ws" apt-get "$@" update
        step "install-$ws" apt-get "$@" install -y --download-only mctl-app
        ls "$A/cache/archives" > "$OUT/archives-$ws.txt"
    done
    """
    )
)


async def test_real_apt_get_verifies_pulps_signature_and_downloads_the_closure(
    pulp_service: PulpService, debs: Debs, repo_name: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    require_netns()
    if shutil.which("apt-get") is None:
        skip_or_fail("apt-get is not installed")
    arts = [
        debs.artifact("mctl-app", "1.0-1", depends="mctl-lib (>= 2.0) | mctl-alt, mctl-doc", pre_depends="mctl-base"),
        debs.artifact("mctl-lib", "1:2.1-1", source="mctl-lib-src"),
        debs.artifact("mctl-lib", "1:1.0-1", source="mctl-lib-src"),  # older: apt must take 2.1
        debs.artifact("mctl-base", "3.0"),
        debs.artifact("mctl-doc", "0.1", "all"),
        debs.artifact("mctl-unrelated", "9.9"),  # published but not needed: never downloaded
    ]
    publish_view(debs.store, arts)
    settings = deb_settings(pulp_service, repo_name, signing_service_name(pulp_service))
    target = PulpTarget(settings, client, environ(pulp_service), ecosystems=load_ecosystems())
    result = await target.publish("apt", arts, debs.store, SilentProgress())
    assert result.changed and result.uploaded == len(arts)

    # The "good" workspace uses only what `mirrorctl workspace-config --target pulp` writes: the sources (with the
    # suites of the store's view) and the signing service's key, named by Signed-By.
    trust = await target.trust_files("apt")
    assert set(trust) == {WORKSPACE_KEYRING} and "BEGIN PGP PUBLIC KEY BLOCK" in trust[WORKSPACE_KEYRING]
    work = tmp_path / "work"
    ws = work / "good"
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{debs.store.root}"\n\n[targets.pulp]\nkind = "pulp"\nurl = "{pulp_service.url}"\n'
        f'content-url = "{pulp_service.content_url}"\nusername-env = "T_PULP_USER"\n'
        f'password-env = "T_PULP_PASSWORD"\nrepositories = {{ apt = "{repo_name}" }}\n'
        f'apt-signing-service = "{signing_service_name(pulp_service)}"\n'
    )
    done = await asyncio.to_thread(
        CliRunner().invoke, app,
        ["--config", str(config), "workspace-config", "--target", "pulp", "--out", str(ws), "--install-dir", str(ws)],
        env=environ(pulp_service),
    )
    assert done.exit_code == 0, done.output
    assert (ws / WORKSPACE_KEYRING).read_text() == trust[WORKSPACE_KEYRING]
    assert not (debs.store.root / "keys" / "apt").exists()  # Pulp signs: no inside archive key was needed
    sources = (ws / "sources.list.d" / "mirrorctl.sources").read_text()
    assert f"URIs: {target.endpoint('apt')}" in sources and f"Signed-By: {ws / WORKSPACE_KEYRING}" in sources
    (work / "sources-good").symlink_to(ws / "sources.list.d")
    other = await asyncio.to_thread(TestKey.create, tmp_path / "gnupg-other", "not the archive key")
    (work / "wrong").mkdir()
    (work / "wrong" / "other.asc").write_bytes(other.public_keyring(armor=True))
    (work / "sources-wrong").mkdir()
    wrong = sources.replace(str(ws / WORKSPACE_KEYRING), str(work / "wrong" / "other.asc"))
    (work / "sources-wrong" / "mirrorctl.sources").write_text(wrong)

    port = urlsplit(pulp_service.content_url).port
    assert port
    sock = tmp_path / "content.sock"
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "BRIDGE": str(BRIDGE), "CONTENT_PORT": str(port), "CONTENT_SOCK": str(sock), "WORK": str(work)}

    def run() -> subprocess.CompletedProcess[str]:
        with tcp_bridges((sock, port)):
            return run_in_netns(tmp_path / "acceptance.sh", SCRIPT, out, env)

    ran = await asyncio.to_thread(run)
    assert ran.returncode == 0, ran.stderr

    rc, log = read_step(out, "update-good")
    assert rc == 0 and "W:" not in log and "Err:" not in log, log
    assert f"{SUITE} InRelease" in log, log  # the clearsigned Release, verified against Signed-By only
    rc, log = read_step(out, "install-good")
    assert rc == 0, log
    fetched = set((out / "archives-good.txt").read_text().split()) - {"lock", "partial"}
    by_sha = {debs.store.blob_path(a.sha256).read_bytes(): a for a in arts}
    got = {by_sha[(work / "apt-good" / "cache" / "archives" / f).read_bytes()].name for f in fetched}
    assert got == {"mctl-app", "mctl-lib", "mctl-base", "mctl-doc"}
    lib = next(f for f in fetched if f.startswith("mctl-lib_"))
    assert "2.1-1" in lib, fetched

    # The same repository with a key that did not sign it: apt refuses the Release and finds nothing.
    rc, log = read_step(out, "update-wrong")
    assert "NO_PUBKEY" in log or "not signed" in log or "signatures couldn't be verified" in log, log
    rc, log = read_step(out, "install-wrong")
    assert rc != 0 and "mctl-app" in log, log
    assert not set((out / "archives-wrong.txt").read_text().split()) - {"lock", "partial"}
