"""Issue 13 items 1 and 2: an import into a named channel moves that channel only; the plain layout
(/<ecosystem>/, no channel prefix) serves an explicit default channel ([serve] default-channel, else current),
beside each channel's /<channel>/ prefix; a channel that does not exist yet is a start-up error naming the command
that creates it. Checked with real `mirrorctl serve` processes and HTTP requests where it matters."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.ecosystems.pypi import PypiEcosystem
from mirrorctl.ecosystems.pypi.serve import JSON_TYPE
from mirrorctl.errors import UserError
from mirrorctl.inside.channels import history, plain_channel, plain_link, promote, served_layout
from mirrorctl.inside.serve import create_app
from mirrorctl.inside.serve.runner import check_channels
from mirrorctl.inside.store import Store
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import ECOSYSTEMS, NOW, fingerprint, make_lock
from tests.fixtures.snapshots import Snapshots, project_names, two_snapshots

FULL = {"alpha", "beta", "gamma"}  # snapshot 1
DROPPED = {"alpha", "beta"}  # snapshot 2 (what current serves after two_snapshots)
ALPHA = {"alpha"}  # a third bundle


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path)


def write_config(root: Path, snaps: Snapshots, serve: str = "") -> Path:
    config = root / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "inside"\n[trust]\nkeys = ["{snaps.world.key.public_path}"]\n'
        + (f"[serve]\n{serve}\n" if serve else "")
    )
    return config


def cli(root: Path, *args: str) -> tuple[int, str]:
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output.replace("\n", " ")


def links(store: Store) -> dict[str, str | None]:
    return {n: store.channel_view_id(n) for n in store.channel_names()}


def third_bundle(snaps: Snapshots) -> Path:
    alpha = snaps.world.artifacts[0]
    snaps.world.locks = [make_lock("web", [alpha])]
    return snaps.world.export("3.bundle")


@contextlib.contextmanager
def serving(config: Path, *args: str) -> Iterator[tuple[str, Path]]:
    """A real `mirrorctl serve` process; yields its base URL and its log file."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = str(Path(sys.executable).with_name("mirrorctl"))
    log_path = config.parent / f"serve-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [exe, "--config", str(config), "serve", "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise AssertionError(f"serve did not start: {log_path.read_text()}")
            yield base, log_path
        finally:
            server.terminate()
            server.wait(timeout=30)


def names(url: str) -> set[str]:
    r = httpx.get(url, headers={"Accept": JSON_TYPE}, timeout=10)
    assert r.status_code == 200, (url, r.status_code, r.text)
    return {p["name"] for p in r.json()["projects"]}


def index_url(ws: Path) -> str:
    for line in (ws / "pip.conf").read_text().splitlines():
        if line.startswith("index-url = "):
            return line.removeprefix("index-url = ")
    raise AssertionError((ws / "pip.conf").read_text())


# --- the one function: which channel (and link) the plain layout serves ---------------------------------------


def test_plain_channel_is_the_one_channel_asked_for_else_the_default_else_current(snaps: Snapshots) -> None:
    assert plain_channel() == "current"
    assert plain_channel((), "prod") == "prod"
    assert plain_channel(["staging"], "prod") == "staging"  # a server asked for one channel serves it plainly
    assert plain_channel(["staging", "prod"]) == "current"
    assert plain_channel(["staging", "prod"], "prod") == "prod"
    layout = served_layout(["staging", "prod", "staging"], "prod")
    assert layout.prefixed == ("staging", "prod") and layout.channels == ("prod", "staging")
    assert plain_link(snaps.store) == snaps.store.root / "current"
    assert plain_link(snaps.store, (), "prod") == snaps.store.root / "channels" / "prod"


# --- item 1: an import into a named channel moves that channel only ----------------------------------------------


