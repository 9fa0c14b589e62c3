"""`export_bundle`: layout, manifest, SBOM, sequence numbers, and refusals that leave no file behind."""

from __future__ import annotations

import json
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.export import export_bundle, last_exported_sequence
from mirrorctl.crossing.bundle.manifest import parse_manifest
from mirrorctl.crossing.bundle.sbom import purl
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import IntegrityError, UserError
from tests.fixtures.bundles import ECOSYSTEMS, NOW, make_world, read_members

ADAPTERS = load_ecosystems()  # the installed adapters, as the runtime loads them


def test_layout_and_manifest(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    bundle = world.export(expires=NOW + timedelta(days=3))
    with tarfile.open(bundle, "r:") as tar:
        names = tar.getnames()
        members = tar.getmembers()
    blobs = sorted({sha for a in world.artifacts for sha, _, _ in a.blobs()})
    assert names == [
        "manifest.json",
        "manifest.json.sig",
        "sbom.cdx.json",
        "locks/data.lock",
        "locks/web.lock",
        *(f"blobs/sha256/{b}" for b in blobs),
    ]
    assert all(m.isreg() and m.uid == 0 and m.uname == "" and m.mode == 0o644 for m in members)

    raw = read_members(bundle)[0][1]
    manifest = parse_manifest(raw)
    assert raw == manifest.to_bytes()  # canonical: re-serializing gives the signed bytes
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)
    assert doc["format"] == "mirrorctl-bundle" and doc["format-version"] == 2 and doc["kind"] == "full"
    assert doc["lineage"] == world.key.key_id and doc["sequence"] == 1
    assert doc["created"] == "2026-03-01T12:00:00Z" and doc["expires"] == "2026-03-04T12:00:00Z"
    assert set(doc["profiles"]) == {"web", "data"}
    assert doc["profiles"]["web"]["lock"] == "locks/web.lock"
    assert [f["path"] for f in doc["files"]] == names[2:]
    web_bytes = dict((name, data) for name, _, data in world.locks)["web"]
    assert next(m for m in read_members(bundle) if m[0].name == "locks/web.lock")[1] == web_bytes


def test_sbom_has_a_component_per_artifact_with_purl(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    bundle = world.export()
    sbom = json.loads(next(d for m, d in read_members(bundle) if m.name == "sbom.cdx.json"))
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    manifest = parse_manifest(read_members(bundle)[0][1])
    assert sbom["serialNumber"] == f"urn:uuid:{manifest.bundle_id}"
    purls = {c["purl"] for c in sbom["components"]}
    assert purls == {purl(a, ADAPTERS) for a in world.artifacts}
    assert "pkg:pypi/alpha@1.0?file_name=alpha-1.0-py3-none-any.whl" in purls
    comp = next(c for c in sbom["components"] if c["name"] == "beta")
    assert comp["hashes"] == [{"alg": "SHA-256", "content": world.artifacts[1].sha256}]


def test_sbom_deterministic_apart_from_serial_and_timestamp(tmp_path: Path) -> None:
    world = make_world(tmp_path)

    def sbom(name: str) -> dict:
        doc = json.loads(next(d for m, d in read_members(world.export(name)) if m.name == "sbom.cdx.json"))
        doc.pop("serialNumber")
        doc["metadata"].pop("timestamp")
        doc["metadata"]["component"].pop("bom-ref")
        return doc

    assert sbom("one.bundle") == sbom("two.bundle")


def test_sequence_defaults_to_last_plus_one_and_can_be_set(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    seq = lambda p: parse_manifest(read_members(p)[0][1]).sequence  # noqa: E731
    assert seq(world.export("1.bundle")) == 1
    assert seq(world.export("2.bundle")) == 2
    assert seq(world.export("9.bundle", sequence=9)) == 9
    assert seq(world.export("10.bundle")) == 10
    assert seq(world.export("5.bundle", sequence=5)) == 5
    assert last_exported_sequence(world.outside, world.key.key_id) == 10


def test_export_verifies(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    v = verify_bundle(world.export(), world.trusted, NOW, ecosystems=ECOSYSTEMS)
    assert set(v.locks) == {"web", "data"} and len(v.artifacts) == 3
    assert v.signer.key_id == world.key.key_id


def test_missing_blob_refused_naming_it_and_no_file_left(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    gone = world.artifacts[0]
    world.outside.blob_path(gone.sha256).unlink()
    out = tmp_path / "out.bundle"
    with pytest.raises(UserError, match=rf"1 blob\(s\) missing .*{gone.filename}") as info:
        export_bundle(world.locks, world.outside, world.key.private_path, out, now=NOW, ecosystems=ADAPTERS)
    assert info.value.exit_code == 2 and "mirrorctl snapshot" in (info.value.hint or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt", "keys", "outside", "work"]
    assert last_exported_sequence(world.outside, world.key.key_id) == 0


def test_rotten_blob_stops_export_and_leaves_no_file(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    path = world.outside.blob_path(world.artifacts[1].sha256)
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    out = tmp_path / "out.bundle"
    out.write_bytes(b"previous bundle")
    with pytest.raises(IntegrityError, match="stored blob does not match its digest"):
        export_bundle(world.locks, world.outside, world.key.private_path, out, now=NOW, ecosystems=ADAPTERS)
    assert out.read_bytes() == b"previous bundle"  # the old file under the real name is untouched
    assert not list(tmp_path.glob(".out.bundle.*"))


def test_missing_signing_key_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with pytest.raises(UserError, match=r"nokey: signing key not found"):
        export_bundle(
            world.locks, world.outside, tmp_path / "nokey", tmp_path / "x.bundle", now=NOW, ecosystems=ADAPTERS
        )
    assert not (tmp_path / "x.bundle").exists()


def test_expiry_must_be_after_creation(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with pytest.raises(UserError, match="is not after the creation time"):
        world.export(expires=NOW)
    assert not (tmp_path / "b.bundle").exists()
