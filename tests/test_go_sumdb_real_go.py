"""The proof that the fixture checksum database (and so mirrorctl's note and tlog formats) is right: the real go
command verifies modules against it through a fixture proxy, refuses a record that disagrees with the zip, and
fetches no tile beyond those our client says a lock must carry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mirrorctl.ecosystems.go.sumdb.client import Evidence, SumdbClient
from mirrorctl.ecosystems.go.sumdb.passthrough import Passthrough
from tests.conftest import skip_or_fail
from tests.fixtures.fixture_server import FixtureServer, Request, Response
from tests.fixtures.go_sumdb import GoProxy, SumDB, module_zip
from tests.test_go_sumdb import _fetch

MODULE, VERSION = "example.test/Hello", "v1.0.0"


@pytest.fixture
def go() -> str:
    found = shutil.which("go")
    if found is None:
        skip_or_fail("the go command is not installed")
    assert found is not None
    return found


def _go_env(tmp: Path, url: str, key: str, modcache: str = "modcache") -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"], "HOME": str(tmp), "GOPATH": str(tmp / "gopath"),
        "GOMODCACHE": str(tmp / modcache), "GOCACHE": str(tmp / "gocache"), "GOENV": "off",
        "GOFLAGS": "-mod=mod", "GOPROXY": url, "GOSUMDB": key,
        "GONOSUMDB": "", "GONOSUMCHECK": "", "GOPRIVATE": "", "GONOPROXY": "", "GOINSECURE": "",
        "GOTOOLCHAIN": "local",
    }


def _download(
    go: str, tmp: Path, proxy: GoProxy | FixtureServer, *what: str, modcache: str = "modcache", db: SumDB | None = None
) -> subprocess.CompletedProcess[str]:
    if isinstance(proxy, FixtureServer):
        assert db is not None
        env = _go_env(tmp, proxy.url, db.verifier_key, modcache)
    else:
        env = _go_env(tmp, proxy.server.url, proxy.db.verifier_key, modcache)
    return subprocess.run([go, "mod", "download", "-json", *what], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120)


def _world(record_of: dict[str, str] | None = None) -> tuple[SumDB, GoProxy]:
    db = SumDB("sumdb.test")
    db.add_filler(300)
    proxy = GoProxy(db)
    mv = module_zip(MODULE, VERSION, {"hello.go": b"package hello\n\nfunc Hello() string { return \"hi\" }\n"})
    proxy.add(mv, record=(record_of or {}).get(MODULE))
    other = module_zip("example.test/other", "v0.2.0", {"other.go": b"package other\n"})
    proxy.add(other)
    db.add_filler(600)
    db.publish()
    return db, proxy


async def test_go_verifies_against_the_fixture_database_and_our_client_agrees(go: str, tmp_path: Path) -> None:
    db, proxy = _world()
    mv = proxy.modules[(MODULE, VERSION)]
    with proxy.server:
        done = _download(go, tmp_path, proxy, f"{MODULE}@{VERSION}", "example.test/other@v0.2.0")
    assert done.returncode == 0, done.stderr
    reported = {o["Path"]: o for o in map(json.loads, done.stdout.replace("}\n{", "}\x00{").split("\x00"))}
    assert reported[MODULE]["Sum"] == mv.h1 and reported[MODULE]["GoModSum"] == mv.gomod_h1
    asked = [p for p in proxy.server.requests if p.startswith("/sumdb/")]
    assert "/sumdb/sumdb.test/supported" in asked
    assert "/sumdb/sumdb.test/lookup/example.test/!hello@v1.0.0" in asked
    go_tiles = {p.removeprefix("/sumdb/sumdb.test/") for p in asked if "/tile/" in p}
    assert go_tiles and not any("/data/" in t for t in go_tiles)

    client = SumdbClient(db.verifier_key, _fetch(db))
    for module, version in [(MODULE, VERSION), ("example.test/other", "v0.2.0")]:
        got = proxy.modules[(module, version)]
        await client.check(module, version, h1=got.h1, gomod_h1=got.gomod_h1)
    evidence = await client.evidence()
    assert go_tiles <= set(evidence.tiles), "a lock must carry every tile go asks for"


def test_go_refuses_a_record_that_disagrees_with_the_zip(go: str, tmp_path: Path) -> None:
    wrong = f"{MODULE} {VERSION} h1:{'A' * 43}=\n"
    db, proxy = _world()
    mv = proxy.modules[(MODULE, VERSION)]
    db.records[300] = (MODULE, VERSION, wrong + f"{MODULE} {VERSION}/go.mod {mv.gomod_h1}\n")
    db.publish()
    with proxy.server:
        done = _download(go, tmp_path, proxy, f"{MODULE}@{VERSION}")
    assert done.returncode != 0
    assert "SECURITY ERROR" in done.stdout + done.stderr and "checksum mismatch" in done.stdout + done.stderr
    assert not (tmp_path / "modcache" / "example.test" / "!hello@v1.0.0").exists()


def test_go_refuses_a_tampered_tile(go: str, tmp_path: Path) -> None:
    db, proxy = _world()
    db.tampered_tiles.add((0, 1))
    with proxy.server:
        done = _download(go, tmp_path, proxy, f"{MODULE}@{VERSION}")
    assert done.returncode != 0
    assert "inconsistent" in done.stdout + done.stderr or "SECURITY" in done.stdout + done.stderr


def _inside(proxy: GoProxy, evidence: Evidence) -> FixtureServer:
    """Design (a): a mirror that serves only what a lock carried, the public database's data passed through."""
    sumdb = Passthrough(evidence)
    base = f"/sumdb/{proxy.db.name}/"

    def answer(req: Request) -> Response:
        if req.path.startswith(base):
            body = sumdb.answer(req.path.removeprefix(base))
            return Response(404, b"not found\n") if body is None else Response(body=body)
        return proxy._answer(req)

    server = FixtureServer(name="fixture inside mirror")
    server.route("/", answer, prefix=True)
    return server


