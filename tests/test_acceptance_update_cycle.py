"""Issue #6 acceptance: the whole update cycle, as operators run it, judged by the real pip and by Pulp.

Outside: fixture upstream -> lock -> snapshot -> full bundle. Inside: import into channel prod. Outside: one
project bumped in the profile -> lock -> snapshot; inside `state export`; outside `bundle export --since` in
chunks spread over two folders (a missing one is named); inside the delta is imported into channel dev only
(neither prod nor current moves). Then, inside a loopback-only namespace, `mirrorctl serve --channel prod` and
the real pip: it sees the old version, the new one after `promote`, the old one again after `rollback --channel
prod`, each at the next request. `publish --channel prod --to pulp` follows the channel into Pulp. A replayed
older bundle is refused, and an import killed mid-way leaves the previous snapshot served.
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mirrorctl.crossing.bundle.importer import CRASH_ENV
from mirrorctl.inside.store import Store
from tests.fixtures.cycle_sites import CycleCli, inside_site, outside_site
from tests.fixtures.netns import VENV_BIN, netns_script, python_client_env, read_step, require_netns, run_in_netns
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401
from tests.test_pulp_target import delete_repository

from .fixtures.upstream import FixtureUpstream, pypi_upstream_fixture  # noqa: F401 - fixture
from .fixtures.wheels import Dist

pytestmark = [pytest.mark.live, pytest.mark.netns]

PORT = 18097
PROFILE = """\
[pypi]
requirements = ["cycle-app", "cycle-lib{spec}"]
python = ["3.11"]
platforms = ["manylinux_2_28_x86_64"]
"""

SCRIPT = netns_script(
    textwrap.dedent(
        """\
    "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" serve --channel prod --port "$PORT" > "$OUT/serve.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
    for i in $(seq 200); do
        "$BASE_PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" \\
            2>/dev/null && break
        sleep 0.1
    done
    "$BASE_PYTHON" -m venv "$WORK/venv" > "$OUT/venv.log" 2>&1
    set -a; . "$WS/mirrorctl.env"; set +a
    see() { step "$1" "$WORK/venv/bin/python" -m pip download --no-deps --no-cache-dir -d "$WORK/$1" cycle-lib; }
    see before
    step promote "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" promote "$NEW_SNAPSHOT" --channel prod
    see promoted
    step rollback "$MIRRORCTL" --config "$INSIDE/mirrorctl.toml" rollback --channel prod
    see rolledback
    """
    )
)


@pytest.fixture
def repo_name(pulp_service: PulpService) -> Iterator[str]:
    name = f"mctl-cycle-{uuid.uuid4().hex[:10]}"
    yield name
    delete_repository(pulp_service, name)


def _pulp_versions(service: PulpService, repo: str) -> set[str]:
    page = httpx.get(f"{service.url}/pypi/{repo}/simple/cycle-lib/", follow_redirects=True, timeout=30)
    page.raise_for_status()
    return {v for v in ("1.0", "2.0") if f"cycle_lib-{v}-" in page.text}


def _downloaded(work: Path, step: str) -> list[str]:
    return sorted(p.name for p in (work / step).glob("*.whl"))


def test_full_then_delta_channels_rollback_replay_and_a_killed_import(
    tmp_path: Path, pypi_upstream: FixtureUpstream, pulp_service: PulpService, repo_name: str
) -> None:
    require_netns()
    cli = CycleCli(pulp_service)
    for dist in (
        Dist("cycle-app", "1.0", requires=["cycle-lib>=1"]),
        Dist("cycle-lib", "1.0", code="VALUE = 'old'\n"),
        Dist("cycle-lib", "2.0", code="VALUE = 'new'\n"),
    ):
        pypi_upstream.add(dist)

    # --- outside: full bundle -----------------------------------------------------------------------------
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    oc = outside_site(cli, outside, "pypi", pypi_upstream.url)
    profile = outside / "profiles" / "team.toml"
    profile.write_text(PROFILE.format(spec="<2"))
    cli(oc, "-q", "lock", "team")
    cli(oc, "-q", "snapshot", "team")
    full = tmp_path / "full.bundle"
    cli(oc, "-q", "bundle", "export", "--out", str(full), "team")

    # --- inside: import into prod ------------------------------------------------------------------------
    ic = inside_site(outside, inside, pulp_service, "pypi", repo_name)
    cli(ic, "-q", "import", str(full), "--channel", "prod", "--create")
    store = Store(inside / "store")
    old_snapshot = store.channel_view_id("prod")
    assert old_snapshot is not None and store.current_view_id() is None  # only the channel named moves
    cli(ic, "-q", "publish", "--channel", "prod", "--to", "pulp")
    assert _pulp_versions(pulp_service, repo_name) == {"1.0"}

    # --- one project bumped: state export inside, delta in chunks outside ----------------------------------
    state = tmp_path / "inside.state"
    cli(ic, "state", "export", "--out", str(state))
    profile.write_text(PROFILE.format(spec=">=2"))
    cli(oc, "-q", "lock", "team")
    cli(oc, "-q", "snapshot", "team")
    media = tmp_path / "media"
    media.mkdir()
    # The change-control view of a delta, inside: its locks are rebuilt from the inside's copies of the base.
    review = tmp_path / "review.bundle"
    cli(oc, "-q", "bundle", "export", "--since", str(state), "--out", str(review), "team")
    out = cli(ic, "diff", str(full), str(review), "--format", "markdown")
    assert "cycle-lib" in out and "1.0" in out and "2.0" in out, out
    out = cli(oc, "bundle", "export", "--since", str(state), "--chunk-size", "1K", "--out",
               str(media / "delta.bundle"), "team")  # fmt: skip
    assert "delta bundle" in out, out
    parts = sorted(media.glob("delta.bundle.part[0-9]*"))
    assert len(parts) >= 3
    a, b = tmp_path / "usb-a", tmp_path / "usb-b"
    a.mkdir()
    b.mkdir()
    shutil.move(str(media / "delta.bundle.parts.json"), a)
    for i, part in enumerate(parts):
        shutil.move(str(part), a if i % 2 else b)
    hidden = (b / parts[0].name).rename(tmp_path / parts[0].name)  # one part left at home
    out = cli(ic, "import", str(a / "delta.bundle.parts.json"), "--from", str(a), "--from", str(b), code=2)
    assert parts[0].name in out and "missing" in out, out
    assert store.channel_view_id("prod") == old_snapshot and store.current_view_id() is None  # nothing changed
    hidden.rename(b / parts[0].name)
    cli(ic, "-q", "import", str(a / "delta.bundle.parts.json"), "--from", str(a), "--from", str(b),
         "--channel", "dev", "--create")  # fmt: skip
    new_snapshot = store.channel_view_id("dev")
    assert new_snapshot not in (None, old_snapshot)
    assert store.channel_view_id("prod") == old_snapshot and store.current_view_id() is None
    listed = json.loads(cli(ic, "snapshots", "list", "--json"))
    by_id = {s["id"]: s for s in listed}
    assert "prod" in by_id[old_snapshot]["channels"] and "dev" in by_id[new_snapshot]["channels"]

    # --- a replayed older bundle is refused; nothing changes ----------------------------------------------
    out = cli(ic, "import", str(full), code=1)
    assert "rollback" in out and "older" in out, out
    channels = {n: store.channel_view_id(n) for n in ("current", "prod", "dev")}
    assert channels == {"current": None, "prod": old_snapshot, "dev": new_snapshot}

    # --- a killed import leaves the previous snapshot served -----------------------------------------------
    third = tmp_path / "third.bundle"
    cli(oc, "-q", "bundle", "export", "--out", str(third), "team")
    env = {**os.environ, CRASH_ENV: "view-written"}
    killed = subprocess.run(
        [str(VENV_BIN / "mirrorctl"), "--config", str(ic), "import", str(third)], env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert {n: store.channel_view_id(n) for n in ("current", "prod", "dev")} == channels

    # --- the real pip in a loopback-only namespace follows channel prod -------------------------------------
    ws = inside / "ws"
    cli(ic, "-q", "workspace-config", "--mirror-url", f"http://127.0.0.1:{PORT}", "--out", str(ws),
         "--install-dir", str(ws))  # fmt: skip
    run_out = tmp_path / "out"
    run_out.mkdir()
    work = tmp_path / "work"
    env = {
        **python_client_env(work, ws, isolated=False),
        "MIRRORCTL": str(VENV_BIN / "mirrorctl"),
        "INSIDE": str(inside),
        "PORT": str(PORT),
        "NEW_SNAPSHOT": new_snapshot or "",
    }
    done = run_in_netns(tmp_path / "cycle.sh", SCRIPT, run_out, env, timeout=600)
    assert done.returncode == 0, done.stderr
    for step in ("before", "promote", "promoted", "rollback", "rolledback"):
        rc, log = read_step(run_out, step)
        assert rc == 0, f"{step}: {log}"
    assert _downloaded(work, "before") == ["cycle_lib-1.0-py3-none-any.whl"]
    assert _downloaded(work, "promoted") == ["cycle_lib-2.0-py3-none-any.whl"]
    assert _downloaded(work, "rolledback") == ["cycle_lib-1.0-py3-none-any.whl"]

    # --- Pulp follows the channel: promoted -> 2.0, after the rollback -> 1.0 again -------------------------
    cli(ic, "-q", "promote", new_snapshot or "", "--channel", "prod")
    cli(ic, "-q", "publish", "--channel", "prod", "--to", "pulp")
    assert _pulp_versions(pulp_service, repo_name) == {"2.0"}
    cli(ic, "-q", "rollback", "--channel", "prod")
    cli(ic, "-q", "publish", "--channel", "prod", "--to", "pulp")
    assert _pulp_versions(pulp_service, repo_name) == {"1.0"}
    audit = cli(ic, "audit", "verify")
    assert "ok" in audit.lower(), audit
