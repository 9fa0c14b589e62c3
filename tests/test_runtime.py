"""The one runtime object (mirrorctl.runtime.Runtime): built once per CLI invocation, its costly parts lazily and
once; the only place in the library and the CLI that reads settings, opens the store, loads the ecosystems or
builds an HTTP client; contexts derived from it with every field set."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import mirrorctl
from mirrorctl.cli.app import app
from mirrorctl.config import FetchSettings, Settings, Upstream
from mirrorctl.ecosystems import base as ecosystems_base
from mirrorctl.ecosystems.base import FetchContext, ResolveContext
from mirrorctl.errors import UserError
from mirrorctl.inside.store import Store
from mirrorctl.net import RetryPolicy
from mirrorctl.progress import SILENT
from mirrorctl.runtime import Runtime

PROFILE = '[pypi]\nrequirements = ["app"]\npython = ["3.12"]\nplatforms = ["manylinux_2_28_x86_64"]\n'


def test_nothing_is_read_until_it_is_used(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    rt = Runtime(config_path=missing, cwd=tmp_path, environ={})
    with pytest.raises(UserError, match=r"absent\.toml: configuration file not found"):
        rt.settings  # noqa: B018 - reading it is the point
    assert not (tmp_path / ".mirrorctl").exists()


def test_each_part_is_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = 0
    real = ecosystems_base.load_ecosystems

    def counting() -> Any:
        nonlocal loads
        loads += 1
        return real()

    monkeypatch.setattr(ecosystems_base, "load_ecosystems", counting)
    rt = Runtime(cwd=tmp_path, environ={})
    assert rt.settings is rt.settings
    assert rt.settings.store_path == tmp_path / ".mirrorctl" / "store"  # no mirrorctl.toml: defaults under cwd
    assert rt.store is rt.store and rt.store.root == rt.settings.store_path
    assert rt.ecosystems is rt.ecosystems and "pypi" in rt.ecosystems
    assert loads == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        rt.config_path = tmp_path  # type: ignore[misc]


def test_config_comes_from_the_runtime_environment_not_the_process(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('[store]\npath = "s"\n\n[fetch]\nretries = 7\n')
    rt = Runtime(cwd=tmp_path, environ={"MIRRORCTL_CONFIG": str(cfg)})
    assert rt.settings.config_path == cfg
    assert rt.settings.store_path == tmp_path / "s"
    assert rt.retry == RetryPolicy(retries=7)


def test_contexts_have_every_field_set(tmp_path: Path) -> None:
    settings = Settings(
        None, tmp_path / "store", tmp_path / "profiles",
        upstreams={"pypi": Upstream("pypi", "http://127.0.0.1:9/simple/")},
        fetch=FetchSettings(concurrency=3, retries=1),
    )
    rt = Runtime.for_settings(settings, progress=SILENT, environ={})
    client = httpx.AsyncClient()
    ctx = rt.resolve_context("pypi", client, "web")
    assert (ctx.client, ctx.upstream, ctx.profile_name, ctx.fetch, ctx.prefetch) == (
        client, settings.upstreams["pypi"], "web", settings.fetch, None
    )
    assert ctx.store is rt.store
    fctx = rt.fetch_context("pypi", client)
    assert (fctx.store, fctx.fetch, fctx.upstream) == (rt.store, settings.fetch, settings.upstreams["pypi"])
    with pytest.raises(UserError, match="npm"):
        rt.fetch_context("npm", client)  # no upstream configured: refused, naming it
    # store and fetch are required: nothing falls back to a default store or default settings
    with pytest.raises(TypeError):
        ResolveContext(client, settings.upstreams["pypi"], SILENT, "web")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        FetchContext(client, settings.upstreams["pypi"], SILENT)  # type: ignore[call-arg]


async def test_the_client_factory_uses_the_runtime_transport_and_credentials(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    settings = Settings(
        None, tmp_path / "store", tmp_path / "profiles",
        upstreams={"pypi": Upstream("pypi", "http://index.internal/simple/", token_env="IDX_TOKEN")},
    )
    rt = Runtime.for_settings(settings, environ={"IDX_TOKEN": "s3cret"}, transport=httpx.MockTransport(answer))
    async with rt.client() as client:
        await client.get("http://index.internal/simple/a/")
        await client.get("http://other.internal/x")
    assert seen[0].headers["Authorization"] == "Bearer s3cret"  # from the runtime's environ, not os.environ
    assert "Authorization" not in seen[1].headers


def test_only_the_runtime_builds_settings_store_ecosystems_and_clients() -> None:
    """Services and commands get these from the runtime; none builds its own (docstring examples aside)."""
    built_here = {"load_settings", "Store", "load_ecosystems", "build_client"}
    root = Path(mirrorctl.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in built_here:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert all(f.startswith("runtime.py:") for f in found), found
    assert len(found) == 4, found


def test_one_cli_invocation_loads_the_ecosystems_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = 0
    real = ecosystems_base.load_ecosystems

    def counting() -> Any:
        nonlocal loads
        loads += 1
        return real()

    monkeypatch.setattr(ecosystems_base, "load_ecosystems", counting)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "web.toml").write_text(PROFILE)
    # lock --check reads the profiles (the adapters parse them), then checks the locks against them
    result = CliRunner().invoke(app, ["lock", "--check"])
    assert result.exit_code == 1 and "missing; run `mirrorctl lock web`" in result.output, result.output
    assert loads == 1


def test_a_bad_config_is_reported_once_at_the_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text("[fetch]\nretries = -1\n")
    result = CliRunner().invoke(app, ["snapshots", "list"])
    assert result.exit_code == 2, result.output
    assert "mirrorctl.toml: fetch.retries must be an integer >= 0, got -1" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / ".mirrorctl").exists()
    # A command that needs no configuration still runs beside a broken one
    key = tmp_path / "k.key"
    result = CliRunner().invoke(app, ["key", "generate", "--out", str(key)])
    assert result.exit_code == 0 and key.exists(), result.output


def test_more_retries_than_the_policy_does_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retry helper never does more than FETCH_MAX_RETRIES: a larger [fetch] retries is refused, not capped
    # silently, and nothing is created.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirrorctl.toml").write_text("[fetch]\nretries = 11\n")
    result = CliRunner().invoke(app, ["snapshots", "list"])
    assert result.exit_code == 2, result.output
    assert "mirrorctl.toml: fetch.retries must be at most 10, got 11" in result.output
    assert "an upstream is down, not flaky" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirrorctl.toml"]
    (tmp_path / "mirrorctl.toml").write_text("[fetch]\nretries = 10\n")
    assert CliRunner().invoke(app, ["snapshots", "list"]).exit_code == 0


def test_library_callers_can_seed_a_runtime(tmp_path: Path) -> None:
    settings = Settings(None, tmp_path / "store", tmp_path / "profiles")
    ecos = {"fake": object()}
    rt = Runtime.for_settings(settings, ecosystems=ecos)  # type: ignore[arg-type]
    assert rt.settings is settings and rt.ecosystems is ecos
    assert isinstance(rt.store, Store) and rt.store.root == tmp_path / "store"