async def test_go_verifies_inside_from_the_evidence_alone_across_a_newer_head(go: str, tmp_path: Path) -> None:
    db, proxy = _world()
    first = SumdbClient(db.verifier_key, _fetch(db))
    await first.lookup(MODULE, VERSION)
    evidence1 = await first.evidence()
    with _inside(proxy, evidence1) as inside:
        done = _download(go, tmp_path, inside, f"{MODULE}@{VERSION}", db=db)
    assert done.returncode == 0, done.stderr
    cached = (tmp_path / "gopath" / "pkg" / "sumdb" / "sumdb.test" / "latest").read_bytes()
    assert cached == evidence1.head  # the workspace now holds the older head

    db.add_filler(5000)  # far from the older head's right edge, so its proof needs other tiles
    later = proxy.add(module_zip("example.test/later", "v1.2.0", {"l.go": b"package later\n"}))
    db.add_filler(70000 - len(db.records))  # the next head is two tile levels bigger
    db.publish()
    second = SumdbClient(db.verifier_key, _fetch(db), known=evidence1.tree)
    for module, version in [(MODULE, VERSION), (later.module, later.version)]:
        await second.lookup(module, version)
    evidence2 = await second.evidence()
    assert evidence2.tree.size == 70000
    with _inside(proxy, evidence2) as inside:
        done = _download(go, tmp_path, inside, f"{later.module}@{later.version}", modcache="modcache2", db=db)
        asked = {p for p in inside.requests if "/tile/" in p}
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "gopath" / "pkg" / "sumdb" / "sumdb.test" / "latest").read_bytes() == evidence2.head
    # go asks for tiles at its cached head's widths too: answered as prefixes of the carried wider ones
    assert all(Passthrough(evidence2).answer(p.removeprefix("/sumdb/sumdb.test/")) is not None for p in asked)
    assert any(p.removeprefix("/sumdb/sumdb.test/") not in evidence2.tiles for p in asked)

    # without the consistency tiles the workspace that cached the older head cannot move on: they are needed
    bare = SumdbClient(db.verifier_key, _fetch(db))
    for module, version in [(MODULE, VERSION), (later.module, later.version)]:
        await bare.lookup(module, version)
    thin = await bare.evidence()
    assert set(thin.tiles) < set(evidence2.tiles)
    second_ws = tmp_path / "fresh"
    second_ws.mkdir()
    with _inside(proxy, thin) as inside:  # a fresh workspace needs no consistency tiles
        assert _download(go, second_ws, inside, f"{later.module}@{later.version}", db=db).returncode == 0
    (tmp_path / "gopath" / "pkg" / "sumdb" / "sumdb.test" / "latest").write_bytes(evidence1.head)
    with _inside(proxy, thin) as inside:  # the one that cached the older head does
        done = _download(go, tmp_path, inside, f"{later.module}@{later.version}", modcache="modcache3", db=db)
    assert done.returncode != 0, done.stderr
