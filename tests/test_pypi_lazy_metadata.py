"""Locking against an upstream without PEP 658 metadata: METADATA read with Range requests (lazy wheel), the
whole-file fallback (verified, kept in the store for snapshot), the metadata cache by file sha256, and
conditional page requests. Loopback only (the fixture upstream)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from mirrorctl.config import FetchSettings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.ecosystems.pypi import lazywheel
from mirrorctl.ecosystems.pypi.lazywheel import NotLazy, RangeReply, read_wheel_metadata
from mirrorctl.ecosystems.pypi.metacache import MetadataCache
from mirrorctl.errors import DigestMismatch, IntegrityError
from mirrorctl.inside.store import Store
from mirrorctl.outside.locking import lock_profiles
from mirrorctl.outside.profiles import load_profile
from mirrorctl.outside.snapshot import load_locks, snapshot
from mirrorctl.progress import SILENT
from tests.fixtures.upstream import (  # noqa: F401  (fixtures)
    FixtureUpstream,
    pypi_upstream_factory_fixture,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist
from tests.test_pypi_lock import by_target, lock, populate, settings_for, write_profile

Factory = Callable[..., FixtureUpstream]
ONE_TARGET = '[pypi]\nrequirements = [{}]\npython = ["3.12"]\nplatforms = ["manylinux_2_28_x86_64"]\n'


def file_gets(up: FixtureUpstream) -> list[tuple[str, str | None]]:
    """(path, Range header or None) of every GET of a file (not of a .metadata file)."""
    return [
        (p, h.get("range"))
        for m, p, h in up.log
        if m == "GET" and p.startswith("/files/") and not p.endswith(".metadata")
    ]


def blobs(root: Path) -> set[str]:
    return {p.name for p in (root / "store" / "blobs").rglob("*") if p.is_file()}


@pytest.fixture
def small_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture's wheels are ~1 KB: with the real 128 KiB tail the first reply would be the whole file.
    monkeypatch.setattr(lazywheel, "TAIL", 200)


async def test_lazy_metadata_uses_range_and_downloads_no_whole_wheel(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    plain = pypi_upstream_factory(pep658=False)
    populate(plain)
    rich = pypi_upstream_factory()
    populate(rich)
    arts_plain, _ = await lock(tmp_path / "a", plain.url)
    arts_rich, _ = await lock(tmp_path / "b", rich.url)
    assert by_target(arts_plain) == by_target(arts_rich)
    assert [(a.filename, a.sha256) for a in arts_plain] == [(a.filename, a.sha256) for a in arts_rich]
    gets = file_gets(plain)
    assert gets, "the wheels were read"
    assert all(rng is not None for _, rng in gets), f"a whole wheel was downloaded: {gets}"
    for a in arts_plain:
        path = f"/files/{a.filename}"
        ranges = plain.range_requests(path)
        assert ranges and ranges[0] == "bytes=-200", (path, ranges)
        assert len(ranges) <= 3  # the end, then the central directory, then the METADATA entry
    assert blobs(tmp_path / "a") == set(), "nothing unverified lands in the store"


async def test_large_wheel_costs_two_small_ranges(pypi_upstream_factory: Factory, tmp_path: Path) -> None:
    up = pypi_upstream_factory(pep658=False)
    entry = up.add_large("big", "1.0", 3 * 1024 * 1024)
    arts, _ = await lock(tmp_path, up.url, ONE_TARGET.format('"big"'))
    assert [a.sha256 for a in arts] == [entry.sha256]
    ranges = up.range_requests(f"/files/{entry.filename}")
    assert ranges[0] == f"bytes=-{lazywheel.TAIL}" and len(ranges) == 2, ranges
    first, last = (int(x) for x in ranges[1].removeprefix("bytes=").split("-"))
    assert first == 0 and last < 4096, "only the METADATA entry at the start, not the payload"
    assert all(rng is not None for _, rng in file_gets(up))


async def test_range_ignored_falls_back_to_whole_file_kept_in_store(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    up = pypi_upstream_factory(pep658=False, ranges=False)
    populate(up)
    arts, _ = await lock(tmp_path, up.url)
    assert {a.sha256 for a in arts} == blobs(tmp_path), "each verified whole download is kept"
    store = Store(tmp_path / "store")
    assert all(store.verify_blob(a.sha256, a.size) is None for a in arts)
    assert not list(store.tmp_dir.iterdir()), "no temp file left behind"

    # snapshot then has nothing to download and makes no request at all
    settings = settings_for(tmp_path, up.url)
    profile = load_profile(tmp_path / "profiles" / "web.toml", load_ecosystems())
    before = len(up.log)
    async with httpx.AsyncClient() as client:
        report = await snapshot(load_locks([profile]), load_ecosystems(), settings, store, client, SILENT)
    assert report.downloaded == 0 and report.present == len(arts)
    assert up.log[before:] == []


async def test_tampered_whole_file_in_fallback_is_refused(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    up = pypi_upstream_factory(pep658=False, ranges=False)
    populate(up)
    up.tamper("lib-1.0-py3-none-any.whl")
    with pytest.raises(IntegrityError) as err:
        await lock(tmp_path, up.url)
    msg = err.value.message
    assert "lib-1.0-py3-none-any.whl" in msg and "does not match the sha256 the index lists" in msg, msg
    assert up.entry("lib-1.0-py3-none-any.whl").sha256 in msg
    assert isinstance(err.value, DigestMismatch) and err.value.artifact.endswith("(lib-1.0-py3-none-any.whl)")
    assert err.value.expected == {"sha256": up.entry("lib-1.0-py3-none-any.whl").sha256}
    assert set(err.value.actual) == {"sha256"} and err.value.actual["sha256"] != err.value.expected["sha256"]
    assert up.entry("lib-1.0-py3-none-any.whl").sha256 not in blobs(tmp_path)
    assert not (tmp_path / "profiles" / "web.lock").exists(), "no lock written"
    assert not list(Store(tmp_path / "store").tmp_dir.iterdir())
    cache = tmp_path / "store" / "cache" / "pypi-metadata"
    assert not (cache / f"{up.entry('lib-1.0-py3-none-any.whl').sha256}.metadata").exists()


async def test_metadata_cache_makes_second_lock_fetch_no_metadata(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    for up in (pypi_upstream_factory(pep658=False), pypi_upstream_factory(pep658=True)):
        populate(up)
        root = tmp_path / str(up.pep658)
        first, text1 = await lock(root, up.url)
        assert [p for p, _ in file_gets(up)] or up.count(lambda p: p.endswith(".metadata"))
        before = len(up.log)
        second, text2 = await lock(root, up.url)
        assert text1 == text2 and first == second
        paths = [p for _, p, _ in up.log[before:]]
        assert paths and all(p.startswith("/simple/") for p in paths), paths


async def test_damaged_cache_entry_is_fetched_again(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    up = pypi_upstream_factory(pep658=False)
    populate(up)
    first, _ = await lock(tmp_path, up.url)
    lib = next(a for a in first if a.filename == "lib-1.0-py3-none-any.whl")
    entry = tmp_path / "store" / "cache" / "pypi-metadata" / f"{lib.sha256}.metadata"
    entry.write_bytes(entry.read_bytes().replace(b"Name: lib", b"Name: evil"))
    before = len(up.log)
    second, _ = await lock(tmp_path, up.url)
    assert second == first
    refetched = {p for _, p, _ in up.log[before:] if p.startswith("/files/")}
    assert refetched == {f"/files/{lib.filename}"}


async def test_stored_file_is_preferred_over_cache(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    # A Range read is not verified; once the verified file is in the store its METADATA wins.
    up = pypi_upstream_factory(pep658=False, ranges=False)
    populate(up)
    first, _ = await lock(tmp_path, up.url)
    app = next(a for a in first if a.name == "app")
    MetadataCache(tmp_path / "store" / "cache" / "pypi-metadata").put(
        app.sha256, b"Metadata-Version: 2.1\nName: App\nVersion: 1.0\nRequires-Dist: evil\n"
    )
    before = len(up.log)
    second, _ = await lock(tmp_path, up.url)
    assert second == first
    assert all(p.startswith("/simple/") for _, p, _ in up.log[before:])


async def test_conditional_page_requests(pypi_upstream_factory: Factory, tmp_path: Path) -> None:
    up = pypi_upstream_factory(page_etags=True)
    populate(up)
    first, _ = await lock(tmp_path, up.url)
    before = len(up.log)
    second, _ = await lock(tmp_path, up.url)
    assert second == first
    pages = [h for _, p, h in up.log[before:] if p.startswith("/simple/")]
    assert pages and all("if-none-match" in h for h in pages)
    up.add(Dist("lib", "1.5"))  # the page changes: its new body is used, not the cached one
    third, _ = await lock(tmp_path, up.url)
    assert {a.filename for a in third if a.name == "lib"} >= {"lib-1.5-py3-none-any.whl"}


async def test_concurrency_setting_bounds_requests(
    pypi_upstream_factory: Factory, tmp_path: Path, small_tail: None
) -> None:
    up = pypi_upstream_factory(pep658=False)
    populate(up)
    path = write_profile(tmp_path, ONE_TARGET.format('"app[fast]", "native"'))
    settings = replace(settings_for(tmp_path, up.url), fetch=FetchSettings(concurrency=1))
    in_flight = peak = 0

    async def hook_req(_: httpx.Request) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    async def hook_resp(_: httpx.Response) -> None:
        nonlocal in_flight
        in_flight -= 1

    ecos = load_ecosystems()
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [hook_req], "response": [hook_resp]}
    async with httpx.AsyncClient(event_hooks=hooks) as client:
        await lock_profiles([load_profile(path, ecos)], ecos, settings, Store(settings.store_path), client, SILENT)
    assert peak == 1


# -- the zip reader on its own ------------------------------------------------------------------------------


def wheel_bytes(metadata: bytes, *, filler: int = 0, zip64: bool = False, stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for i in range(filler):
            zf.writestr(f"pkg/module_{i:05d}.py", f"x = {i}\n" * 20)
        with zf.open("pkg-1.0.dist-info/METADATA", "w", force_zip64=zip64) as f:
            f.write(metadata)
        zf.writestr("pkg-1.0.dist-info/RECORD", "")
    return buf.getvalue()


def server(data: bytes, calls: list[str]) -> lazywheel.RangeFetch:
    async def fetch(first: int | None, last: int) -> RangeReply:
        calls.append(f"-{last}" if first is None else f"{first}-{last}")
        start = max(len(data) - last, 0) if first is None else first
        end = len(data) if first is None else last + 1
        return RangeReply(start, data[start:end], len(data))

    return fetch


META = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\nRequires-Dist: lib>=1\n"


@pytest.mark.parametrize(
    ("kwargs", "max_calls"),
    [({}, 1), ({"stored": True}, 1), ({"filler": 3000}, 3), ({"zip64": True, "filler": 10}, 3)],
)
def test_reader_finds_metadata(kwargs: dict[str, int | bool], max_calls: int) -> None:
    data = wheel_bytes(META, **kwargs)  # type: ignore[arg-type]
    calls: list[str] = []
    raw, requests = asyncio.run(read_wheel_metadata(server(data, calls), size=len(data), tail=4096))
    assert raw == META and requests == len(calls) <= max_calls, calls


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: b"not a zip at all" * 10, "end-of-central-directory"),
        (lambda d: d.replace(b"Requires-Dist", b"Requires-Dusk"), "CRC"),
        (lambda d: d.replace(b"pkg-1.0.dist-info/METADATA", b"pkg-1.0.dist-info/METADATX"), "no .dist-info"),
    ],
)
def test_reader_refuses_odd_files(damage: Callable[[bytes], bytes], why: str) -> None:
    data = damage(wheel_bytes(META, stored=True))
    with pytest.raises(NotLazy, match=why):
        asyncio.run(read_wheel_metadata(server(data, []), size=len(data), tail=4096))


def test_reader_refuses_a_size_other_than_the_index_lists() -> None:
    data = wheel_bytes(META)
    with pytest.raises(NotLazy, match="index says"):
        asyncio.run(read_wheel_metadata(server(data, []), size=len(data) + 1))


def test_cache_keys_must_be_sha256(tmp_path: Path) -> None:
    cache = MetadataCache(tmp_path)
    cache.put("../escape", b"x")
    assert list(tmp_path.iterdir()) == []
    sha = hashlib.sha256(b"f").hexdigest()
    cache.put(sha, META)
    assert cache.get(sha) == META


async def test_unchanged_pages_are_not_parsed_again(
    pypi_upstream: FixtureUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirrorctl.ecosystems.pypi import index

    populate(pypi_upstream)
    parsed: list[str] = []
    real = index.parse_json_page

    def counting(doc: Any, page_url: str, wheel_ok: Any = None) -> Any:
        parsed.append(page_url)
        return real(doc, page_url, wheel_ok)

    monkeypatch.setattr(index, "parse_json_page", counting)
    first, _ = await lock(tmp_path, pypi_upstream.url)
    assert parsed
    parsed.clear()
    second, _ = await lock(tmp_path, pypi_upstream.url)
    assert second == first and parsed == []
    pypi_upstream.add(Dist("lib", "1.5"))  # a changed page is parsed again, and its news are used
    third, _ = await lock(tmp_path, pypi_upstream.url)
    assert parsed == [f"{pypi_upstream.url}lib/"]
    assert "lib-1.5-py3-none-any.whl" in {a.filename for a in third}


def test_parsed_rows_round_trip() -> None:
    from mirrorctl.ecosystems.pypi import index

    doc = {
        "files": [
            {"filename": "a-1.0-1build-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
             "url": "https://files.example.test/a1.whl", "hashes": {"sha256": "0" * 64}, "size": 10,
             "requires-python": ">=3.9", "yanked": "bad", "core-metadata": {"sha256": "1" * 64}},
            {"filename": "a-1.0.tar.gz", "url": "../../a.tgz", "hashes": {}, "core-metadata": True},
            {"filename": "A_b-2.0rc1-py3-none-any.whl", "url": "/a2.whl", "hashes": {"sha256": "2" * 64}},
        ]
    }
    records = index.parse_json_page(doc, "https://upstream.example.test/simple/a/")
    assert len(records) == 3
    rows = [index._to_row(r) for r in records]
    assert index._rows_to_records(rows) == records
