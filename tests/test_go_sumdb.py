"""The Go checksum database pieces: signed notes, the transparent log's tiles and proofs, and the client against
the fixture database (tests/fixtures/go_sumdb.py), its refusals included."""

from __future__ import annotations

import httpx
import pytest

from mirrorctl.ecosystems.go.sumdb import note, tlog
from mirrorctl.ecosystems.go.sumdb.client import MAX_ANSWER, Fetch, SumdbClient, http_fetch, lookup_body, lookup_path
from mirrorctl.ecosystems.go.sumdb.passthrough import Passthrough
from mirrorctl.errors import ChecksumMismatch, IntegrityError, NetworkError, UserError
from mirrorctl.net import RetryPolicy
from tests.fixtures.go_sumdb import GoProxy, SumDB, module_zip

# The example of golang.org/x/mod sumdb/note's documentation: our key hash rule, key parsing and signature
# format must give its signature byte for byte (ed25519 signatures are deterministic).
PN_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PN_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PN_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PN_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"


# -- notes -----------------------------------------------------------------------------------------------------


def test_note_matches_the_reference_example() -> None:
    signer = note.Signer.parse(PN_SIGNER)
    assert note.sign(PN_TEXT, signer).decode() == PN_TEXT + "\n" + PN_SIG
    opened = note.open_note((PN_TEXT + "\n" + PN_SIG).encode(), [note.Verifier.parse(PN_VERIFIER)])
    assert opened.text == PN_TEXT and [s.name for s in opened.verified] == ["PeterNeumann"]
    assert signer.verifier().text() == PN_VERIFIER


def test_generated_keys_round_trip() -> None:
    signer_text, verifier_text = note.generate_key("sumdb.test")
    signer, verifier = note.Signer.parse(signer_text), note.Verifier.parse(verifier_text)
    assert signer.verifier() == verifier and verifier.text() == verifier_text
    assert note.open_note(note.sign("a\n", signer), [verifier]).text == "a\n"


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid verifier hash c74f20a4"),
        ("PeterNeumann+c74f20a3", r"is not <name>\+<hash>\+<key>"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", r"is not <name>\+<hash>\+<key>"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lower-case hex digits"),
        ("PeterNeumann+c74f20a3+AhpQ", "not an ed25519 key"),
        ("PeterNeumann+c74f20a3+!!!!", "not base64"),
    ],
)
def test_bad_verifier_keys_are_refused(key: str, said: str) -> None:
    with pytest.raises(note.MalformedNote, match=said):
        note.Verifier.parse(key)


def test_signer_key_errors_never_quote_the_key() -> None:
    with pytest.raises(note.MalformedNote) as err:
        note.Signer.parse(PN_SIGNER.replace("c74f20a3", "c74f20a4"))
    assert "invalid signer hash" in str(err.value) and "AYEKF" not in str(err.value)


def test_an_altered_note_is_a_bad_signature() -> None:
    data = (PN_TEXT.replace("answer", "answers") + "\n" + PN_SIG).encode()
    with pytest.raises(note.BadSignature, match="SECURITY: the signature by PeterNeumann does not verify"):
        note.open_note(data, [note.Verifier.parse(PN_VERIFIER)])


def test_a_note_by_another_key_names_the_key() -> None:
    _, other = note.generate_key("other.test")
    with pytest.raises(note.UnknownKey, match=r"signed by PeterNeumann\)") as err:
        note.open_note((PN_TEXT + "\n" + PN_SIG).encode(), [note.Verifier.parse(other)])
    assert err.value.names == ("PeterNeumann",)
    assert isinstance(err.value, IntegrityError)


