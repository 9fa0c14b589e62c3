"""Channels: promote, rollback --channel, serving channels (one, several), and every refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.channels import history, promote, rollback, validate_channel_name
from mirrorctl.inside.serve.runner import check_channels
from mirrorctl.inside.store import Store
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import ECOSYSTEMS, NOW, fingerprint
from tests.fixtures.snapshots import Snapshots, client, project_names, two_snapshots

FULL = {"alpha", "beta", "gamma"}
DROPPED = {"alpha", "beta"}


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path)


def events(store: Store) -> list[dict]:
    return [e for e in audit.last_entries(store) if e["event"] in ("promote", "rollback", "gc")]


def test_promote_points_the_channel_and_remembers_the_one_before(snaps: Snapshots) -> None:
    store = snaps.store
    done = promote(store, snaps.first[:23], "prod", SILENT)  # a unique prefix is enough
    assert done.view_id == snaps.first and done.previous is None and done.changed
    link = store.root / "channels" / "prod"
    assert link.is_symlink() and os.readlink(link) == f"../views/{snaps.first}"
    assert (link / "view.json").is_file()
    promote(store, snaps.second, "prod", SILENT)
    assert store.channel_view_id("prod") == snaps.second
    assert history(store, "prod")["previous"] == [snaps.first]
    again = promote(store, snaps.second, "prod", SILENT)
    assert not again.changed and history(store, "prod")["previous"] == [snaps.first]
    assert store.current_view_id() == snaps.second  # current is not touched by a promote of prod
    recorded = events(store)
    assert [(e["event"], e["channel"], e["view-id"], e["result"]) for e in recorded] == [
        ("promote", "prod", snaps.first, "ok"),
        ("promote", "prod", snaps.second, "ok"),
        ("promote", "prod", snaps.second, "noop"),
    ]
    audit.verify(store)


def test_rollback_goes_back_and_loses_nothing(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "prod", SILENT)
    blobs_before = sorted(p.name for p in (store.root / "blobs").rglob("*") if p.is_file())
    done = rollback(store, "prod", SILENT)
    assert (done.view_id, done.previous) == (snaps.first, snaps.second)
    assert store.channel_view_id("prod") == snaps.first
    assert sorted(p.name for p in (store.root / "blobs").rglob("*") if p.is_file()) == blobs_before
    assert snaps.second in store.view_ids()  # the newer snapshot stays, and can be promoted again
    assert history(store, "prod")["previous"] == []
    assert [e["action"] for e in history(store, "prod")["log"]] == ["promote", "promote", "rollback"]
    promote(store, snaps.second, "prod", SILENT)
    assert store.channel_view_id("prod") == snaps.second
    e = events(store)[-2]
    assert (e["event"], e["channel"], e["view-id"], e["from"], e["result"]) == (
        "rollback", "prod", snaps.first, snaps.second, "ok"
    )


def test_rollback_of_current_undoes_the_last_import(snaps: Snapshots) -> None:
    store = snaps.store
    assert history(store, "current")["previous"] == [snaps.first]  # import recorded the step
    rollback(store, "current", SILENT)
    assert store.current_view_id() == snaps.first
    # Importing the newer bundle again serves it again (a new snapshot of the same bundle).
    report = import_bundle(
        snaps.world.root / "2.bundle", store, snaps.world.trusted, ECOSYSTEMS, now=NOW
    )
    assert report.view_id and store.current_view_id() == report.view_id


def test_rollback_skips_an_entry_left_by_a_crash_before_the_switch(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "prod", SILENT)
    # As if a promote crashed after writing history (pushing `second`) but before switching the link.
    doc = store.read_state("channel-prod")
    store.write_state("channel-prod", {**doc, "previous": [*doc["previous"], snaps.second]})
    assert rollback(store, "prod", SILENT).view_id == snaps.first


def test_import_with_channel_moves_that_channel_only(tmp_path: Path) -> None:
    # Issue 13 item 1 changes this on purpose: an import with --channel used to move current as well.
    snaps = two_snapshots(tmp_path)
    store = snaps.store
    world = snaps.world
    current_history = history(store, "current")
    report = import_bundle(
        world.export("3.bundle"), store, world.trusted, ECOSYSTEMS, now=NOW, channels=["dev"]
    )
    assert store.channel_view_id("dev") == report.view_id != store.current_view_id() == snaps.second
    assert history(store, "current") == current_history
    # The same bundle again makes no new snapshot, but points another channel at the one that serves it.
    again = import_bundle(
        world.root / "3.bundle", store, world.trusted, ECOSYSTEMS, now=NOW, channels=["staging"]
    )
    assert again.noop and store.channel_view_id("staging") == report.view_id
    assert store.current_view_id() == snaps.second and len(store.view_ids()) == 3
    # And without --channel it moves current to that snapshot (still no new one).
    plain = import_bundle(world.root / "3.bundle", store, world.trusted, ECOSYSTEMS, now=NOW)
    assert plain.noop and store.current_view_id() == report.view_id and len(store.view_ids()) == 3


def test_import_with_a_bad_channel_name_changes_nothing(snaps: Snapshots) -> None:
    before = fingerprint(snaps.store)
    world = snaps.world
    with pytest.raises(UserError, match="channel name 'Prod!' is not allowed"):
        import_bundle(world.export("3.bundle"), snaps.store, world.trusted, ECOSYSTEMS, now=NOW, channels=["Prod!"])
    assert fingerprint(snaps.store) == before


async def test_a_served_channel_follows_promote_and_rollback_at_the_next_request(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    async with client(store, ["prod"]) as c:  # one channel: the plain layout
        assert await project_names(c) == FULL
        assert (await c.get("/")).json()["view-id"] == snaps.first
        promote(store, snaps.second, "prod", SILENT)
        assert await project_names(c) == DROPPED
        rollback(store, "prod", SILENT)
        assert await project_names(c) == FULL
    async with client(store) as c:  # no channel: current, as before
        assert await project_names(c) == DROPPED


async def test_several_channels_each_under_its_name(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "dev", SILENT)
    async with client(store, ["dev", "prod"]) as c:
        assert await project_names(c, "/dev") == DROPPED
        assert await project_names(c, "/prod") == FULL
        assert (await c.get("/prod/pypi/simple/gamma/")).status_code == 200
        assert (await c.get("/dev/pypi/simple/gamma/")).status_code == 404
        # Issue 13 item 2 changes this on purpose (it was a 404): the plain layout serves the default channel,
        # here current (no default configured).
        assert await project_names(c) == DROPPED
        assert (await c.get("/")).json()["channels"] == {"dev": snaps.second, "prod": snaps.first}
        assert (await c.get("/dev/")).json()["view-id"] == snaps.second
        assert (await c.get("/healthz")).text == "ok\n"
        promote(store, snaps.second, "prod", SILENT)
        assert await project_names(c, "/prod") == DROPPED


# --- refusals: each names the problem and changes nothing -----------------------------------------------------


def test_refusals_name_the_problem_and_change_nothing(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    before = fingerprint(store)
    links = {n: store.channel_view_id(n) for n in store.channel_names()}

    with pytest.raises(UserError, match=r"no channel 'staging' \(channels: current, prod\)"):
        rollback(store, "staging", SILENT)
    with pytest.raises(UserError, match="no snapshot 'nosuch'"):
        promote(store, "nosuch", "prod", SILENT)
    with pytest.raises(UserError, match="is ambiguous"):
        promote(store, snaps.first[:4], "prod", SILENT)  # both snapshots start with the year
    with pytest.raises(UserError, match="channel name 'Prod' is not allowed"):
        promote(store, snaps.second, "Prod", SILENT)
    with pytest.raises(UserError, match=r"channel name '\.\./x' is not allowed"):
        promote(store, snaps.second, "../x", SILENT)
    with pytest.raises(UserError, match="channel name 'healthz' is not allowed"):
        validate_channel_name("healthz")
    with pytest.raises(UserError, match="channel prod: no earlier snapshot to go back to"):
        rollback(store, "prod", SILENT)
    with pytest.raises(UserError, match="no channel 'staging'"):
        check_channels(store, ["prod", "staging"])

    assert fingerprint(store) == before
    assert {n: store.channel_view_id(n) for n in store.channel_names()} == links
    refused = [e for e in events(store) if e["result"] == "refused"]
    assert len(refused) == 6 and all(e["error"] for e in refused)  # audited, validate/check are not actions


def test_promote_refuses_a_snapshot_with_missing_blobs_naming_them(snaps: Snapshots) -> None:
    store = snaps.store
    gamma = snaps.world.artifacts[2]
    store.blob_path(gamma.sha256).unlink()
    before = fingerprint(store)
    with pytest.raises(IntegrityError) as exc:
        promote(store, snaps.first, "prod", SILENT)
    assert gamma.filename in exc.value.message and gamma.sha256 in exc.value.message
    assert "channel prod not changed" in exc.value.message
    assert store.channel_view_id("prod") is None and fingerprint(store) == before


# --- the CLI ---------------------------------------------------------------------------------------------------


def cli(root: Path, *args: str) -> tuple[int, str]:
    (root / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output.replace("\n", " ")


def test_cli_promote_rollback_and_channels(snaps: Snapshots) -> None:
    root = snaps.world.root
    code, out = cli(root, "promote", snaps.first[:23], "--channel", "prod", "--create")  # prod is new
    assert code == 0 and f"channel prod: now {snaps.first}" in out, out
    code, out = cli(root, "promote", snaps.second, "--channel", "prod")
    assert code == 0 and f"(was {snaps.first})" in out
    code, out = cli(root, "channels", "list")
    # An aligned table (issue 13 item 10): channel, snapshot, created, sequence, rollback steps.
    words = out.split()  # this cli() joins the lines
    prod = words[words.index("prod") :][:5]
    assert code == 0 and prod[1] == snaps.second and prod[-1] == "1", out
    code, out = cli(root, "rollback", "--channel", "prod")
    assert code == 0 and f"channel prod: now {snaps.first} (was {snaps.second})" in out
    code, out = cli(root, "channels", "history", "prod")
    assert code == 0 and out.count("promote") == 2 and "rollback" in out


def test_cli_promote_refuses_a_channel_that_does_not_exist_without_create(snaps: Snapshots) -> None:
    root = snaps.world.root
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    before = fingerprint(store)
    links_before = store.channel_names()
    code, out = cli(root, "promote", snaps.second, "--channel", "prdo")  # a typo of prod
    assert code == 2, out
    assert "channel 'prdo' does not exist (channels: current, prod); nothing changed" in out
    assert "--create" in out and "Traceback" not in out
    assert fingerprint(store) == before and store.channel_names() == links_before
    assert store.channel_view_id("prdo") is None and history(store, "prdo")["log"] == []
    refused = events(store)[-1]
    assert (refused["event"], refused["channel"], refused["result"]) == ("promote", "prdo", "refused")
    # An existing channel and current need no --create; --create makes a new one.
    code, out = cli(root, "promote", snaps.second, "--channel", "prod")
    assert code == 0 and store.channel_view_id("prod") == snaps.second, out
    code, out = cli(root, "promote", snaps.first, "--channel", "current")
    assert code == 0 and store.current_view_id() == snaps.first, out
    code, out = cli(root, "promote", snaps.first, "--channel", "staging", "--create")
    assert code == 0 and store.channel_view_id("staging") == snaps.first, out


def test_promote_takes_a_channel_as_the_snapshot(snaps: Snapshots) -> None:
    root = snaps.world.root
    store = snaps.store
    promote(store, snaps.first, "staging", SILENT)
    promote(store, snaps.second, "prod", SILENT)
    code, out = cli(root, "promote", "channel:staging", "--channel", "prod")
    assert code == 0 and f"channel prod: now {snaps.first} (was {snaps.second})" in out, out
    assert store.channel_view_id("prod") == snaps.first == store.channel_view_id("staging")
    done = promote(store, "channel:current", "prod", SILENT)
    assert done.view_id == snaps.second == store.channel_view_id("prod")
    # An unknown channel as the source is refused, named, and changes nothing.
    before = fingerprint(store)
    code, out = cli(root, "promote", "channel:nosuch", "--channel", "prod")
    assert code == 2 and "channel:nosuch" in out and "no channel 'nosuch'" in out, out
    assert fingerprint(store) == before and store.channel_view_id("prod") == snaps.second


def test_import_refuses_a_new_channel_without_create_and_changes_nothing(snaps: Snapshots) -> None:
    store = snaps.store
    world = snaps.world
    promote(store, snaps.first, "prod", SILENT)
    bundle = world.export("3.bundle")
    before = fingerprint(store)
    views_before = store.view_ids()
    with pytest.raises(UserError, match=r"channel 'dve' does not exist \(channels: current, prod\)"):
        import_bundle(bundle, store, world.trusted, ECOSYSTEMS, now=NOW, channels=["prod", "dve"],
                      create_channels=False)  # fmt: skip
    assert fingerprint(store) == before and store.view_ids() == views_before
    assert store.current_view_id() == snaps.second and store.channel_view_id("dve") is None
    # Through the CLI: exit 2, the flag named, nothing changed.
    (world.root / "mirrorctl.toml").write_text(
        f'[store]\npath = "inside"\n[trust]\nkeys = ["{world.key.public_path}"]\n'
    )
    old = Path.cwd()
    os.chdir(world.root)
    try:
        refused = CliRunner().invoke(app, ["import", str(bundle), "--channel", "dve"])
        assert refused.exit_code == 2, refused.output
        flat = refused.output.replace("\n", " ")
        assert "channel 'dve' does not exist" in flat and "--create" in flat
        assert fingerprint(store) == before and store.view_ids() == views_before
        done = CliRunner().invoke(app, ["import", str(bundle), "--channel", "prod", "--channel", "dev", "--create"])
        assert done.exit_code == 0, done.output
    finally:
        os.chdir(old)
    # Issue 13 item 1: the channels named move, current does not (it used to move too).
    assert store.channel_view_id("dev") == store.channel_view_id("prod") != store.current_view_id() == snaps.second


def test_cli_rollback_takes_exactly_one_form(snaps: Snapshots) -> None:
    root = snaps.world.root
    before = fingerprint(snaps.store)
    for args in ([], ["--to", "pulp", "--channel", "prod"]):
        code, out = cli(root, "rollback", *args)
        assert code == 2 and "exactly one of --to TARGET (with --publish or --version) and --channel NAME" in out, out
    code, out = cli(root, "rollback", "--channel", "current", "--version", "3")
    assert code == 2 and "--publish and --version are for --to TARGET" in out
    code, out = cli(root, "rollback", "--to", "pulp")
    assert code == 2 and "give --publish N" in out and "--ecosystem ECO --version N" in out
    code, out = cli(root, "rollback", "--channel", "nope")
    assert code == 2 and "no channel 'nope'" in out
    assert fingerprint(snaps.store) == before


def test_cli_help_has_examples() -> None:
    for args, text in (
        (["promote"], "Example: mirrorctl promote"),
        (["channels", "list"], "Example: mirrorctl channels list"),
        (["rollback"], "Example: mirrorctl rollback --channel prod"),
        (["serve"], "--channel dev --channel prod"),
        (["publish"], "Example: mirrorctl publish --channel prod --to pulp"),
        (["workspace-config"], "--channel prod"),
    ):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and text in result.output, (args, result.output)


# --- publish, workspace-config and serve of a channel ---------------------------------------------------------


async def test_publish_takes_a_channels_snapshot(snaps: Snapshots) -> None:
    from mirrorctl.inside.channels import channel_view
    from mirrorctl.inside.publish import publish
    from tests.test_publish import FakeTarget, _settings

    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    target = FakeTarget()
    await publish(_settings(store), store, target, None, SILENT, view=channel_view(store, "prod"))
    await publish(_settings(store), store, target, None, SILENT)  # default: the current view
    (_, prod_files), (_, current_files) = target.calls
    gamma = snaps.world.artifacts[2].filename
    assert gamma in prod_files and gamma not in current_files
    before = fingerprint(store)
    with pytest.raises(UserError, match="no channel 'staging'"):
        channel_view(store, "staging")
    assert fingerprint(store) == before


def test_cli_workspace_config_for_a_channel(snaps: Snapshots) -> None:
    root = snaps.world.root
    code, out = cli(
        root, "workspace-config", "--mirror-url", "http://mirror.internal:8080", "--channel", "prod", "--out", "ws"
    )
    assert code == 0, out
    assert "index-url = http://mirror.internal:8080/prod/pypi/simple/" in (root / "ws" / "pip.conf").read_text()
    for args, message in (
        (["--target", "devpi", "--channel", "prod"], "--channel goes with --mirror-url"),
        (["--mirror-url", "http://mirror.internal:8080", "--channel", "Prod"], "channel name 'Prod' is not allowed"),
    ):
        code, out = cli(root, "workspace-config", *args, "--out", "ws2")
        assert code == 2 and message in out, out
    assert not (root / "ws2").exists()


def test_cli_serve_refuses_an_unknown_channel(snaps: Snapshots) -> None:
    import subprocess
    import sys

    root = snaps.world.root
    (root / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    mirrorctl = str(Path(sys.executable).parent / "mirrorctl")
    proc = subprocess.run(
        [mirrorctl, "--config", str(root / "mirrorctl.toml"), "serve", "--port", "0", "--channel", "current",
         "--channel", "prod"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "no channel 'prod' (channels: current)" in proc.stderr, proc.stderr


def test_the_serve_command_serves_two_channels_and_follows_a_cli_promote(snaps: Snapshots) -> None:
    """The real `mirrorctl serve --channel dev --channel prod` process, not the app in-process."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from mirrorctl.ecosystems.pypi.serve import JSON_TYPE

    root = snaps.world.root
    assert cli(root, "promote", snaps.first, "--channel", "prod", "--create")[0] == 0
    assert cli(root, "promote", snaps.second, "--channel", "dev", "--create")[0] == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = str(Path(sys.executable).with_name("mirrorctl"))
    log = (root / "serve.log").open("wb")
    server = subprocess.Popen(
        [exe, "--config", str(root / "mirrorctl.toml"), "serve", "--port", str(port), "--channel", "dev",
         "--channel", "prod"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def names(prefix: str) -> set[str]:
        r = httpx.get(f"{base}{prefix}/pypi/simple/", headers={"Accept": JSON_TYPE}, timeout=10)
        assert r.status_code == 200, r.text
        return {p["name"] for p in r.json()["projects"]}

    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"serve did not start: {(root / 'serve.log').read_text()}")
        assert names("/dev") == DROPPED and names("/prod") == FULL
        assert httpx.get(f"{base}/", timeout=10).json()["channels"] == {"dev": snaps.second, "prod": snaps.first}
        assert cli(root, "promote", snaps.second, "--channel", "prod")[0] == 0
        assert names("/prod") == DROPPED  # at the next request, no restart
        assert cli(root, "rollback", "--channel", "prod")[0] == 0
        assert names("/prod") == FULL and names("/dev") == DROPPED
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_channels_remove_removes_the_link_and_its_history_and_journals_it(snaps: Snapshots) -> None:
    root = snaps.world.root
    store = snaps.store
    promote(store, snaps.first, "prdo", SILENT)  # e.g. made by a typo, with --create
    promote(store, snaps.second, "prdo", SILENT)
    code, out = cli(root, "channels", "remove", "prdo")
    assert code == 0 and f"channel prdo removed (it pointed at {snaps.second}" in out, out
    assert "prdo" not in store.channel_names() and store.channel_view_id("prdo") is None
    assert history(store, "prdo") == {"channel": "prdo", "previous": [], "log": []}
    assert {snaps.first, snaps.second} <= set(store.view_ids())  # the snapshots stay
    assert store.current_view_id() == snaps.second
    entry = audit.last_entries(store)[-1]
    assert (entry["event"], entry["channel"], entry["view-id"], entry["result"]) == (
        "channel-remove", "prdo", snaps.second, "ok"
    )
    audit.verify(store)
    # Made again (with --create) it starts without the old rollback steps.
    code, out = cli(root, "promote", snaps.first, "--channel", "prdo", "--create")
    assert code == 0 and history(store, "prdo")["previous"] == [], out


def test_channels_remove_refuses_current_and_an_unknown_channel_and_changes_nothing(snaps: Snapshots) -> None:
    root = snaps.world.root
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    before = fingerprint(store)
    names = store.channel_names()
    for name, expected in (
        ("current", "the channel current cannot be removed"),
        ("nosuch", "no channel 'nosuch' (channels: current, prod)"),
        ("Prod", "channel name 'Prod' is not allowed"),
    ):
        code, out = cli(root, "channels", "remove", name)
        assert code == 2 and expected in out and "Traceback" not in out, out
        assert fingerprint(store) == before and store.channel_names() == names
        refused = audit.last_entries(store)[-1]
        assert (refused["event"], refused["channel"], refused["result"]) == ("channel-remove", name, "refused")
    assert store.current_view_id() == snaps.second and store.channel_view_id("prod") == snaps.first
    assert history(store, "current")["previous"] == [snaps.first]
