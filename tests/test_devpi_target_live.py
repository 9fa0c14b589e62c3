"""The devpi target against the real devpi-server that scripts/services.sh runs (marker `live`).

Every test uses its own user and index (random names), so runs do not collide in the shared server.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.config import Settings, TargetSettings
from mirrorctl.errors import TargetError, UserError
from mirrorctl.inside.publish import publish, read_journal
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.net import build_client
from mirrorctl.progress import SILENT
from mirrorctl.targets.base import PublishResult, TargetCheck
from mirrorctl.targets.devpi import DevpiTarget
from tests.fixtures.services import DevpiService, devpi_service  # noqa: F401

from .fixtures.store_content import closure_store, publish_view, wheel_artifact
from .fixtures.wheels import Dist, build_wheel

pytestmark = pytest.mark.live


class Recorder:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def task(self, description: str, total: float | None = None, *, unit: str = "") -> object:
        return SILENT.task(description, total, unit=unit)

    def note(self, message: str) -> None:
        self.notes.append(message)


def _names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"h8u{tag}", "snap", f"pw-{tag}"


def _target_settings(url: str, user: str, index: str, name: str = "dv") -> TargetSettings:
    return TargetSettings(name, "devpi", url, "DV_USER", "DV_PASS", repositories={"pypi": f"{user}/{index}"})


async def _publish(
    store: Store, ts: TargetSettings, environ: dict[str, str], progress: object = SILENT
) -> list[PublishResult]:
    settings = Settings(None, store.root, store.root.parent / "profiles", targets={ts.name: ts})
    async with build_client(settings, environ) as client:
        return await publish(settings, store, DevpiTarget(ts, client, environ), None, progress)  # type: ignore[arg-type]


async def _check(ts: TargetSettings, environ: dict[str, str]) -> TargetCheck:
    settings = Settings(None, Path("/nonexistent"), Path("/nonexistent"), targets={ts.name: ts})
    async with build_client(settings, environ) as client:
        return await DevpiTarget(ts, client, environ).check()


def _serial(devpi: DevpiService) -> int:
    with devpi.client() as client:
        return int(client.get(devpi.url + "/+api").headers["X-Devpi-Serial"])


def _listing(devpi: DevpiService, user: str, index: str, project: str) -> dict[str, str]:
    with devpi.client() as client:
        resp = client.get(
            f"{devpi.url}/{user}/{index}/+simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
    resp.raise_for_status()
    return {f["filename"]: f["hashes"]["sha256"] for f in resp.json()["files"]}


@pytest.fixture
def closure(tmp_path: Path) -> tuple[Store, list[Artifact]]:
    return closure_store(tmp_path / "store", tmp_path / "build")


async def test_first_publish_uploads_all_second_nothing_then_one_new_file(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
    tmp_path: Path,
) -> None:
    store, arts = closure
    user, index, password = _names()
    ts = _target_settings(devpi_service.url, user, index)
    environ = {"DV_USER": user, "DV_PASS": password}

    [first] = await _publish(store, ts, environ)
    assert (first.uploaded, first.present, first.removed, first.changed) == (len(arts), 0, 0, True)
    assert first.endpoint == f"{devpi_service.url}/{user}/{index}/+simple/"
    with devpi_service.client() as client:
        config = client.get(f"{devpi_service.url}/{user}/{index}").raise_for_status().json()["result"]
    assert (config["type"], config["bases"], config["volatile"]) == ("stage", [], False)
    by_project = _listing(devpi_service, user, index, "mctl-demo-base")
    assert {a.filename: a.sha256 for a in arts if a.name == "mctl-demo-base"} == by_project

    serial = _serial(devpi_service)
    [second] = await _publish(store, ts, environ)
    assert (second.uploaded, second.present, second.changed) == (0, len(arts), False)
    assert _serial(devpi_service) == serial, "a republish of the same content changed the server"

    extra = wheel_artifact(store, Dist("mctl-demo-extra", "0.1"), tmp_path / "build2")
    publish_view(store, [*arts, extra], sequence=2)
    [third] = await _publish(store, ts, environ)
    assert (third.uploaded, third.present, third.changed) == (1, len(arts), True)
    assert _listing(devpi_service, user, index, "mctl-demo-extra") == {extra.filename: extra.sha256}
    assert [e.results["pypi"]["uploaded"] for e in read_journal(store, "dv")] == [len(arts), 0, 1]


async def test_files_left_out_of_a_later_set_are_reported_not_removed(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
) -> None:
    store, arts = closure
    user, index, password = _names()
    ts = _target_settings(devpi_service.url, user, index)
    environ = {"DV_USER": user, "DV_PASS": password}
    await _publish(store, ts, environ)
    publish_view(store, arts[1:], sequence=2)
    rec = Recorder()
    [result] = await _publish(store, ts, environ, rec)
    assert (result.uploaded, result.removed, result.changed) == (0, 0, False)
    assert any("1 file(s)" in n and arts[0].filename in n and "cannot remove" in n for n in rec.notes), rec.notes


async def test_a_different_file_already_under_the_same_name_is_named_and_refused(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
    tmp_path: Path,
) -> None:
    store, arts = closure
    user, index, password = _names()
    ts = _target_settings(devpi_service.url, user, index)
    environ = {"DV_USER": user, "DV_PASS": password}
    victim = next(a for a in arts if a.name == "mctl-demo-base" and a.filename.endswith(".whl"))
    other = build_wheel(Dist("mctl-demo-base", "1.5.0", code="OTHER = 1\n"), tmp_path / "other")
    assert other.name == victim.filename
    with devpi_service.client() as client:
        client.put(f"{devpi_service.url}/{user}", json={"password": password}).raise_for_status()
    with devpi_service.client(auth=(user, password)) as client:
        client.put(
            f"{devpi_service.url}/{user}/{index}", json={"type": "stage", "bases": [], "volatile": False}
        ).raise_for_status()
        with other.open("rb") as fh:
            client.post(
                f"{devpi_service.url}/{user}/{index}/",
                data={":action": "file_upload", "name": "mctl-demo-base", "version": "1.5.0"},
                files={"content": (other.name, fh, "application/octet-stream")},
            ).raise_for_status()

    with pytest.raises(TargetError) as info:
        await _publish(store, ts, environ)
    message = str(info.value)
    assert victim.filename in message and victim.sha256 in message and "fresh index" in message
    assert "1 file(s)" in message
    # The others went in; the foreign file stayed as it was.
    assert _listing(devpi_service, user, index, "mctl-demo-lib") == {
        a.filename: a.sha256 for a in arts if a.name == "mctl-demo-lib"
    }
    assert _listing(devpi_service, user, index, "mctl-demo-base")[victim.filename] != victim.sha256


async def test_an_index_with_bases_is_refused(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
) -> None:
    store, _ = closure
    user, index, password = _names()
    with devpi_service.client() as client:
        client.put(f"{devpi_service.url}/{user}", json={"password": password}).raise_for_status()
    with devpi_service.client(auth=(user, password)) as client:
        client.put(f"{devpi_service.url}/{user}/base", json={"type": "stage", "bases": []}).raise_for_status()
        client.put(
            f"{devpi_service.url}/{user}/{index}", json={"type": "stage", "bases": [f"{user}/base"]}
        ).raise_for_status()
    ts = _target_settings(devpi_service.url, user, index)
    environ = {"DV_USER": user, "DV_PASS": password}
    with pytest.raises(TargetError, match=f"inherits from {user}/base"):
        await _publish(store, ts, environ)
    check = await _check(ts, environ)
    assert not check.ok and any("inherits" in p for p in check.problems)
    with devpi_service.client() as client:
        assert client.get(f"{devpi_service.url}/{user}/{index}").json()["result"]["projects"] == []


async def test_check_reports_version_and_wrong_password(devpi_service: DevpiService) -> None:  # noqa: F811
    user, index, password = _names()
    ts = _target_settings(devpi_service.url, user, index)
    fresh = await _check(ts, {"DV_USER": user, "DV_PASS": password})
    # A user that does not exist yet is fine: publish creates it.
    assert fresh.ok and fresh.plugins["devpi-server"] == devpi_service.server_version
    with devpi_service.client() as client:
        client.put(f"{devpi_service.url}/{user}", json={"password": password}).raise_for_status()
    good = await _check(ts, {"DV_USER": user, "DV_PASS": password})
    assert good.ok and good.authenticated and good.server_version == devpi_service.server_version
    bad = await _check(ts, {"DV_USER": user, "DV_PASS": "a-secret-guess"})
    assert bad.reachable and not bad.authenticated and not bad.ok
    assert any("wrong user or password" in p and "password-env" in p for p in bad.problems)
    assert not any("a-secret-guess" in p for p in bad.problems)  # never the secret itself


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_and_wrong_password_are_clear_target_errors(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
) -> None:
    store, _ = closure
    user, index, password = _names()
    ts = _target_settings(f"http://127.0.0.1:{_free_port()}", user, index)
    with pytest.raises(TargetError, match=r"ConnectError talking to http://127\.0\.0\.1") as info:
        await _publish(store, ts, {"DV_USER": user, "DV_PASS": password})
    assert "targets.dv.url" in (info.value.hint or "")
    check = await _check(ts, {"DV_USER": user, "DV_PASS": password})
    assert not check.reachable and not check.ok

    with devpi_service.client() as client:
        client.put(f"{devpi_service.url}/{user}", json={"password": password}).raise_for_status()
    ts = _target_settings(devpi_service.url, user, index)
    with pytest.raises(TargetError, match=f"log in as '{user}'") as info:
        await _publish(store, ts, {"DV_USER": user, "DV_PASS": "not-the-password"})
    assert "not-the-password" not in str(info.value) and "password-env" in (info.value.hint or "")
    with devpi_service.client() as client:
        assert client.get(f"{devpi_service.url}/{user}/{index}").status_code == 404  # nothing created


async def test_credentials_of_another_user_are_refused(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
) -> None:
    store, _ = closure
    user, index, password = _names()
    ts = _target_settings(devpi_service.url, user, index)
    with pytest.raises(UserError, match=f"belongs to '{user}'"):
        await _publish(store, ts, {"DV_USER": user + "x", "DV_PASS": password})


# --- through the CLI (sync tests: the CLI runs its own event loop) ---------------------------------------------


def _config(tmp_path: Path, store: Store, url: str, user: str, index: str) -> Path:
    path = tmp_path / "mirrorctl.toml"
    path.write_text(
        f'[store]\npath = "{store.root}"\n\n[targets.dv]\nkind = "devpi"\nurl = "{url}"\n'
        f'username-env = "DV_USER"\npassword-env = "DV_PASS"\nrepositories = {{ pypi = "{user}/{index}" }}\n'
    )
    return path


def _run(config: Path, args: Sequence[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), "-q", *args], env=env)
    return result.exit_code, result.output


def test_cli_publish_check_history_rollback(
    devpi_service: DevpiService,  # noqa: F811
    closure: tuple[Store, list[Artifact]],
    tmp_path: Path,
) -> None:
    store, arts = closure
    user, index, password = _names()
    config = _config(tmp_path, store, devpi_service.url, user, index)
    env = {"DV_USER": user, "DV_PASS": password}

    code, out = _run(config, ["publish", "--to", "dv"], env)
    assert code == 0, out
    row = out.splitlines()[-1].split()  # the results table: ecosystem, repository, result, uploaded, ...
    assert row[3] == f"{len(arts)}" and f"{user}/{index}/+simple/" in out, out
    code, out = _run(config, ["publish", "--to", "dv"], env)
    assert code == 0 and out.splitlines()[-1].split()[2:4] == ["unchanged", "0"], out

    code, out = _run(config, ["targets", "check", "dv"], env)
    assert code == 0 and f"devpi-server {devpi_service.server_version}" in out and out.rstrip().endswith("ok"), out

    code, out = _run(config, ["history", "--to", "dv"], env)
    assert code == 0 and out.count(f"{user}/{index}") == 2 and out.splitlines()[-1].startswith("*"), out

    code, out = _run(config, ["rollback", "--to", "dv", "--version", "1"], env)
    assert code == 1 and "devpi keeps no versions" in out and "publish the earlier snapshot" in out, out

    code, out = _run(config, ["publish", "--to", "dv", "nope"], env)
    assert code == 2 and "no profile 'nope'" in out and "profiles present: test" in out, out

    code, out = _run(config, ["publish", "--to", "dv"], {**env, "DV_PASS": "wrong-secret"})
    assert code == 1 and "log in as" in out and "wrong-secret" not in out, out
    code, out = _run(config, ["targets", "check", "dv"], {**env, "DV_PASS": "wrong-secret"})
    assert code == 1 and "NOT OK" in out and "wrong-secret" not in out, out


def test_cli_unreachable_target_exits_1(closure: tuple[Store, list[Artifact]], tmp_path: Path) -> None:
    store, _ = closure
    user, index, password = _names()
    config = _config(tmp_path, store, f"http://127.0.0.1:{_free_port()}", user, index)
    code, out = _run(config, ["publish", "--to", "dv"], {"DV_USER": user, "DV_PASS": password})
    assert code == 1 and "ConnectError" in out and "targets.dv.url" in out, out
    code, out = _run(config, ["targets", "check", "dv"], {"DV_USER": user, "DV_PASS": password})
    assert code == 1 and "reachable      NO" in out, out