def test_an_unknown_signature_beside_a_known_one_is_kept_unverified() -> None:
    signer_text, _ = note.generate_key("other.test")
    data = note.sign(PN_TEXT, note.Signer.parse(PN_SIGNER), note.Signer.parse(signer_text))
    opened = note.open_note(data, [note.Verifier.parse(PN_VERIFIER)])
    assert [s.name for s in opened.verified] == ["PeterNeumann"]
    assert [s.name for s in opened.unverified] == ["other.test"]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (PN_TEXT.encode(), "no blank line"),
        (PN_TEXT.encode() + b"\n", "no signature"),
        (b"\xff\n\n" + PN_SIG.encode(), "not UTF-8"),
        ((PN_TEXT + "\n" + PN_SIG.replace("— ", "- ")).encode(), "does not start with"),
        ((PN_TEXT + "\n— PeterNeumann AAAA\n").encode(), "too short"),
        ((PN_TEXT + "\n— PeterNeumann\n").encode(), "is not '— <name> <signature>'"),
        (("a\tb\n\n" + PN_SIG).encode(), "control character"),
        ((PN_TEXT + "\n" + PN_SIG * 101).encode(), "101 signatures"),
    ],
)
def test_malformed_notes_are_refused(data: bytes, said: str) -> None:
    with pytest.raises(note.MalformedNote, match=said):
        note.open_note(data, [note.Verifier.parse(PN_VERIFIER)])


# -- the log ---------------------------------------------------------------------------------------------------


def test_stored_hash_indexes_round_trip_and_count() -> None:
    assert [tlog.stored_hash_index(0, n) for n in range(5)] == [0, 1, 3, 4, 7]
    assert tlog.stored_hash_index(1, 0) == 2 and tlog.stored_hash_index(2, 0) == 6
    for index in range(5000):
        assert tlog.stored_hash_index(*tlog.split_stored_hash_index(index)) == index
    assert [tlog.stored_hash_count(n) for n in range(1, 6)] == [1, 3, 4, 7, 8]


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (tlog.Tile(8, 0, 0, 256), "tile/8/0/000"),
        (tlog.Tile(8, 0, 5, 17), "tile/8/0/005.p/17"),
        (tlog.Tile(8, 2, 1234067, 256), "tile/8/2/x001/x234/067"),
        (tlog.Tile(8, 1, 1000, 1), "tile/8/1/x001/000.p/1"),
    ],
)
def test_tile_paths_format_and_parse(tile: tlog.Tile, path: str) -> None:
    assert tile.path() == path and tlog.parse_tile_path(path) == tile


@pytest.mark.parametrize(
    "path", ["tile/8/0/5", "tile/8/0/x5/000", "tile/8/data/000", "tile/8/0/000.p/256", "tile/8/0/000.p/0",
             "tile/8/-1/000", "../tile/8/0/000", "tile/8/0/001/000"],
)
def test_bad_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(tlog.TlogError, match="tile path"):
        tlog.parse_tile_path(path)


def _leaves(n: int) -> list[bytes]:
    return [tlog.record_hash(f"record {i}\n".encode()) for i in range(n)]


def _tiles(leaves: list[bytes], planned: list[tlog.Tile], height: int) -> dict[tlog.Tile, bytes]:
    built = tlog.build_tiles(leaves, height)
    return {t: built[(t.level, t.number)][: t.width * tlog.HASH_SIZE] for t in planned}


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 63, 64, 65, 100, 257])
def test_inclusion_and_consistency_from_exactly_the_planned_tiles(size: int) -> None:
    height = 2  # small tiles, so a few records span several tile levels and partial tiles
    leaves = _leaves(size)
    tree = tlog.Tree(size, tlog.tree_hash(leaves))
    for index in range(size):
        planned = tlog.tiles_for(size, tlog.leaf_proof_index(0, size, index), height)
        hashes = tlog.TileHashes(tree, _tiles(leaves, planned, height), height)
        hashes.record_included(index, f"record {index}\n".encode())
        with pytest.raises(tlog.TlogError, match=f"is not record {index}"):
            hashes.record_included(index, b"another record\n")
    for old in range(1, size + 1):
        planned = tlog.tiles_for(size, tlog.tree_proof_index(0, size, old), height)
        hashes = tlog.TileHashes(tree, _tiles(leaves, planned, height), height)
        hashes.consistent_with(tlog.Tree(old, tlog.tree_hash(leaves[:old])))
        if old < size:
            forked = tlog.Tree(old, tlog.tree_hash([*_leaves(old - 1), tlog.record_hash(b"fork\n")]))
            with pytest.raises(tlog.TlogError, match=r"not a prefix|differs"):
                hashes.consistent_with(forked)


