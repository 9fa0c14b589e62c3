"""Issue 12, item 1: a hostile name costs linear time and bounded space. Redaction is one pass (the regex it
replaces was quadratic on a long run of letters), refusals quote untrusted names shortened, and a journal entry
is formatted before the journal's lock is taken, so a good import never waits behind a hostile one."""

from __future__ import annotations

import fcntl
import random
import re
import time
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.errors import BundleRefused, shorten
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import (
    ECOSYSTEMS,
    NOW,
    file_member,
    fingerprint,
    make_world,
    read_members,
    staging_dirs,
    write_members,
)

# What redaction has always masked, as a regex (quadratic as a search; kept here as the reference only).
_REFERENCE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
SECRET = "s3cr3t-t0ken-value"


def test_a_megabyte_run_of_letters_redacts_in_well_under_a_second() -> None:
    for text in ("a" * 1_000_000, "a" * 1_000_000 + "://user:pw@host/", ("ab1" * 1000 + "://") * 300):
        t0 = time.perf_counter()
        out = audit.redact(text)
        assert time.perf_counter() - t0 < 0.5, len(text)
        assert out == _REFERENCE.sub(r"\1***@", text) if len(text) < 10_000 else "pw" not in out[-20:]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (f"https://admin:{SECRET}@pulp.mirror.internal/api/ refused", "https://***@pulp.mirror.internal/api/ refused"),
        (f"fetch of git+ssh://{SECRET}@h.test/x failed", "fetch of git+ssh://***@h.test/x failed"),
        (f"a: http://u:{SECRET}@a.test/ b: https://{SECRET}@b.test", "a: http://***@a.test/ b: https://***@b.test"),
        (f"(see:https://u:{SECRET}@h.test)", "(see:https://***@h.test)"),
        (f"1x2://u:{SECRET}@h.test", "1x2://***@h.test"),
        ("mailto:someone@h.test and https://h.test/a@b", "mailto:someone@h.test and https://h.test/a@b"),
        ("http://host.test/ no userinfo", "http://host.test/ no userinfo"),
        (f"HTTPS://a:{SECRET}@h.test\nnext line", "HTTPS://***@h.test\nnext line"),
    ],
)
def test_every_redaction_case_still_masks(text: str, want: str) -> None:
    assert audit.redact(text) == want == _REFERENCE.sub(r"\1***@", text)
    assert audit.redact({"k": [text, (text,)]}) == {"k": [want, [want]]}


def test_redaction_agrees_with_the_regex_on_random_text() -> None:
    rng = random.Random(12)
    alphabet = ["a", "Z", "1", "+", ".", "-", ":", "/", "@", " ", "\t", "\n", "é", "://", "://u@"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert audit.redact(text) == _REFERENCE.sub(r"\1***@", text), text


def test_shorten_bounds_any_quoted_value() -> None:
    assert shorten("README.txt") == "README.txt"
    long = shorten("x" * 100_000)
    assert len(long) < 250 and long.endswith("… (100000 characters)")
    assert shorten(10**30) == str(10**30)
    assert len(shorten(list(range(10_000)))) < 250


def test_a_journal_entry_keeps_a_bounded_field(tmp_path: Path) -> None:
    store = Store(tmp_path)
    doc = audit.append(store, "import", error="member " + "a" * 500_000 + f" https://u:{SECRET}@h.test/")
    assert len(doc["error"]) <= audit.FIELD_LIMIT and doc["error"].startswith("member aaa")
    assert audit.journal_path(store).stat().st_size < 2 * audit.FIELD_LIMIT
    assert SECRET not in audit.journal_path(store).read_text()
    audit.verify(store)


def test_nothing_input_sized_runs_under_the_journal_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[bool] = [False]
    real_flock, real_mask = fcntl.flock, audit._mask_userinfo

    def flock(fd: int, op: int) -> None:
        real_flock(fd, op)
        held[0] = op != fcntl.LOCK_UN

    def mask(text: str) -> str:
        assert not held[0], "redaction ran while the journal's lock was held"
        return real_mask(text)

    monkeypatch.setattr(audit.fcntl, "flock", flock)
    monkeypatch.setattr(audit, "_mask_userinfo", mask)
    audit.append(Store(tmp_path), "import", error="x" * 100_000, nested={"a": ["http://u:p@h.test/"]})
    assert audit.verify(Store(tmp_path)).entries == 1


@pytest.mark.parametrize(
    ("length", "match"),
    [
        # Within the container's bound on names (4 KiB): the refusal names the member, shortened.
        (4_000, "is not listed in the signed manifest"),
        # Past it (issue 12, item 2): the container refuses the extended header unread, naming no name at all.
        (60_000, r"an extended header at offset \d+ is 60012 bytes, more than the 8192 allowed"),
    ],
)
def test_a_member_named_with_tens_of_thousands_of_letters_is_refused_quickly(
    tmp_path: Path, length: int, match: str
) -> None:
    world = make_world(tmp_path)
    import_bundle(world.export("first.bundle"), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    members = read_members(world.export("second.bundle"))
    name = "a" * length
    members.insert(3, file_member(name, b"hello"))
    bundle = write_members(world.root / "long.bundle", members)
    before = fingerprint(world.inside)
    journal_before = audit.journal_path(world.inside).stat().st_size

    t0 = time.perf_counter()
    with pytest.raises(BundleRefused, match=match) as info:
        import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert time.perf_counter() - t0 < 3
    assert len(info.value.message) < 1000
    if length <= 4096:
        assert f"({length} characters)" in info.value.message
    with pytest.raises(BundleRefused, match=match):
        verify_bundle(bundle, world.trusted, NOW, ecosystems=ECOSYSTEMS)

    assert fingerprint(world.inside) == before and staging_dirs(world.inside) == []
    last = audit.last_entries(world.inside)[-1]
    assert last["result"] == "refused" and len(last["error"]) < 1000
    assert audit.journal_path(world.inside).stat().st_size - journal_before < 2000
    audit.verify(world.inside)
