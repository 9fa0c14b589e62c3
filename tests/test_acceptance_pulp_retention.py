"""A package a publish removed is gone from Pulp's content app as soon as the publish ends (issue 13 item 3).

pulpcore serves a superseded publication's files for DISTRIBUTED_PUBLICATION_RETENTION_PERIOD seconds (3 days by
default); scripts/services.sh sets it to 0. Against the real Pulp: publish two npm packages, publish again
without one ("1 removed"), and the removed tarball and packument answer 404 right away while the kept ones still
answer 200; `mirrorctl targets check` on that Pulp prints no warning. A Pulp started before the settings said 0
fails here: restart it (`bash scripts/services.sh restart`).
"""

# ruff: noqa: F811  (pytest fixtures imported by name and taken as parameters)
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.targets.pulp import PulpTarget
from mirrorctl.targets.pulp.retention import SETTING
from tests.fixtures.services import PulpService, pulp_service  # noqa: F401

from .test_pulp_npm import Made, client, get, made, packument_url, publish, repo_name, target  # noqa: F401

pytestmark = pytest.mark.live


async def test_a_removed_npm_package_is_gone_from_pulp_right_after_the_publish(
    target: PulpTarget, made: Made
) -> None:
    keep = made.artifact("mctl-keep", "1.0.0")
    drop = made.artifact("mctl-drop", "1.0.0")
    first = await publish(target, [keep, drop], made.store)
    assert first.changed and first.removed == 0
    endpoint = target.endpoint("npm")
    for a in (keep, drop):
        assert get(endpoint + a.path).status_code == 200, a.path
        assert get(packument_url(target, a.name)).status_code == 200, a.name

    second = await publish(target, [keep], made.store)
    assert second.changed and second.removed == 2  # the tarball and its packument
    gone = get(endpoint + drop.path)
    assert gone.status_code == 404, (
        f"{drop.path} is still served after the publish that removed it (HTTP {gone.status_code}): Pulp keeps "
        f"superseded publications' files ({SETTING} is not 0); restart the services so they read "
        "scripts/services/pulp-settings.py.in"
    )
    assert get(packument_url(target, drop.name)).status_code == 404
    assert get(endpoint + keep.path).status_code == 200
    assert get(packument_url(target, keep.name)).status_code == 200


def test_targets_check_finds_the_period_at_0(pulp_service: PulpService, repo_name: str, tmp_path: Path) -> None:
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "store"}"\n\n[targets.pulp]\nkind = "pulp"\nurl = "{pulp_service.url}"\n'
        f'content-url = "{pulp_service.content_url}"\n'
        f'username-env = "PL_USER"\npassword-env = "PL_PASS"\nrepositories = {{ npm = "{repo_name}" }}\n'
    )
    env = {"PL_USER": pulp_service.username, "PL_PASS": pulp_service.password}
    done = CliRunner().invoke(app, ["--config", str(config), "targets", "check", "pulp"], env=env)
    assert done.exit_code == 0 and done.output.rstrip().endswith("ok"), done.output
    assert "warning" not in done.output and SETTING not in done.output, done.output