def test_every_tile_is_authenticated_even_off_the_proof() -> None:
    size, height = 100, 2
    leaves = _leaves(size)
    tree = tlog.Tree(size, tlog.tree_hash(leaves))
    planned = tlog.tiles_for(size, tlog.leaf_proof_index(0, size, 5), height)
    for victim in planned:
        tiles = _tiles(leaves, planned, height)
        tiles[victim] = bytes([tiles[victim][0] ^ 1]) + tiles[victim][1:]
        with pytest.raises(tlog.TlogError, match="inconsistent tile"):
            tlog.TileHashes(tree, tiles, height).record_included(5, b"record 5\n")


def test_tree_heads_parse_strictly() -> None:
    tree = tlog.Tree(5, bytes(range(32)))
    assert tlog.parse_tree(tree.text()) == tree
    for text in ["go.sum database tree\n5\n", tree.text() + "extra\n", tree.text().replace("5", "05", 1),
                 "other tree\n5\nAAAA\n", tree.text().replace("AAEC", "AAE")]:
        with pytest.raises(tlog.TlogError):
            tlog.parse_tree(text)


# -- the client ------------------------------------------------------------------------------------------------


def _fetch(db: SumDB, log: list[str] | None = None) -> Fetch:
    async def fetch(path: str) -> bytes:
        if log is not None:
            log.append(path)
        response = db.answer(path)
        if response.status != 200:
            raise NetworkError(f"checksum database {path}: HTTP {response.status}", status=response.status)
        return response.body

    return fetch


def _db(filler_before: int = 300, filler_after: int = 20) -> tuple[SumDB, GoProxy]:
    db = SumDB("sumdb.test")
    db.add_filler(filler_before)
    proxy = GoProxy(db)
    proxy.add(module_zip("example.test/Hello", "v1.0.0", {"hello.go": b"package hello\n"}))
    db.add_filler(filler_after)
    db.publish()
    return db, proxy


async def test_lookup_verifies_and_says_what_a_lock_carries() -> None:
    db, proxy = _db()
    mv = proxy.modules[("example.test/Hello", "v1.0.0")]
    fetched: list[str] = []
    client = SumdbClient(db.verifier_key, _fetch(db, fetched))
    assert await client.supported()
    record = await client.check(mv.module, mv.version, h1=mv.h1, gomod_h1=mv.gomod_h1)
    assert (record.id, record.h1, record.gomod_h1) == (300, mv.h1, mv.gomod_h1)
    assert fetched[:2] == ["supported", "lookup/example.test/!hello@v1.0.0"]
    assert sorted(fetched[2:]) == ["tile/8/0/001.p/65", "tile/8/1/000.p/1"]  # what go 1.26 fetched here
    evidence = await client.evidence()
    assert evidence.tree == db.tree() and evidence.records == (record,)
    assert sorted(evidence.tiles) == ["tile/8/0/001.p/65", "tile/8/1/000.p/1"]
    # design (a): the carried record paired with the carried head is a lookup answer a fresh client accepts
    carried = dict(evidence.tiles)

    async def inside(path: str) -> bytes:
        if path.startswith("tile/"):
            return carried[path]
        assert path == lookup_path(mv.module, mv.version)
        return lookup_body(record.id, record.text, evidence.head)

    assert (await SumdbClient(db.verifier_key, inside).lookup(mv.module, mv.version)).h1 == mv.h1


async def test_unsupported_database_is_false_not_an_error() -> None:
    async def missing(path: str) -> bytes:
        raise NetworkError("gone", status=404)

    assert not await SumdbClient(note.generate_key("x.test")[1], missing).supported()


