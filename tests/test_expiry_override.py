"""Freeze protection (threats.md #6) and its explicit override for networks whose clocks drift:
``--accept-expired-until TIME`` accepts an expired bundle while the local clock is not past TIME, prints it
loudly and writes who/when/which bundle/how far past expiry to the audit journal. Without it (or once TIME has
passed) an expired bundle is refused at the exact boundary, changing nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.trust import format_time
from mirrorctl.errors import BundleRefused
from tests.fixtures.bundles import NOW, World, make_world
from tests.fixtures.keys_world import events, everything, imp

EXPIRES = NOW + timedelta(days=2)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def test_refused_one_second_after_expiry_without_the_override(world: World) -> None:
    bundle = world.export(expires=EXPIRES)
    before = everything(world.inside)
    with pytest.raises(
        BundleRefused, match=r"bundle expired at 2026-03-03T12:00:00Z .local clock says 2026-03-03T12:00:01Z.$"
    ) as info:
        imp(world, bundle, now=EXPIRES + timedelta(seconds=1))
    assert "--accept-expired-until" in (info.value.hint or "")
    assert everything(world.inside) == before
    assert events(world.inside)[-1]["result"] == "refused"
    assert not [e for e in events(world.inside) if e["event"] == "expiry-override"]


def test_override_accepts_loudly_and_is_audited(world: World) -> None:
    bundle = world.export(expires=EXPIRES)
    now = EXPIRES + timedelta(hours=5, seconds=7)
    until = EXPIRES + timedelta(days=1)
    report = imp(world, bundle, now=now, accept_expired_until=until)
    assert report.sequence == 1 and not report.noop
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    assert "EXPIRED BUNDLE ACCEPTED" in warning and "0d 05:00:07" in warning
    assert report.bundle_id in warning and format_time(until) in warning
    override = [e for e in events(world.inside) if e["event"] == "expiry-override"]
    assert len(override) == 1
    e = override[0]
    assert e["bundle"] == bundle.name and e["bundle-id"] == report.bundle_id
    assert e["expires"] == "2026-03-03T12:00:00Z" and e["clock"] == format_time(now)
    assert e["seconds-past-expiry"] == 5 * 3600 + 7 and e["accepted-until"] == format_time(until)
    assert e["who"]  # who and when come with every journal entry
    assert events(world.inside)[-1]["event"] == "import" and events(world.inside)[-1]["result"] == "ok"


def test_override_at_its_exact_boundary(world: World) -> None:
    bundle = world.export(expires=EXPIRES)
    now = EXPIRES + timedelta(hours=1)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match=r"--accept-expired-until 2026-03-03T12:59:59Z is past as well"):
        imp(world, bundle, now=now, accept_expired_until=now - timedelta(seconds=1))
    assert everything(world.inside) == before
    assert not [e for e in events(world.inside) if e["event"] == "expiry-override"]
    report = imp(world, bundle, now=now, accept_expired_until=now)  # until == now: still accepted
    assert report.warnings and not report.noop


def test_override_on_a_valid_bundle_changes_nothing(world: World) -> None:
    bundle = world.export(expires=EXPIRES)
    report = imp(world, bundle, now=EXPIRES, accept_expired_until=EXPIRES + timedelta(days=3))
    assert report.warnings == ()
    assert not [e for e in events(world.inside) if e["event"] == "expiry-override"]


def test_override_does_not_bypass_other_checks(world: World) -> None:
    """The override is about the clock only: rollback protection still holds."""
    b1 = world.export("1.bundle", expires=EXPIRES)
    b2 = world.export("2.bundle", expires=EXPIRES)
    late = EXPIRES + timedelta(hours=1)
    imp(world, b2, now=late, accept_expired_until=late)
    before = everything(world.inside)
    with pytest.raises(BundleRefused, match="refused as a rollback"):
        imp(world, b1, now=late, accept_expired_until=late)
    assert everything(world.inside) == before


def _cli(world: World, *args: str) -> tuple[int, str]:
    cfg = world.root / "inside.toml"
    cfg.write_text(f'[store]\npath = "inside"\n[trust]\nkeys = ["{world.key.public_path}"]\n')
    result = CliRunner().invoke(app, ["--config", str(cfg), "import", *args])
    return result.exit_code, result.output.replace("\n", "")


def test_cli_override(world: World) -> None:
    # exported as already expired an hour ago by the real clock: the CLI uses the real clock
    from datetime import UTC, datetime

    real_now = datetime.now(UTC).replace(microsecond=0)
    bundle = world.export(now=real_now - timedelta(days=2), expires=real_now - timedelta(hours=1))
    code, out = _cli(world, str(bundle))
    assert code == 1 and "bundle expired at" in out and "--accept-expired-until" in out
    code, out = _cli(world, "--accept-expired-until", "tomorrow", str(bundle))
    assert code == 2 and "is not a UTC time" in out
    until = format_time(real_now + timedelta(hours=1))
    code, out = _cli(world, "--accept-expired-until", until, str(bundle))
    assert code == 0, out
    assert "WARNING: EXPIRED BUNDLE ACCEPTED" in out and "imported bundle" in out
