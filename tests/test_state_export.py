"""`state export` inside: the blobs the store holds and each lineage's last sequence, compact, optionally signed;
`read_state` outside: a damaged or edited file is refused, an unknown signer only reported."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.state import export_state, read_state
from mirrorctl.crossing.signing import generate_key, load_public_key
from mirrorctl.errors import UserError
from tests.fixtures.bundles import ECOSYSTEMS, NOW, World, fingerprint, make_world, read_members


def _imported(tmp_path: Path) -> tuple[World, str]:
    world = make_world(tmp_path)
    bundle = world.export("full.bundle")
    report = import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    return world, report.bundle_id


def test_state_lists_served_blobs_and_lineage(tmp_path: Path) -> None:
    world, bundle_id = _imported(tmp_path)
    out = tmp_path / "inside.state"
    before = fingerprint(world.inside)
    written = export_state(world.inside, out, signing_key=None, now=NOW)
    assert fingerprint(world.inside) == before  # reading the store changes nothing in it

    state = read_state(out)
    assert state.digest == written.digest and state.signer is None
    expected = {sha: size for a in world.artifacts for sha, size, _ in a.blobs()}
    # The SBOM and locks are blobs of the view too (a delta's line deltas are rebuilt from them).
    files = {m.name: b for m, b in read_members(tmp_path / "full.bundle")}
    small = {n: b for n, b in files.items() if n == "sbom.cdx.json" or n.startswith("locks/")}
    expected.update({hashlib.sha256(b).hexdigest(): len(b) for b in small.values()})
    assert dict(state.blobs) == expected
    assert dict(state.bases) == small  # the current view's copies, as text, for the outside to diff against
    rec = state.lineages[world.key.key_id]
    assert (rec.sequence, rec.bundle_id) == (1, bundle_id)

    doc = json.loads(gzip.decompress(out.read_bytes()))
    assert doc["payload"]["blobs"] == sorted(doc["payload"]["blobs"])  # sorted, compact pairs
    # Deterministic: the same store at the same time gives the same bytes.
    again = tmp_path / "again.state"
    export_state(world.inside, again, signing_key=None, now=NOW)
    assert again.read_bytes() == out.read_bytes()


def test_missing_or_short_blob_is_not_listed(tmp_path: Path) -> None:
    world, _ = _imported(tmp_path)
    gone, short = world.artifacts[0], world.artifacts[1]
    world.inside.blob_path(gone.sha256).unlink()
    world.inside.blob_path(short.sha256).write_bytes(b"cut")
    state = export_state(world.inside, tmp_path / "s.state", signing_key=None, now=NOW)
    assert gone.sha256 not in state.blobs and short.sha256 not in state.blobs
    assert world.artifacts[2].sha256 in state.blobs


def test_empty_store(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    state = export_state(world.inside, tmp_path / "s.state", signing_key=None, now=NOW)
    assert not state.blobs and not state.lineages


def test_signed_state(tmp_path: Path) -> None:
    world, _ = _imported(tmp_path)
    inside_key = generate_key(tmp_path / "keys" / "inside.key")
    out = tmp_path / "inside.state"
    export_state(world.inside, out, signing_key=inside_key.private_path, now=NOW)
    assert read_state(out).signer == inside_key.key_id and not read_state(out).signer_trusted
    assert read_state(out, [load_public_key(inside_key.public_path)]).signer_trusted

    # A signature over other bytes (here: the payload edited and its digest fixed up) is refused.
    doc = json.loads(gzip.decompress(out.read_bytes()))
    doc["payload"]["blobs"] = doc["payload"]["blobs"][1:]
    import hashlib

    from mirrorctl.crossing.bundle.state import _canonical

    doc["payload-sha256"] = hashlib.sha256(_canonical(doc["payload"])).hexdigest()
    out.write_bytes(gzip.compress(_canonical(doc)))
    with pytest.raises(UserError, match="signature does not verify"):
        read_state(out)


def test_edited_or_damaged_state_refused(tmp_path: Path) -> None:
    world, _ = _imported(tmp_path)
    out = tmp_path / "inside.state"
    export_state(world.inside, out, signing_key=None, now=NOW)
    doc = json.loads(gzip.decompress(out.read_bytes()))
    doc["payload"]["lineages"][world.key.key_id]["sequence"] = 7
    out.write_bytes(gzip.compress(json.dumps(doc).encode()))
    with pytest.raises(UserError, match="does not match its payload-sha256"):
        read_state(out)
    out.write_bytes(out.read_bytes()[:20])
    with pytest.raises(UserError, match="not a mirrorctl state file"):
        read_state(out)
    with pytest.raises(UserError, match="state file not found"):
        read_state(tmp_path / "nope.state")


def test_export_refuses_a_directory_and_leaves_nothing(tmp_path: Path) -> None:
    world, _ = _imported(tmp_path)
    with pytest.raises(UserError, match="is a directory"):
        export_state(world.inside, tmp_path, signing_key=None, now=NOW)
    with pytest.raises(UserError, match="directory does not exist"):
        export_state(world.inside, tmp_path / "no" / "s.state", signing_key=None, now=NOW)
    assert not list(tmp_path.glob("*.state")) and not list(tmp_path.glob(".*.tmp"))
