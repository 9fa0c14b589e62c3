"""Chunked media: parts + index written by export; import takes them from several folders in any order, checks
each one, names a missing or damaged part, and still trusts only the signed manifest inside the stream."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.chunks import parse_size, resolve_bundle
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.errors import BundleRefused, UserError
from tests.fixtures.bundles import ECOSYSTEMS, NOW, World, fingerprint, make_world, staging_dirs

CHUNK = 4096


def _chunked(tmp_path: Path) -> tuple[World, Path, list[Path]]:
    world = make_world(tmp_path)
    world.export("web.bundle", chunk_size=CHUNK)
    index = tmp_path / "web.bundle.parts.json"
    parts = sorted(tmp_path.glob("web.bundle.part[0-9]*"))
    return world, index, parts


def test_sizes() -> None:
    assert parse_size("4G") == 4 * 1024**3 and parse_size("700M") == 700 * 1024**2
    assert parse_size("64k") == 65536 and parse_size("1GiB") == 1024**3 and parse_size("512") == 512
    for bad in ("0", "-1G", "4X", "", "G"):
        with pytest.raises(UserError, match="expected a positive size"):
            parse_size(bad)


def test_round_trip(tmp_path: Path) -> None:
    world, index, parts = _chunked(tmp_path)
    assert not (tmp_path / "web.bundle").exists() and len(parts) >= 3
    doc = json.loads(index.read_text())
    assert [p["name"] for p in doc["parts"]] == [p.name for p in parts]
    assert all(p.stat().st_size == CHUNK for p in parts[:-1]) and 0 < parts[-1].stat().st_size <= CHUNK
    whole = b"".join(p.read_bytes() for p in parts)
    assert doc["size"] == len(whole) and doc["sha256"] == hashlib.sha256(whole).hexdigest()
    # The concatenation is an ordinary bundle.
    joined = tmp_path / "joined.bundle"
    joined.write_bytes(whole)
    assert verify_bundle(joined, world.trusted, NOW, ecosystems=ECOSYSTEMS).manifest.bundle_id == doc["bundle-id"]

    source = resolve_bundle(index)
    report = import_bundle(source, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert report.view_id is not None and world.inside.current_view() is not None
    assert not list(world.inside.tmp_dir.iterdir())  # nothing was copied together


def test_parts_in_two_folders_any_order(tmp_path: Path) -> None:
    world, index, parts = _chunked(tmp_path)
    a, b = tmp_path / "media-a", tmp_path / "media-b"
    a.mkdir()
    b.mkdir()
    for i, part in enumerate(reversed(parts)):
        shutil.move(part, (a if i % 2 else b) / part.name)
    shutil.move(index, b / index.name)
    # Named by its first part (in folder a), index and other parts found through --from.
    first = a / parts[0].name if (a / parts[0].name).exists() else b / parts[0].name
    source = resolve_bundle(first, [b, a])
    assert verify_bundle(source, world.trusted, NOW, ecosystems=ECOSYSTEMS)
    # Or by the bundle's name, which does not exist as a file.
    source = resolve_bundle(tmp_path / "web.bundle", [a, b])
    import_bundle(source, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert world.inside.current_view() is not None


def test_missing_part_named(tmp_path: Path) -> None:
    world, index, parts = _chunked(tmp_path)
    a = tmp_path / "media-a"
    a.mkdir()
    parts[2].unlink()
    before = fingerprint(world.inside)
    with pytest.raises(UserError) as exc:
        resolve_bundle(index, [a])
    assert exc.value.message == (
        f"part 3 of {len(parts)} (web.bundle.part0003) missing in {tmp_path}, {a}"
    )
    assert "--from" in (exc.value.hint or "")
    assert fingerprint(world.inside) == before


def test_damaged_part_named(tmp_path: Path) -> None:
    _, index, parts = _chunked(tmp_path)
    data = bytearray(parts[1].read_bytes())
    data[100] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    named = rf"part 2 of {len(parts)} \(web\.bundle\.part0002\) in {tmp_path} is damaged"
    with pytest.raises(BundleRefused, match=named + ": sha256"):
        resolve_bundle(index)
    parts[1].write_bytes(bytes(data[:-1]))
    with pytest.raises(BundleRefused, match=named + f": {CHUNK - 1} bytes, the index says {CHUNK}"):
        resolve_bundle(index)


def _forge(index: Path, parts: list[Path], number: int, edit: int) -> None:
    """Change byte ``edit`` of part ``number`` and fix the index up to match, as someone handling the media could."""
    data = bytearray(parts[number - 1].read_bytes())
    data[edit] ^= 0x01
    parts[number - 1].write_bytes(bytes(data))
    doc = json.loads(index.read_text())
    doc["parts"][number - 1]["sha256"] = hashlib.sha256(data).hexdigest()
    doc["sha256"] = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    index.write_text(json.dumps(doc))


def test_forged_index_still_refused_by_the_signed_manifest(tmp_path: Path) -> None:
    world, index, parts = _chunked(tmp_path)
    _forge(index, parts, 1, 600)  # inside manifest.json (its data starts at byte 512)
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=r"signature of manifest\.json does not verify"):
        import_bundle(resolve_bundle(index), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)


def test_forged_blob_part_refused_naming_the_member(tmp_path: Path) -> None:
    world, index, parts = _chunked(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        last_blob = [m for m in tar.getmembers() if m.name.startswith("blobs/")][-1]
    where = last_blob.offset_data + last_blob.size // 2  # inside the last blob, whichever part holds it
    _forge(index, parts, where // CHUNK + 1, where % CHUNK)
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=r"blobs/sha256/[0-9a-f]{64} does not match its sha256 in the manifest"):
        import_bundle(resolve_bundle(index), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert fingerprint(world.inside) == before and not staging_dirs(world.inside)


def test_index_naming_a_path_refused(tmp_path: Path) -> None:
    _, index, _ = _chunked(tmp_path)
    doc = json.loads(index.read_text())
    doc["parts"][0]["name"] = "../../etc/passwd"
    index.write_text(json.dumps(doc))
    with pytest.raises(BundleRefused, match=r"parts\[0\] must be"):
        resolve_bundle(index)


def test_chunked_export_failure_leaves_nothing(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    blob = world.outside.blob_path(world.artifacts[2].sha256)
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF  # same size: found only while the export re-hashes it, after parts were written
    blob.write_bytes(bytes(data))
    with pytest.raises(Exception, match="does not match its digest"):
        world.export("web.bundle", chunk_size=CHUNK)
    assert not list(tmp_path.glob("*web.bundle*"))
