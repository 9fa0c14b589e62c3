"""Fuzzing the parsers that read untrusted bytes (issue 12): the bundle container reader, the manifest, the lock,
the profile, and the whole of `bundle verify` over mutations of a genuine signed bundle. Any input either parses
or raises a mirrorctl error: never another exception, never unbounded memory or time.

Bounded for CI (about a minute in all): a fixed number of examples per target, derandomized and without an
example database, so that every run tries the same inputs. What fuzzing found is kept below as plain regression
tests (``HOSTILE_*``): deep nesting that overflowed the JSON and TOML parsers' stacks, chained extended headers.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirrorctl.crossing.bundle.container import ContainerReader
from mirrorctl.crossing.bundle.manifest import parse_manifest
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.crossing.trust import parse_statements
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import MirrorctlError
from mirrorctl.lockfile import parse_lock
from mirrorctl.outside.profiles import load_profile
from tests.fixtures.bundles import DEFAULT_DISTS, ECOSYSTEMS, NOW, World, make_world, pax_header, raw_header

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


MAX_PEAK = 32 * 1024 * 1024  # far above what any of these inputs should take; far below "unbounded"


def parses_or_refuses(fn: Callable[[], Any]) -> None:
    """``fn`` returns, or raises a MirrorctlError; memory stays bounded either way."""
    tracemalloc.start()
    try:
        fn()
    except MirrorctlError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_PEAK, peak


# --- a genuine bundle to mutate (built once) ----------------------------------------------------------------
@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, bytes]:
    world = make_world(tmp_path_factory.mktemp("fuzz-world"), dists=DEFAULT_DISTS[:1])
    world.locks = world.locks[:1]
    bundle = world.export("genuine.bundle")
    return world, bundle.read_bytes()


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, length, new in edits:
        pos %= max(1, len(out))
        out[pos : pos + length] = new
    if cut is not None:
        del out[cut % max(1, len(out)) :]
    return bytes(out)


_EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 16), st.binary(max_size=16)), max_size=4)


# --- the container reader -----------------------------------------------------------------------------------
def _read_everything(data: bytes) -> None:
    reader = ContainerReader(io.BytesIO(data), "fuzz.bundle")
    count = 0
    while (member := reader.next()) is not None:
        for _ in reader.data(member, min(member.size, 1 << 20)):
            pass
        count += 1
        assert count <= len(data) // 512 + 1


_TYPEFLAGS = st.sampled_from([b"0", b"\x00", b"1", b"2", b"5", b"x", b"g", b"L", b"K", b"S", b"Z"])
_PAX_RECORDS = st.dictionaries(
    st.sampled_from(["path", "size", "mtime", "linkpath", "comment", "uid", "GNU.sparse.size"]),
    st.text(max_size=40),
    max_size=3,
)


@st.composite
def _archives(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            parts.append(pax_header(draw(_PAX_RECORDS)))
        size = draw(st.one_of(st.integers(0, 2000), st.integers(0, 1 << 40)))
        parts.append(raw_header(draw(st.binary(min_size=1, max_size=100)), size, draw(_TYPEFLAGS)))
        parts.append(draw(st.binary(max_size=1100)))
    parts.append(draw(st.sampled_from([b"", bytes(512), bytes(1024), bytes(10240), bytes(1024) + b"x"])))
    return b"".join(parts)


@fuzz(400)
@given(data=st.one_of(st.binary(max_size=3000), _archives()))
def test_fuzz_container_reader(data: bytes) -> None:
    parses_or_refuses(lambda: _read_everything(data))


@fuzz(300)
@given(edits=_EDITS, cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_fuzz_container_reader_on_a_mutated_bundle(genuine: tuple[World, bytes], edits: Any, cut: Any) -> None:
    parses_or_refuses(lambda: _read_everything(_mutate(genuine[1], edits, cut)))


# --- the manifest -------------------------------------------------------------------------------------------
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_MANIFEST_KEYS = st.sampled_from(
    ["format", "format-version", "bundle-id", "kind", "lineage", "sequence", "created", "expires", "files",
     "profiles", "mirrorctl-version", "base", "expected", "rebuilt"]
)  # fmt: skip


def _manifest_of(genuine: tuple[World, bytes]) -> dict[str, Any]:
    size = int(genuine[1][124:135], 8)
    return dict(json.loads(genuine[1][512 : 512 + size]))


@fuzz(300)
@given(changes=st.dictionaries(_MANIFEST_KEYS, _JSON, max_size=3), drop=st.lists(_MANIFEST_KEYS, max_size=2))
def test_fuzz_manifest(genuine: tuple[World, bytes], changes: dict[str, Any], drop: list[str]) -> None:
    doc = {**_manifest_of(genuine), **changes}
    for key in drop:
        doc.pop(key, None)
    data = json.dumps(doc).encode()
    parses_or_refuses(lambda: parse_manifest(data))


@fuzz(150)
@given(data=st.binary(max_size=2000))
def test_fuzz_manifest_bytes(data: bytes) -> None:
    parses_or_refuses(lambda: parse_manifest(data))


# --- the lock -----------------------------------------------------------------------------------------------
_TOML_VALUE = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.datetimes() | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
_ARTIFACT_KEYS = st.sampled_from(
    ["ecosystem", "name", "version", "path", "filename", "size", "sha256", "targets", "attrs", "companions"]
)


@fuzz(300)
@given(
    top=st.dictionaries(st.sampled_from(["lock-version", "profile", "inputs", "targets", "artifacts"]), _TOML_VALUE,
                        min_size=1, max_size=2),
    art=st.dictionaries(_ARTIFACT_KEYS, _TOML_VALUE, max_size=3),
)  # fmt: skip
def test_fuzz_lock(genuine: tuple[World, bytes], top: dict[str, Any], art: dict[str, Any]) -> None:
    import tomllib

    doc = tomllib.loads(genuine[0].locks[0][2].decode())
    doc["artifacts"][0].update(art)
    doc.update(top)
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # tomli_w cannot write it (e.g. a top-level value it rejects): not a lock anyone can send
    parses_or_refuses(lambda: parse_lock(text, "fuzz.lock", legacy_paths=ECOSYSTEMS))


@fuzz(150)
@given(text=st.text(max_size=1500))
def test_fuzz_lock_text(text: str) -> None:
    parses_or_refuses(lambda: parse_lock(text, "fuzz.lock", legacy_paths=ECOSYSTEMS))


# --- the profile --------------------------------------------------------------------------------------------
_ECOSYSTEMS = load_ecosystems()
_PROFILE_KEYS = st.sampled_from(
    ["requirements", "python", "platforms", "packages", "suites", "components", "architectures", "include",
     "description", "exclude", "dist", "version", "url"]
)  # fmt: skip


@fuzz(200)
@given(
    tables=st.dictionaries(
        st.sampled_from([*sorted(_ECOSYSTEMS), "include", "description", "unknown"]),
        st.dictionaries(_PROFILE_KEYS, _TOML_VALUE, max_size=4) | _TOML_VALUE,
        max_size=3,
    )
)
def test_fuzz_profile(tmp_path: Path, tables: dict[str, Any]) -> None:
    path = tmp_path / "fuzz.toml"
    try:
        path.write_text(tomli_w.dumps(tables))
    except (TypeError, ValueError):
        return
    parses_or_refuses(lambda: load_profile(path, _ECOSYSTEMS))


# --- all of `bundle verify` ---------------------------------------------------------------------------------
@fuzz(150)
@given(edits=_EDITS, cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_fuzz_verify_a_mutated_bundle(
    genuine: tuple[World, bytes], tmp_path: Path, edits: Any, cut: Any
) -> None:
    world, data = genuine
    path = tmp_path / "mutated.bundle"
    path.write_bytes(_mutate(data, edits, cut))
    parses_or_refuses(lambda: verify_bundle(path, world.trusted, NOW, ecosystems=ECOSYSTEMS))


# --- what fuzzing found, kept as regression tests -----------------------------------------------------------
DEEP = 200_000
HOSTILE_MANIFESTS = [
    b"[" * DEEP, b'{"a":' * DEEP, b"\xff\xfe", b"[]", b'{"format": ' + b"[" * DEEP + b"]" * DEEP + b"}"
]
HOSTILE_LOCKS = ["a = " + "[" * DEEP, "a = " + "{b = " * DEEP, "lock-version = 2\nartifacts = " + "[" * DEEP]
HOSTILE_LOCK_FIELDS = [
    ("lock-version = 2\ntargets = 5\n", "targets: must be an array of strings"),
    ('lock-version = 2\ntargets = "pypi:x"\n', "targets: must be an array of strings"),
    ("lock-version = 2\nprofile = 5\n", "profile must be a string"),
]
HOSTILE_ARCHIVES = [
    pax_header({"mtime": "1"}) * 5000 + bytes(1024),
    raw_header(b"././@PaxHeader", 1 << 30, b"x"),
    raw_header(b"big", 1 << 40) + bytes(1024),
    pax_header({"size": "99999999999999999999999"}) + raw_header(b"a", 0) + bytes(1024),
    pax_header({"size": "-1"}) + raw_header(b"a", 0) + bytes(1024),
    raw_header(b"a", 0, b"L") + bytes(1024),
    bytes(512),
    bytes(1024) + b"\x01",
]


@pytest.mark.parametrize("data", HOSTILE_MANIFESTS, ids=range(len(HOSTILE_MANIFESTS)))
def test_hostile_manifests(data: bytes) -> None:
    with pytest.raises(MirrorctlError, match=r"manifest\.json"):
        parse_manifest(data)


@pytest.mark.parametrize("text", HOSTILE_LOCKS, ids=range(len(HOSTILE_LOCKS)))
def test_hostile_locks(text: str) -> None:
    with pytest.raises(MirrorctlError, match=r"fuzz\.lock: lock is not valid TOML"):
        parse_lock(text, "fuzz.lock", legacy_paths=ECOSYSTEMS)


@pytest.mark.parametrize(("text", "match"), HOSTILE_LOCK_FIELDS, ids=range(len(HOSTILE_LOCK_FIELDS)))
def test_hostile_lock_fields(text: str, match: str) -> None:
    with pytest.raises(MirrorctlError, match=match):
        parse_lock(text, "fuzz.lock", legacy_paths=ECOSYSTEMS)


@pytest.mark.parametrize("text", HOSTILE_LOCKS, ids=range(len(HOSTILE_LOCKS)))
def test_hostile_profiles(tmp_path: Path, text: str) -> None:
    path = tmp_path / "web.toml"
    path.write_text(text)
    with pytest.raises(MirrorctlError, match=r"web\.toml: not valid TOML"):
        load_profile(path, _ECOSYSTEMS)


@pytest.mark.parametrize("data", HOSTILE_ARCHIVES, ids=range(len(HOSTILE_ARCHIVES)))
def test_hostile_archives(data: bytes) -> None:
    with pytest.raises(MirrorctlError):
        _read_everything(data)


def test_hostile_key_statement(tmp_path: Path) -> None:
    carried = {"keys/rotation-1.json": b"[" * DEEP, "keys/rotation-1.json.sig": bytes(64)}
    with pytest.raises(MirrorctlError, match="not valid JSON"):
        parse_statements(tmp_path / "b.bundle", carried)