async def test_a_local_hash_the_database_contradicts_is_a_security_error() -> None:
    db, proxy = _db()
    mv = proxy.modules[("example.test/Hello", "v1.0.0")]
    client = SumdbClient(db.verifier_key, _fetch(db))
    with pytest.raises(ChecksumMismatch, match=r"^SECURITY ERROR: example.test/Hello v1.0.0: checksum mismatch"):
        await client.check(mv.module, mv.version, h1="h1:" + "A" * 43 + "=")
    with pytest.raises(ChecksumMismatch, match=r"example.test/Hello v1.0.0/go.mod: checksum mismatch"):
        await client.check(mv.module, mv.version, gomod_h1="h1:" + "A" * 43 + "=")


async def test_a_forged_record_is_refused_and_not_kept() -> None:
    db, proxy = _db()
    mv = proxy.modules[("example.test/Hello", "v1.0.0")]
    db.forged[(mv.module, mv.version)] = mv.record().replace(mv.h1, "h1:" + "B" * 43 + "=")
    client = SumdbClient(db.verifier_key, _fetch(db))
    with pytest.raises(ChecksumMismatch, match=r"SECURITY ERROR: example.test/Hello v1.0.0: .*is not record 300"):
        await client.lookup(mv.module, mv.version)
    assert client.records == {}
    del db.forged[(mv.module, mv.version)]
    assert (await client.lookup(mv.module, mv.version)).h1 == mv.h1


async def test_a_head_signed_by_another_key_or_altered_is_refused() -> None:
    db, _proxy = _db()
    other = note.Signer.parse(note.generate_key("sumdb.test")[0])
    db.head_override = note.sign(db.tree().text(), other)
    client = SumdbClient(db.verifier_key, _fetch(db))
    with pytest.raises(ChecksumMismatch, match="not signed by a known key"):
        await client.lookup("example.test/Hello", "v1.0.0")
    good = note.sign(db.tree().text(), db.signer)
    db.head_override = good.replace(b"\n321\n", b"\n320\n")
    with pytest.raises(ChecksumMismatch, match=r"SECURITY: the signature by sumdb\.test does not verify"):
        await client.lookup("example.test/Hello", "v1.0.0")
    assert client.records == {} and client.tree.size == 0


async def test_a_wrong_tile_is_refused() -> None:
    db, _ = _db()
    db.tampered_tiles.add((0, 1))
    client = SumdbClient(db.verifier_key, _fetch(db))
    with pytest.raises(ChecksumMismatch, match="inconsistent tile"):
        await client.lookup("example.test/Hello", "v1.0.0")
    db.tampered_tiles.clear()
    assert (await client.lookup("example.test/Hello", "v1.0.0")).id == 300  # the bad tile was not kept


async def test_a_newer_head_must_extend_the_held_one() -> None:
    db, proxy = _db(filler_before=10, filler_after=5)
    client = SumdbClient(db.verifier_key, _fetch(db))
    old = await client.latest()
    mv = proxy.add(module_zip("example.test/later", "v1.1.0", {"a.go": b"package later\n"}))
    db.add_filler(600)
    db.publish()
    fetched: list[str] = []
    client._fetch = _fetch(db, fetched)
    assert (await client.check(mv.module, mv.version, h1=mv.h1)).id == 16
    assert client.tree == db.tree()
    evidence = await client.evidence()
    consistency = tlog.tiles_for(db.size, tlog.tree_proof_index(0, db.size, old.size))
    assert {t.path() for t in consistency} <= set(evidence.tiles)
    # a fork: a head of the same log rewritten under the earlier records
    forked = SumDB("sumdb.test")
    forked.signer = db.signer
    forked.add_filler(old.size + 50)
    forked.records[3] = ("x.test/m", "v1.0.0", "x.test/m v1.0.0 h1:forged=\n")
    forked.publish()
    client = SumdbClient(db.verifier_key, _fetch(forked), known=old)
    with pytest.raises(ChecksumMismatch, match="not a prefix of the newer head"):
        await client.latest()
    assert client.tree == old and client.head is None


