"""Offline parts of apt publishing into Pulp: the target's apt-signing-service key and when apt is offered."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mirrorctl.config import parse_settings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import UserError
from mirrorctl.targets.pulp import PulpTarget
from mirrorctl.targets.pulp.deb import DebPlugin

ECOSYSTEMS = load_ecosystems()  # the installed adapters, as the runtime loads them


def _target_table(**extra: object) -> dict[str, object]:
    return {"targets": {"pulp": {"kind": "pulp", "url": "http://pulp.internal:24817", **extra}}}


def _deb(target: PulpTarget) -> DebPlugin:
    plugin = target.plugins["apt"]
    assert isinstance(plugin, DebPlugin)
    return plugin


# The key is the Pulp apt strategy's (targets/pulp/deb.py), no longer config.py's: the target table keeps it
# as written and the strategy checks it when the target is made.
async def test_apt_signing_service_is_read_from_the_target_table(tmp_path: Path) -> None:
    table = _target_table(repositories={"apt": "team-apt"}, **{"apt-signing-service": "mirrorctl-archive"})
    settings = parse_settings(table, tmp_path / "mirrorctl.toml", ECOSYSTEMS)
    async with httpx.AsyncClient() as client:
        assert (
            _deb(PulpTarget(settings.target("pulp"), client, {}, ecosystems=ECOSYSTEMS)).signing_service
            == "mirrorctl-archive"
        )
        plain = parse_settings(_target_table(repositories={"apt": "a"}), tmp_path / "m.toml", ECOSYSTEMS).target("pulp")
        assert _deb(PulpTarget(plain, client, {}, ecosystems=ECOSYSTEMS)).signing_service is None


@pytest.mark.parametrize("value", ["", "  ", 3])
async def test_a_bad_apt_signing_service_is_refused_naming_the_key(tmp_path: Path, value: object) -> None:
    settings = parse_settings(_target_table(**{"apt-signing-service": value}), tmp_path / "mirrorctl.toml", ECOSYSTEMS)
    async with httpx.AsyncClient() as client:
        with pytest.raises(UserError, match=r"targets\.pulp\.apt-signing-service must be a non-empty name"):
            PulpTarget(settings.target("pulp"), client, {}, ecosystems=ECOSYSTEMS)


async def test_a_key_no_pulp_strategy_reads_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    settings = parse_settings(_target_table(**{"apt-signing-servce": "x"}), tmp_path / "mirrorctl.toml", ECOSYSTEMS)
    async with httpx.AsyncClient() as client:
        with pytest.raises(UserError) as err:
            PulpTarget(settings.target("pulp"), client, {}, ecosystems=ECOSYSTEMS)
    assert err.value.message == f"{tmp_path / 'mirrorctl.toml'}: unknown setting targets.pulp.apt-signing-servce"
    assert err.value.hint and "targets.pulp.apt-signing-service" in err.value.hint


async def test_apt_is_offered_only_when_the_target_names_an_apt_repository(tmp_path: Path) -> None:
    plain = parse_settings(_target_table(repositories={"pypi": "x"}), tmp_path / "m.toml", ECOSYSTEMS).target("pulp")
    with_apt = parse_settings(
        _target_table(repositories={"apt": "team-apt"}, **{"content-url": "http://pulp.internal:24816"}),
        tmp_path / "m.toml",
        ECOSYSTEMS,
    ).target("pulp")
    async with httpx.AsyncClient() as client:
        assert "apt" not in PulpTarget(plain, client, {}, ecosystems=ECOSYSTEMS).ecosystems
        target = PulpTarget(with_apt, client, {}, ecosystems=ECOSYSTEMS)
        assert "apt" in target.ecosystems and isinstance(target.plugins["apt"], DebPlugin)
        # apt's URIs: the distribution root on the content app; apt appends dists/<suite>/ and pool paths.
        assert target.endpoint("apt") == "http://pulp.internal:24816/pulp/content/team-apt/"


def test_the_keyring_workspace_config_writes_is_the_one_the_apt_sources_name() -> None:
    from mirrorctl.ecosystems.apt.clientconfig import KEYRING
    from mirrorctl.targets.pulp.deb import WORKSPACE_KEYRING

    assert WORKSPACE_KEYRING == KEYRING
