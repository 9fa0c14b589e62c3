"""The corpus of bad bundles: each one refused with a message naming the problem, and afterwards the inside
serves and remembers exactly what it did before (byte-identical), no staging is left, the canary outside the
store is untouched, and the bundle file itself is unchanged."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle import importer as importer_mod
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.crossing.bundle.verify import verify_bundle
from mirrorctl.crossing.signing import generate_key, load_public_key
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import BundleRefused, MirrorctlError, UserError
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import (
    ECOSYSTEMS,
    NOW,
    Member,
    World,
    file_member,
    fingerprint,
    make_lock,
    make_world,
    read_members,
    resign,
    sha256_of,
    special_member,
    staging_dirs,
    write_members,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """An inside that already serves bundle 1; the attacks are built from a valid bundle 2."""
    w = make_world(tmp_path)
    import_bundle(w.export("first.bundle"), w.inside, w.trusted, ECOSYSTEMS, now=NOW)
    yield w


@pytest.fixture
def members(world: World) -> list[Member]:
    return read_members(world.export("second.bundle"))


def refused(
    world: World,
    bundle: Path,
    match: str,
    exc: type[MirrorctlError] = BundleRefused,
    *,
    verify_too: bool = True,
) -> str:
    before = fingerprint(world.inside)
    canary = world.canary.read_bytes()
    bundle_sha = sha256_of(bundle)
    with pytest.raises(exc, match=match) as info:
        import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert fingerprint(world.inside) == before
    assert staging_dirs(world.inside) == []
    assert world.canary.read_bytes() == canary
    assert sha256_of(bundle) == bundle_sha
    if not verify_too:  # a refusal of the import step itself (disk space): verify writes nothing to refuse
        return info.value.message
    # `bundle verify` refuses it the same way, writing nothing.
    with pytest.raises(exc, match=match):
        verify_bundle(bundle, world.trusted, NOW, ecosystems=ECOSYSTEMS)
    assert fingerprint(world.inside) == before
    return info.value.message


def craft(world: World, members: list[Member], name: str = "bad.bundle") -> Path:
    return write_members(world.root / name, members)


# --- authenticity -------------------------------------------------------------------------------------------
def test_unsigned_bundle(world: World, members: list[Member]) -> None:
    bad = craft(world, [members[0], *members[2:]])
    refused(world, bad, r"bundle is unsigned \(manifest.json.sig does not follow manifest.json\)")


def test_unknown_key(world: World) -> None:
    other = generate_key(world.root / "keys" / "other.key")
    world.key = other
    bad = world.export("other.bundle")
    world.key = replace(
        other, public_path=world.root / "keys" / "mirrorctl.key.pub"
    )  # trust stays the old key
    msg = refused(world, bad, rf"signed by unknown key {other.key_id}")
    assert load_public_key(world.root / "keys" / "mirrorctl.key.pub").key_id in msg


def test_manifest_edited_after_signing(world: World, members: list[Member]) -> None:
    raw = members[0][1].replace(b'"sequence":2', b'"sequence":7')
    assert raw != members[0][1]
    bad = craft(world, [file_member("manifest.json", raw), *members[1:]])
    refused(world, bad, "signature of manifest.json does not verify with any trusted key")


def test_signature_of_another_manifest(world: World, members: list[Member]) -> None:
    first = read_members(world.root / "first.bundle")
    bad = craft(world, [members[0], first[1], *members[2:]])
    refused(world, bad, "does not verify with any trusted key")


def test_no_trusted_keys_is_a_user_error(world: World, members: list[Member]) -> None:
    bundle = world.root / "second.bundle"
    before = fingerprint(world.inside)
    with pytest.raises(UserError, match="no trusted keys configured") as info:
        import_bundle(bundle, world.inside, [], ECOSYSTEMS, now=NOW)
    assert info.value.exit_code == 2 and "[trust] keys" in (info.value.hint or "")
    assert fingerprint(world.inside) == before


def test_not_a_tar_and_wrong_first_member(world: World, members: list[Member]) -> None:
    junk = world.root / "junk.bundle"
    junk.write_bytes(b"\x89PNG" + b"x" * 2000)
    refused(world, junk, "not an \\(uncompressed\\) tar archive")
    bad = craft(world, [members[2], *members[:2], *members[3:]])
    refused(world, bad, "the first member must be manifest.json, found 'sbom.cdx.json'")


# --- every byte accounted for -------------------------------------------------------------------------------
def _blob_index(members: list[Member]) -> int:
    return next(i for i, (m, _) in enumerate(members) if m.name.startswith("blobs/"))


def test_flipped_byte_in_a_blob(world: World, members: list[Member]) -> None:
    i = _blob_index(members)
    info, data = members[i]
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    members[i] = (info, bytes(flipped))
    refused(world, craft(world, members), rf"{info.name} does not match its sha256 in the manifest")


def test_truncated_blob(world: World, members: list[Member]) -> None:
    i = _blob_index(members)
    info, data = members[i]
    members[i] = file_member(info.name, data[:-10])
    refused(
        world, craft(world, members), rf"{info.name} is {len(data) - 10} bytes, the manifest says {len(data)}"
    )


def test_truncated_bundle_file(world: World, members: list[Member]) -> None:
    good = world.root / "second.bundle"
    cut = world.root / "cut.bundle"
    data = good.read_bytes()
    last = read_members(good)[-1][0]
    cut.write_bytes(data[: last.offset_data + last.size // 2])
    refused(world, cut, f"{last.name} is truncated")


def test_blob_longer_than_declared(world: World, members: list[Member]) -> None:
    i = _blob_index(members)
    info, data = members[i]
    members[i] = file_member(info.name, data + b"\0" * 4096)
    refused(
        world,
        craft(world, members),
        rf"{info.name} is {len(data) + 4096} bytes, the manifest says {len(data)}",
    )


def test_deleted_blob_member(world: World, members: list[Member]) -> None:
    i = _blob_index(members)
    name = members[i][0].name
    del members[i]
    refused(world, craft(world, members), rf"listed member\(s\) missing: {name}")


def test_extra_unlisted_member(world: World, members: list[Member]) -> None:
    extra = b"not listed"
    members.append(file_member(f"blobs/sha256/{hashlib.sha256(extra).hexdigest()}", extra))
    refused(
        world, craft(world, members), "member blobs/sha256/[0-9a-f]{64} is not listed in the signed manifest"
    )


def test_extra_file_with_another_name(world: World, members: list[Member]) -> None:
    members.insert(3, file_member("README.txt", b"hello"))
    refused(world, craft(world, members), "member README.txt is not listed in the signed manifest")


def test_duplicate_member(world: World, members: list[Member]) -> None:
    i = _blob_index(members)
    members.insert(i + 1, members[i])
    refused(world, craft(world, members), rf"member {members[i][0].name} appears twice")


def test_second_manifest_later_in_the_bundle(world: World, members: list[Member]) -> None:
    members.append(members[0])
    refused(world, craft(world, members), "member manifest.json appears twice")


# --- no write outside staging: names, links, devices --------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../canary.txt", "is absolute or leaves its folder"),
        ("blobs/../../canary.txt", "is absolute or leaves its folder"),
        ("ABSOLUTE", "is absolute or leaves its folder"),
        ("blobs\\..\\..\\canary.txt", "holds a NUL or backslash"),
        ("blobs//sha256/x", "is absolute or leaves its folder"),
        ("./sbom.cdx.json", "is absolute or leaves its folder"),
    ],
)
def test_traversal_names(world: World, members: list[Member], name: str, match: str) -> None:
    if name == "ABSOLUTE":
        name = str(world.canary)
    members.insert(2, file_member(name, b"overwritten!\n"))
    refused(world, craft(world, members), match)


def test_symlink_then_file_through_the_link(world: World, members: list[Member]) -> None:
    members[2:2] = [
        special_member("blobs", tarfile.SYMTYPE, str(world.root)),
        file_member("blobs/canary.txt", b"overwritten!\n"),
    ]
    refused(world, craft(world, members), rf"member 'blobs' is a symbolic link to '{world.root}'")


def test_hard_link(world: World, members: list[Member]) -> None:
    i = _blob_index(members)
    members[i] = special_member(members[i][0].name, tarfile.LNKTYPE, str(world.canary))
    refused(world, craft(world, members), "is a hard link to")


def test_hard_link_to_a_link(world: World, members: list[Member]) -> None:
    members[2:2] = [
        special_member("l1", tarfile.SYMTYPE, str(world.canary)),
        special_member("l2", tarfile.LNKTYPE, "l1"),
    ]
    refused(world, craft(world, members), "member 'l1' is a symbolic link")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE])
def test_devices_fifos_and_directories(world: World, members: list[Member], kind: bytes) -> None:
    members.insert(2, special_member("blobs", kind))
    refused(world, craft(world, members), "member 'blobs' is .*only regular files are allowed")


# --- the manifest itself, re-signed by the real key (a compromised exporter) --------------------------------
def test_manifest_listing_a_traversal_path_is_refused(world: World, members: list[Member]) -> None:
    def edit(doc: dict) -> None:
        doc["files"].append({"path": "../canary.txt", "size": 1, "sha256": "0" * 64})

    refused(world, craft(world, resign(members, world.key.private_path, edit)), "member name '../canary.txt'")


def test_blob_listed_under_a_digest_that_is_not_its_name(world: World, members: list[Member]) -> None:
    def edit(doc: dict) -> None:
        f = next(f for f in doc["files"] if f["path"].startswith("blobs/"))
        f["sha256"] = "f" * 64

    refused(
        world,
        craft(world, resign(members, world.key.private_path, edit)),
        "is listed with a different sha256",
    )


def test_unreferenced_blob_in_signed_manifest(world: World, members: list[Member]) -> None:
    extra = b"stowaway"
    digest = hashlib.sha256(extra).hexdigest()

    def edit(doc: dict) -> None:
        doc["files"].append({"path": f"blobs/sha256/{digest}", "size": len(extra), "sha256": digest})

    signed = resign(members, world.key.private_path, edit)
    signed.append(file_member(f"blobs/sha256/{digest}", extra))
    refused(world, craft(world, signed), f"blobs/sha256/{digest} is in the bundle but no lock refers to it")


# --- mix and match ------------------------------------------------------------------------------------------
def test_lock_swapped_in_from_another_signed_bundle(world: World, members: list[Member]) -> None:
    world.locks = [make_lock("web", world.artifacts[2:]), world.locks[1]]
    other = read_members(world.export("third.bundle"))
    swap = next(d for m, d in other if m.name == "locks/web.lock")
    i = next(i for i, (m, _) in enumerate(members) if m.name == "locks/web.lock")
    members[i] = file_member("locks/web.lock", swap)
    refused(world, craft(world, members), r"locks/web.lock (is \d+ bytes|does not match its sha256)")


# --- crafted names in a lock --------------------------------------------------------------------------------
def _crafted_bundle(world: World, **changes: str) -> Path:
    bad = replace(world.artifacts[0], **changes)  # type: ignore[arg-type]
    world.locks = [make_lock("web", [bad, *world.artifacts[1:]])]
    return world.export("crafted.bundle")


@pytest.mark.parametrize(
    "path", ["../../x.whl", "/etc/x.whl", "alpha//x.whl", "alpha\\x.whl", "alpha/./x.whl", "a\x01.whl", "a/" * 600]
)
def test_crafted_path_in_lock(world: World, path: str) -> None:
    # An Artifact with such a path cannot be made, so the lock's bytes are edited, as a compromised exporter could.
    name, lock, data = make_lock("web", world.artifacts)
    good = world.artifacts[0].path
    text = data.decode().replace(f'path = "{good}"', "path = " + json.dumps(path))
    assert text != data.decode()
    world.locks = [(name, lock, text.encode())]
    msg = refused(
        world, world.export("crafted.bundle"), r"locks/web.lock: artifacts\[\d\].path: .*unsafe artifact path"
    )
    assert repr(path) in msg and "crafted" in msg


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"name": "../evil"}, "not a valid project name"),
        ({"name": "a/b"}, "not a valid project name"),
        ({"name": "%2e%2e"}, "not a valid project name"),
        ({"version": "1.0/../../x"}, "not a valid version"),
        ({"path": "alpha/beta-1.0-py3-none-any.whl"}, "is not of project"),
    ],
)
def test_crafted_names_refused_by_the_ecosystem(world: World, changes: dict[str, str], match: str) -> None:
    refused(world, _crafted_bundle(world, **changes), match)


def test_crafted_name_refused_by_the_real_pypi_adapter(world: World) -> None:
    bundle = _crafted_bundle(world, name="../evil")
    before = fingerprint(world.inside)
    with pytest.raises(BundleRefused, match=r"locks/web.lock: artifacts\[0\].*not a valid project name"):
        import_bundle(bundle, world.inside, world.trusted, load_ecosystems(), now=NOW)
    assert fingerprint(world.inside) == before


def test_case_fold_collision(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The exporter refuses this too; pretend it was a compromised one.
    monkeypatch.setattr("mirrorctl.crossing.bundle.export.refuse_path_collisions", lambda *args: None)
    a = world.artifacts[0]
    twin = replace(world.artifacts[2], name="Alpha", version=a.version, path=a.path.replace("/alpha", "/Alpha"))
    world.locks = [make_lock("web", [a, twin])]
    refused(world, world.export("twins.bundle"), "files 'alpha/Alpha-1.0-py3-none-any.whl' .* and 'alpha/alpha-1.0-py3")


def test_unknown_ecosystem(world: World) -> None:
    refused(world, _crafted_bundle(world, ecosystem="npm"), "ecosystem 'npm' is not installed here")


# --- resources ----------------------------------------------------------------------------------------------
def test_not_enough_free_space(world: World, members: list[Member], monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(importer_mod.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    msg = refused(
        world,
        world.root / "second.bundle",
        "not enough free space to import",
        exc=UserError,
        verify_too=False,
    )
    assert "nothing was changed" in msg


def test_disk_full_while_staging(
    world: World, members: list[Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    real_open = open

    def full(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        if "x" in mode and "import-" in str(path):

            def write(_: bytes) -> int:
                raise OSError(errno.ENOSPC, "No space left on device")

            f.write = write
        return f

    monkeypatch.setattr("builtins.open", full)
    msg = refused(
        world,
        world.root / "second.bundle",
        "cannot stage the bundle .No space left",
        exc=UserError,
        verify_too=False,
    )
    assert "nothing was changed" in msg


def test_manifest_size_capped(world: World, members: list[Member], monkeypatch: pytest.MonkeyPatch) -> None:
    from mirrorctl.crossing.bundle import verify as verify_mod

    monkeypatch.setattr(verify_mod, "MAX_MANIFEST_SIZE", 100)
    refused(world, craft(world, members), "manifest.json is \\d+ bytes, more than the 100 allowed")


def test_the_good_bundle_still_imports_after_all_that(world: World, members: list[Member]) -> None:
    report = import_bundle(world.root / "second.bundle", world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert report.sequence == 2 and not report.noop
    view = Store(world.inside.root).current_view()
    assert view is not None and view.bundle_id == report.bundle_id
    assert json.loads((world.inside.root / "state" / "import.json").read_bytes())["lineages"]