async def test_an_older_head_than_the_held_one_must_be_its_prefix() -> None:
    db, _proxy = _db()
    client = SumdbClient(db.verifier_key, _fetch(db))
    await client.latest()
    newer = client.tree
    db.publish()
    db.size = 310  # a lookup answered with an older, consistent head keeps the newer one
    db.head_override = note.sign(db.tree().text(), db.signer)
    db.size = newer.size
    record = await client.lookup("example.test/Hello", "v1.0.0")
    assert record.id == 300 and client.tree == newer


async def test_http_fetch_reads_the_database_through_the_proxy() -> None:
    db, proxy = _db()
    mv = proxy.modules[("example.test/Hello", "v1.0.0")]
    with proxy.server:
        async with httpx.AsyncClient() as http:
            client = SumdbClient(db.verifier_key, http_fetch(http, proxy.server.url + "/", db.name, RetryPolicy()))
            assert await client.supported()
            assert (await client.check(mv.module, mv.version, h1=mv.h1)).id == 300
            proxy.server.fail("/sumdb/sumdb.test/latest", status=503, times=1)  # retried
            assert (await client.latest()) == db.tree()
            with pytest.raises(NetworkError) as err:
                await client.lookup("example.test/absent", "v1.0.0")
            assert err.value.status == 404
            missing = SumdbClient(db.verifier_key, http_fetch(http, proxy.server.url, "other.test", RetryPolicy()))
            assert not await missing.supported()
            db.head_override = b"x" * (MAX_ANSWER + 1)
            with pytest.raises(ChecksumMismatch, match="over 1048576 bytes"):
                await client.latest()
    assert client.tree == db.tree()


@pytest.mark.parametrize(("module", "version"), [("../../latest", "v1.0.0"), ("example.test/m", "v1/../../x"),
                                                 ("example.test/m", "v1.0.0!"), ("Example.test/m", "v1.0.0")])
async def test_a_path_outside_go_grammar_is_refused_before_any_request(module: str, version: str) -> None:
    fetched: list[str] = []
    db, _ = _db()
    client = SumdbClient(db.verifier_key, _fetch(db, fetched))
    with pytest.raises(UserError, match=r"malformed module path|invalid"):
        await client.lookup(module, version)
    assert fetched == [] and client.records == {}


async def test_passthrough_answers_from_the_evidence_only() -> None:
    db, proxy = _db()
    mv = proxy.modules[("example.test/Hello", "v1.0.0")]
    client = SumdbClient(db.verifier_key, _fetch(db))
    await client.lookup(mv.module, mv.version)
    evidence = await client.evidence()
    inside = Passthrough(evidence)
    assert inside.answer("supported") == b"" and inside.answer("latest") == evidence.head
    assert inside.answer(lookup_path(mv.module, mv.version)) == db.answer(lookup_path(mv.module, mv.version)).body
    assert inside.answer("tile/8/0/001.p/65") == evidence.tiles["tile/8/0/001.p/65"]
    assert inside.answer("tile/8/0/001.p/3") == evidence.tiles["tile/8/0/001.p/65"][: 3 * 32]
    for absent in ["tile/8/0/001", "tile/8/0/000", "tile/8/0/002.p/1", "lookup/example.test/other@v1.0.0",
                   "tile/8/data/001.p/65", "../latest", "lookup/filler.test/m1@v1.0.0"]:
        assert inside.answer(absent) is None, absent
    # a fresh client accepts what it serves
    async def served(path: str) -> bytes:
        body = inside.answer(path)
        if body is None:
            raise NetworkError("absent", status=404)
        return body

    assert (await SumdbClient(db.verifier_key, served).check(mv.module, mv.version, h1=mv.h1)).id == 300