def test_import_to_staging_leaves_current_and_the_served_plain_layout_unchanged(snaps: Snapshots) -> None:
    root, store = snaps.world.root, snaps.store
    config = write_config(root, snaps)
    bundle = third_bundle(snaps)
    with serving(config) as (base, _):  # the first-time setup: a plain `mirrorctl serve`, no channels
        assert names(f"{base}/pypi/simple/") == DROPPED
        before_history = history(store, "current")
        code, out = cli(root, "import", str(bundle), "--channel", "staging", "--create")
        assert code == 0, out
        staged = store.channel_view_id("staging")
        assert staged not in (None, snaps.first, snaps.second)
        assert f"channel staging -> {staged}" in out and "serving view" not in out, out
        assert f"still serves channel current; to serve this snapshot there: mirrorctl promote {staged} " \
            "--channel current" in out, out
        # Not live: the plain layout and current are as they were.
        assert names(f"{base}/pypi/simple/") == DROPPED
        assert store.current_view_id() == snaps.second and history(store, "current") == before_history
        # Only a promote changes what the plain layout serves.
        code, out = cli(root, "promote", "channel:staging", "--channel", "current")
        assert code == 0, out
        assert names(f"{base}/pypi/simple/") == ALPHA


async def test_with_a_default_channel_only_a_promote_into_it_changes_the_plain_layout(snaps: Snapshots) -> None:
    store, world = snaps.store, snaps.world
    promote(store, snaps.first, "prod", SILENT)
    app = create_app(store, {"pypi": PypiEcosystem()}, default_channel="prod")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        assert await project_names(c) == FULL
        bundle = third_bundle(snaps)
        staged = import_bundle(bundle, store, world.trusted, ECOSYSTEMS, now=NOW, channels=["staging"]).view_id
        assert await project_names(c) == FULL and store.channel_view_id("prod") == snaps.first
        assert store.current_view_id() == snaps.second
        # A plain import moves current only: the plain layout serves prod.
        again = import_bundle(bundle, store, world.trusted, ECOSYSTEMS, now=NOW)
        assert again.noop and store.current_view_id() == staged
        assert await project_names(c) == FULL
        promote(store, "channel:staging", "prod", SILENT)
        assert await project_names(c) == ALPHA


def test_cli_plain_import_with_a_default_channel_says_the_plain_layout_did_not_move(snaps: Snapshots) -> None:
    root, store = snaps.world.root, snaps.store
    promote(store, snaps.first, "prod", SILENT)
    write_config(root, snaps, 'default-channel = "prod"')
    code, out = cli(root, "import", str(third_bundle(snaps)))
    assert code == 0, out
    new = store.current_view_id()
    assert new not in (snaps.first, snaps.second) and store.channel_view_id("prod") == snaps.first
    assert "still serves channel prod ([serve] default-channel); to serve this snapshot there: mirrorctl " \
        f"promote {new} --channel prod" in out, out


# --- item 2: the plain layout beside the channels; a missing channel is a start-up error -------------------------


