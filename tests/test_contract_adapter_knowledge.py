"""What the core now asks the ecosystem adapters (issue 11, items 2 and 3), and the refusals around it:
mirrorctl.toml tables checked by their adapter, commands contributed as data, Pulp strategies as entry points,
typed specs and views. Each refusal also checks that nothing changed."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli import cmd_ecosystems
from mirrorctl.cli.app import app
from mirrorctl.config import load_settings, parse_settings
from mirrorctl.ecosystems.base import Ecosystem, StoredSet, load_ecosystems, own_spec
from mirrorctl.ecosystems.commands import Command, CommandGroup
from mirrorctl.ecosystems.npm.spec import NpmSpec
from mirrorctl.ecosystems.pypi.spec import PypiSpec
from mirrorctl.errors import TargetError, UserError
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.targets.pulp import plugins as pulp_plugins
from mirrorctl.targets.pulp.files import layout_files

ECOSYSTEMS = load_ecosystems()


def _refused_load(cfg: Path, text: str) -> UserError:
    cfg.write_text(text)
    with pytest.raises(UserError) as err:
        load_settings(cfg, ecosystems=ECOSYSTEMS)
    return err.value


# --- mirrorctl.toml: each ecosystem's tables are checked by its adapter, when the file is read --------------


def test_a_key_only_another_ecosystem_knows_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    err = _refused_load(cfg, '[upstreams.pypi]\nurl = "http://pypi.mirror.internal/simple/"\nkeyring = "k.gpg"\n')
    assert err.message == f"{cfg}: unknown setting upstreams.pypi.keyring"
    assert err.hint and "upstreams.pypi.url" in err.hint and "keyring" not in err.hint
    assert err.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirrorctl.toml"]


def test_apt_knows_its_keyring_and_lists_it_among_the_known_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    err = _refused_load(cfg, '[upstreams.apt]\nurl = "http://deb.mirror.internal/debian/"\nkeyrin = "k.gpg"\n')
    assert err.message == f"{cfg}: unknown setting upstreams.apt.keyrin"
    assert err.hint and "upstreams.apt.keyring" in err.hint and "upstreams.apt.token-env" in err.hint


def test_serve_tables_are_parsed_by_their_adapter_at_load(tmp_path: Path) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    err = _refused_load(cfg, "[serve.apt]\nvalid-days = 0\n")
    assert err.message == f"{cfg}: serve.apt.valid-days must be a whole number of days >= 1, got 0"
    err = _refused_load(cfg, "[serve.nosuch]\nx = 1\n")
    assert err.message == f"{cfg}: [serve.nosuch]: no ecosystem 'nosuch' is installed"
    assert err.hint and "apt" in err.hint and "pypi" in err.hint
    err = _refused_load(cfg, "[serve.pypi]\nx = 1\n")
    assert err.message == f"{cfg}: unknown setting serve.pypi.x"


def test_a_bad_serve_table_stops_any_command_that_reads_the_settings(tmp_path: Path) -> None:
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n[serve.apt]\norigin = ""\n')
    done = CliRunner().invoke(app, ["--config", str(tmp_path / "mirrorctl.toml"), "gc", "--dry-run"])
    assert done.exit_code == 2, done.output
    assert "serve.apt.origin must be a one-line text" in done.output
    assert not (tmp_path / "store").exists()


def test_an_upstream_of_an_ecosystem_not_installed_keeps_the_common_keys(tmp_path: Path) -> None:
    data = {"upstreams": {"future": {"url": "http://go.mirror.internal/", "token-env": "T"}}}
    up = parse_settings(data, tmp_path / "mirrorctl.toml", ECOSYSTEMS).upstream("future")
    assert (up.url, up.token_env, up.options) == ("http://go.mirror.internal/", "T", None)
    with pytest.raises(UserError, match=r"unknown setting upstreams\.future\.keyring"):
        parse_settings(
            {"upstreams": {"future": {"url": "http://x.test/", "keyring": "k"}}}, tmp_path / "m.toml", ECOSYSTEMS
        )


def test_init_writes_what_the_adapter_discovered_without_naming_it(tmp_path: Path) -> None:
    from mirrorctl.ecosystems.base import DiscoveredUpstream
    from mirrorctl.outside.initconfig import init_config

    class Found:
        def __init__(self, eco: Ecosystem) -> None:
            self._eco = eco
            self.name = eco.name

        def discover_upstream(self, environ: Mapping[str, str]) -> DiscoveredUpstream | None:
            return DiscoveredUpstream("http://deb.mirror.internal/debian/", "test", {"keyring": "/k/upstream.gpg"})

        def __getattr__(self, name: str) -> Any:  # the rest of the adapter, as it is
            return getattr(self._eco, name)

    out = tmp_path / "mirrorctl.toml"
    init_config(out, {"apt": Found(ECOSYSTEMS["apt"])}, {})  # type: ignore[dict-item]
    assert 'keyring = "/k/upstream.gpg"' in out.read_text()


# --- commands an ecosystem contributes ---------------------------------------------------------------------


def _plugins(monkeypatch: pytest.MonkeyPatch, *registered: tuple[str, str]) -> None:
    from importlib.metadata import EntryPoint

    from mirrorctl.ecosystems.commands import COMMAND_GROUP

    eps = [EntryPoint(name, value, COMMAND_GROUP) for name, value in registered]
    monkeypatch.setattr(cmd_ecosystems, "entry_points", lambda group: eps)


GROUP = "tests.test_contract_adapter_knowledge:EXTRA"
EXTRA = CommandGroup("extra", "help", (Command("x", "help", (), lambda ctx, args: ["ran"]),))


@pytest.mark.parametrize(
    ("registered", "message"),
    [
        ((("lock", GROUP),), f"the command plugin {GROUP} adds 'lock', which mirrorctl itself already has"),
        ((("extra", GROUP), ("extra", GROUP)), f"the command plugin {GROUP} adds 'extra', which another plugin"),
        ((("other", GROUP),), f"the command plugin {GROUP} is not a CommandGroup named 'other'"),
    ],
)
def test_a_bad_command_plugin_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, registered: tuple[tuple[str, str], ...], message: str
) -> None:
    _plugins(monkeypatch, *registered)
    with pytest.raises(UserError) as err:
        cmd_ecosystems.contributed_groups({"lock", "snapshot"})
    assert err.value.message.startswith(message)


def test_a_contributed_group_is_found_by_name_and_loaded_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, ("extra", GROUP), ("broken", "no.such.module:X"))
    assert cmd_ecosystems.contributed_names() == ["broken", "extra"]  # names only: nothing imported
    assert cmd_ecosystems.contributed_groups(set(), "extra") == [EXTRA]


def test_a_contributed_command_runs_with_the_cli_s_error_conversion(tmp_path: Path) -> None:
    # archive-key show without a key: the library's UserError becomes exit 2 with message and hint.
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    done = CliRunner().invoke(app, ["--config", str(tmp_path / "mirrorctl.toml"), "archive-key", "show"])
    assert done.exit_code == 2 and "no apt archive key" in done.output and "Traceback" not in done.output
    missing = CliRunner().invoke(app, ["archive-key", "export"])
    assert missing.exit_code == 2 and "--out" in missing.output


# --- publish: history/rollback name the ecosystem only when the target leaves a choice ----------------------


def test_rollback_version_without_an_ecosystem_is_refused_when_the_target_names_two(tmp_path: Path) -> None:
    cfg = tmp_path / "mirrorctl.toml"
    cfg.write_text(
        '[store]\npath = "store"\n[targets.pulp]\nkind = "pulp"\nurl = "http://127.0.0.1:9"\n'
        'repositories = { pypi = "p", npm = "n" }\n'
    )
    # history without -e lists the publish events across both repositories (none yet); issue 13 item 4
    done = CliRunner().invoke(app, ["--config", str(cfg), "history", "--to", "pulp"])
    assert done.exit_code == 0 and done.output.strip() == "nothing published to pulp yet", done.output
    done = CliRunner().invoke(app, ["--config", str(cfg), "rollback", "--to", "pulp", "--version", "1"])
    assert done.exit_code == 2, done.output
    assert "--to pulp: which ecosystem? targets.pulp.repositories names npm, pypi" in done.output
    assert "give --ecosystem NAME" in done.output
    assert not (tmp_path / "store").exists()


# --- Pulp: strategies are entry points; the static tree comes from the adapter ------------------------------


def _pulp_settings(tmp_path: Path, **extra: object) -> Any:
    table = {"targets": {"pulp": {"kind": "pulp", "url": "http://pulp.internal:24817", **extra}}}
    return parse_settings(table, tmp_path / "mirrorctl.toml", ECOSYSTEMS).target("pulp")


def test_pulp_strategies_are_the_registered_entry_points() -> None:
    found = pulp_plugins.strategies()
    # the built-in ones; an ecosystem added later registers its own beside them
    assert {"apt", "npm", "pypi"} <= set(found)
    assert set(found) == {ep.name for ep in entry_points(group=pulp_plugins.STRATEGY_GROUP)}
    assert found["npm"].__name__ == "FileLayoutPlugin"


def test_two_strategies_for_one_ecosystem_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    twice = [
        EntryPoint("npm", "mirrorctl.targets.pulp.files:FileLayoutPlugin", pulp_plugins.STRATEGY_GROUP),
        EntryPoint("npm", "other.plugin:Strategy", pulp_plugins.STRATEGY_GROUP),
    ]
    monkeypatch.setattr(pulp_plugins, "entry_points", lambda group: twice)
    with pytest.raises(UserError, match=r"two Pulp publish strategies are registered for 'npm' \(other.plugin"):
        pulp_plugins.strategies()


def test_an_install_without_the_strategy_entry_points_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pulp_plugins, "entry_points", lambda group: [])
    with pytest.raises(UserError) as err:
        pulp_plugins.strategies()
    assert "no Pulp publish strategy is registered" in err.value.message
    assert err.value.hint and "reinstall mirrorctl" in err.value.hint


async def test_a_strategy_is_offered_only_for_an_installed_ecosystem(tmp_path: Path) -> None:
    from mirrorctl.targets.pulp import PulpTarget

    async with httpx.AsyncClient() as client:
        target = PulpTarget(_pulp_settings(tmp_path), client, {}, ecosystems={"npm": ECOSYSTEMS["npm"]})
    assert target.ecosystems == frozenset({"npm"}) and target.name == "pulp"


class _Tree:
    name = "tree"

    def __init__(self, layout: Mapping[str, Any] | None) -> None:
        self.layout = layout

    def static_layout(self, view: Any, base_url: str) -> Mapping[str, Any] | None:
        return self.layout


@pytest.mark.parametrize("path", ["../up", "/abs", "a//b", "a\\b", "./a", "a/\x00"])
def test_an_unsafe_path_in_a_static_layout_is_refused_before_any_upload(tmp_path: Path, path: str) -> None:
    from mirrorctl.ecosystems.base import StaticFile

    adapter = _Tree({"ok/file": StaticFile("0" * 64, 1, None, b"x"), path: StaticFile("1" * 64, 1, None, b"y")})
    with pytest.raises(TargetError) as err:
        layout_files(adapter, [], Store(tmp_path / "store"), "http://pulp.internal/")  # type: ignore[arg-type]
    assert "the static layout names unsafe paths" in err.value.message and repr(path)[1:-1] in repr(err.value.message)
    assert not (tmp_path / "store").exists()


def test_an_ecosystem_without_a_static_tree_is_refused_for_pulp_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"tree: its clients cannot read a static tree"):
        layout_files(_Tree(None), [], Store(tmp_path / "store"), "http://pulp.internal/")  # type: ignore[arg-type]


# --- typed specs and views --------------------------------------------------------------------------------


def test_an_adapter_refuses_a_spec_another_adapter_made() -> None:
    spec = NpmSpec(roots=(), platforms=())
    with pytest.raises(TypeError, match=r"pypi: given a NpmSpec, which its parse_profile did not make"):
        own_spec(spec, PypiSpec, "pypi")


def test_a_stored_set_is_a_view_with_its_cache_folders(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    art = Artifact("npm", "left", "1.0.0", "left-1.0.0.tgz", 1, "a" * 64, ())
    view = StoredSet(store, "publish", "", {"npm": (art,)})
    assert view.artifacts("npm") == (art,) and view.artifacts("pypi") == ()
    assert view.cache_dir("npm", "manifests") == store.root / "cache" / "npm-manifests"
    assert view.blob_path("a" * 64) == store.blob_path("a" * 64)


def test_every_adapter_orders_versions_and_names_files_by_purl() -> None:
    pypi, npm, apt = ECOSYSTEMS["pypi"], ECOSYSTEMS["npm"], ECOSYSTEMS["apt"]
    assert pypi.compare_versions("1.10", "1.9") == 1 and pypi.compare_versions("x!", "1") is None
    assert npm.compare_versions("1.0.0-rc.1", "1.0.0") == -1
    assert apt.compare_versions("1:2.0", "3.0") == 1
    assert pypi.fold_name("Foo_Bar") == "foo-bar" and npm.fold_name("@a/b") == "@a/b"
    scoped = Artifact("npm", "@acme/core", "1.0.0", "core-1.0.0.tgz", 1, "a" * 64, ())
    assert npm.purl(scoped) == "pkg:npm/%40acme/core@1.0.0?file_name=core-1.0.0.tgz"
    deb = Artifact("apt", "curl", "7.88.1-10+deb12u5", "curl_7.88.1-10+deb12u5_amd64.deb", 1, "a" * 64, ())
    assert apt.purl(deb) == "pkg:deb/curl@7.88.1-10%2Bdeb12u5?file_name=curl_7.88.1-10%2Bdeb12u5_amd64.deb"


# --- one static layout for serve and for Pulp ---------------------------------------------------------------


async def test_static_app_serves_the_same_tree_pulp_file_gets(tmp_path: Path) -> None:
    import json

    from mirrorctl.ecosystems.static import static_app
    from mirrorctl.inside.serve.app import StoreContent
    from tests.fixtures.npm_registry import PkgSpec
    from tests.fixtures.npm_store import npm_artifact
    from tests.fixtures.store_content import publish_view

    store = Store(tmp_path / "store")
    empty = static_app(ECOSYSTEMS["npm"], StoreContent(store))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=empty), base_url="http://m.test") as c:
        assert (await c.get("/-/packuments/left")).status_code == 404  # nothing imported yet
    arts = [npm_artifact(store, PkgSpec("@acme/liba", "1.0.0")), npm_artifact(store, PkgSpec("left", "2.1.0"))]
    publish_view(store, arts)
    app = static_app(ECOSYSTEMS["npm"], StoreContent(store))
    base = "http://mirror.test:8080/"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as c:
        doc = (await c.get("-/packuments/@acme/liba")).json()
        tarball = await c.get("@acme/liba/-/liba-1.0.0.tgz")
        etag = tarball.headers["etag"]
        again = await c.get("@acme/liba/-/liba-1.0.0.tgz", headers={"If-None-Match": etag})
        missing = await c.get("@acme/liba/-/liba-9.9.9.tgz")
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == base + "@acme/liba/-/liba-1.0.0.tgz"
    assert tarball.status_code == 200 and tarball.content == store.blob_path(arts[0].sha256).read_bytes()
    assert again.status_code == 304 and missing.status_code == 404
    pulp = {f.relative_path: f for f in layout_files(ECOSYSTEMS["npm"], arts, store, base)}
    assert json.loads(pulp["-/packuments/@acme/liba"].data or b"") == doc  # the same function, the same bytes
