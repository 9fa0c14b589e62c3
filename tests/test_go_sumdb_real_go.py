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

from mirrorctl.ecosystems.go.sumdb.client import SumdbClient
from tests.conftest import skip_or_fail
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


def _go_env(tmp: Path, proxy: GoProxy) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"], "HOME": str(tmp), "GOPATH": str(tmp / "gopath"),
        "GOMODCACHE": str(tmp / "modcache"), "GOCACHE": str(tmp / "gocache"), "GOENV": "off",
        "GOFLAGS": "-mod=mod", "GOPROXY": proxy.server.url, "GOSUMDB": proxy.db.verifier_key,
        "GONOSUMDB": "", "GONOSUMCHECK": "", "GOPRIVATE": "", "GONOPROXY": "", "GOINSECURE": "",
        "GOTOOLCHAIN": "local",
    }


def _download(go: str, tmp: Path, proxy: GoProxy, *what: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([go, "mod", "download", "-json", *what], cwd=tmp, env=_go_env(tmp, proxy),
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