async def test_the_plain_layout_serves_the_default_channel_beside_each_channel(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "staging", SILENT)
    app = create_app(store, {"pypi": PypiEcosystem()}, ["staging", "prod"], default_channel="prod")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        assert await project_names(c) == FULL  # /pypi/simple/: prod, the default
        assert await project_names(c, "/prod") == FULL and await project_names(c, "/staging") == DROPPED
        assert (await c.get("/pypi/simple/gamma/")).status_code == 200
        index = (await c.get("/")).json()
        assert index["channels"] == {"staging": snaps.second, "prod": snaps.first}
        assert index["plain"] == {"channel": "prod", "view-id": snaps.first}
        promote(store, snaps.second, "prod", SILENT)
        assert await project_names(c) == DROPPED  # the next request follows the default channel
        assert (await c.get("/pypi/simple/gamma/")).status_code == 404
    # One channel: served plainly and under its prefix, so a workspace configured for /<channel>/ works too.
    app = create_app(store, {"pypi": PypiEcosystem()}, ["staging"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as c:
        assert await project_names(c) == DROPPED == await project_names(c, "/staging")
        assert (await c.get("/")).json()["view-id"] == snaps.second


def test_serve_two_channels_answers_the_plain_paths_and_each_workspace_config(snaps: Snapshots) -> None:
    root, store = snaps.world.root, snaps.store
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "staging", SILENT)
    config = write_config(root, snaps, 'default-channel = "prod"')
    with serving(config, "--channel", "staging", "--channel", "prod") as (base, log):
        # Written before channels (no --channel): the plain layout, which serves prod.
        assert cli(root, "workspace-config", "--mirror-url", base, "--out", "ws-plain")[0] == 0
        code, out = cli(root, "workspace-config", "--mirror-url", base, "--channel", "staging", "--out", "ws-staging")
        assert code == 0, out
        assert index_url(root / "ws-plain") == f"{base}/pypi/simple/"
        assert index_url(root / "ws-staging") == f"{base}/staging/pypi/simple/"
        assert names(index_url(root / "ws-plain")) == FULL
        assert names(index_url(root / "ws-staging")) == DROPPED
        assert names(f"{base}/prod/pypi/simple/") == FULL
        assert "serving channel prod" in log.read_text()


def test_serve_with_channels_and_no_default_serves_current_plainly_and_warns(snaps: Snapshots) -> None:
    root, store = snaps.world.root, snaps.store
    promote(store, snaps.first, "prod", SILENT)
    config = write_config(root, snaps)
    with serving(config, "--channel", "prod", "--channel", "current") as (base, log):
        assert names(f"{base}/pypi/simple/") == DROPPED  # current, as before channels
        assert names(f"{base}/prod/pypi/simple/") == FULL
        text = " ".join(log.read_text().split())
        assert "has channels (prod) but no default channel" in text, text
        assert 'set default-channel = "prod" under [serve] in mirrorctl.toml' in text, text


def test_serve_refuses_a_channel_that_does_not_exist_naming_the_command(snaps: Snapshots) -> None:
    root, store = snaps.world.root, snaps.store
    promote(store, snaps.second, "staging", SILENT)
    exe = str(Path(sys.executable).with_name("mirrorctl"))
    for serve_cfg, args, expected in (
        ("", ["--channel", "staging", "--channel", "prod"], "no channel 'prod' (channels: current, staging)"),
        ('default-channel = "prod"', ["--channel", "staging", "--channel", "current"],
         "no channel 'prod' ([serve] default-channel)"),
        ('default-channel = "prod"', [], "no channel 'prod' ([serve] default-channel)"),
    ):  # fmt: skip
        config = write_config(root, snaps, serve_cfg)
        before, linked = fingerprint(store), links(store)
        proc = subprocess.run(
            [exe, "--config", str(config), "serve", "--port", "0", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        err = " ".join(proc.stderr.split())
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in err and "the server was not started" in err, err
        assert "mirrorctl promote SNAPSHOT --channel prod --create" in err and "Traceback" not in err, err
        assert fingerprint(store) == before and links(store) == linked and store.channel_view_id("prod") is None


def test_a_channel_named_like_an_ecosystem_cannot_be_served_beside_the_plain_layout(snaps: Snapshots) -> None:
    store = snaps.store
    promote(store, snaps.first, "pypi", SILENT)
    before, linked = fingerprint(store), links(store)
    with pytest.raises(UserError, match=r"channel 'pypi' cannot be served under /pypi/"):
        check_channels(store, ["pypi", "current"], None, ["pypi"])
    with pytest.raises(UserError, match=r"channel 'pypi' cannot be served under /pypi/"):
        check_channels(store, ["pypi"], None, ["pypi"])  # alone too: each --channel is also under its prefix
    assert fingerprint(store) == before and links(store) == linked


def test_default_channel_setting_is_checked_naming_the_file_and_field(snaps: Snapshots) -> None:
    root, store = snaps.world.root, snaps.store
    before, linked = fingerprint(store), links(store)
    for value, expected in (
        ('"Prod"', "serve.default-channel: channel name 'Prod' is not allowed"),
        ("3", "serve.default-channel must be a channel name, got 3"),
    ):
        write_config(root, snaps, f"default-channel = {value}")
        code, out = cli(root, "serve", "--port", "0")
        assert code == 2 and "mirrorctl.toml" in out, out
        assert expected in out and "Traceback" not in out, out
    assert fingerprint(store) == before and links(store) == linked


def test_the_nginx_front_maps_files_through_the_same_links(snaps: Snapshots) -> None:
    from mirrorctl.inside.serve.withfront import file_routes

    store = snaps.store
    routes = file_routes(store, served_layout(["staging", "prod"], "prod"))
    # The plain layout last: nginx takes the first regex location that matches, and "" matches every URL.
    assert [(r.prefix, r.link) for r in routes] == [
        ("/staging", store.root / "channels" / "staging"),
        ("/prod", store.root / "channels" / "prod"),
        ("", plain_link(store, ["staging", "prod"], "prod")),
    ]
    assert [(r.prefix, r.link) for r in file_routes(store, served_layout())] == [("", store.root / "current")]
