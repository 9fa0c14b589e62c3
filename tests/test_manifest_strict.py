"""Issue 12, item 5: manifest fields of the wrong JSON type (``true`` or ``1.0`` for an integer), a ``created``
far ahead of the inside's clock, ``expires`` before ``created`` and a sequence no later bundle could exceed are
refused by import and `bundle verify`, and the inside is unchanged (tests/test_import_refusals.py's check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.manifest import MAX_CLOCK_SKEW, MAX_SEQUENCE, format_time
from mirrorctl.errors import UserError
from tests.fixtures.bundles import ECOSYSTEMS, NOW, Member, World, resign
from tests.test_import_refusals import craft, members, refused, world

__all__ = ["members", "world"]  # the fixtures, imported for pytest


def edited(world: World, members: list[Member], edit: Callable[[dict[str, Any]], None]) -> Any:
    return craft(world, resign(members, world.key.private_path, edit))


def setter(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc[key] = value

    return edit


def blob_size_as_float(doc: dict[str, Any]) -> None:  # equal to the int in Python, not an integer in JSON
    f = next(f for f in doc["files"] if f["path"].startswith("blobs/"))
    f["size"] = float(f["size"])


def profile_size_as_float(doc: dict[str, Any]) -> None:
    p = next(iter(doc["profiles"].values()))
    p["size"] = float(p["size"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (setter("format-version", True), r"format-version true \(a boolean\) is not supported"),
        (setter("format-version", 2.0), r"format-version 2.0 \(a number with a fraction\) is not supported"),
        (setter("sequence", 2.0), r"sequence must be an integer from 0 to \d+, got 2.0 \(a number with a fraction\)"),
        (setter("sequence", True), r"sequence must be an integer .* got true \(a boolean\)"),
        (setter("sequence", "2"), r"sequence must be an integer .* got '2'"),
        (blob_size_as_float, r"size must be an integer from 0 to \d+, got \d+.0"),
        (profile_size_as_float, r"profiles\.[a-z0-9_-]+: size must be an integer and sha256 a string"),
    ],
)
def test_a_field_of_the_wrong_json_type_is_refused(
    world: World, members: list[Member], edit: Callable[[dict[str, Any]], None], match: str
) -> None:
    refused(world, edited(world, members, edit), match)


def test_a_sequence_no_later_bundle_could_exceed_is_refused(world: World, members: list[Member]) -> None:
    refused(
        world, edited(world, members, setter("sequence", value=10**30)),
        rf"sequence must be an integer from 0 to {MAX_SEQUENCE}, got {10**30}",
    )
    refused(world, edited(world, members, setter("sequence", value=MAX_SEQUENCE + 1)), "sequence must be")


def test_export_refuses_a_sequence_past_the_bound(world: World) -> None:
    with pytest.raises(UserError, match=rf"--sequence must be from 0 to {MAX_SEQUENCE}"):
        world.export("huge.bundle", sequence=MAX_SEQUENCE + 1)
    assert not (world.root / "huge.bundle").exists()


def test_created_far_ahead_of_the_inside_clock_is_refused(world: World, members: list[Member]) -> None:
    ahead = format_time(NOW + MAX_CLOCK_SKEW * 2)
    message = refused(world, edited(world, members, setter("created", value=ahead)), "more than 24 hours after")
    assert ahead in message and format_time(NOW) in message


def test_expires_before_created_is_refused(world: World, members: list[Member]) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["expires"] = format_time(NOW.replace(year=2030))
        doc["created"] = format_time(NOW.replace(year=2030, month=6))

    refused(world, edited(world, members, edit), "expires 2030-03-01T12:00:00Z is not after created")


def test_a_bundle_within_the_skew_still_imports(world: World, members: list[Member]) -> None:
    bundle = edited(world, members, setter("created", value=format_time(NOW + MAX_CLOCK_SKEW / 2)))
    assert import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW).sequence == 2
