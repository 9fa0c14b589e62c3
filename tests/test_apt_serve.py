"""The /apt app over ASGI: indexes, by-hash, signed files, the pool with ETag/Range, 404s, missing key 503."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.ecosystems.apt.serve import make_app
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.inside.serve.app import StoreContent
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact

from .fixtures.apt_store import apt_store

BASE = "http://mirror.test/apt/"


@pytest.fixture
def served(tmp_path: Path) -> tuple[Store, list[Artifact]]:
    store, _, arts = apt_store(tmp_path / "store", tmp_path / "debs")
    return store, arts


@pytest.fixture
async def client(served: tuple[Store, list[Artifact]]) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Mount("/apt", app=make_app(StoreContent(served[0])))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def test_indexes_release_and_by_hash(client: httpx.AsyncClient) -> None:
    r = await client.get("dists/bookworm/Release")
    assert r.status_code == 200 and r.headers["etag"]
    for line in r.text.split("SHA256:\n")[1].splitlines():
        digest, size, rel = line.split()
        idx = await client.get(f"dists/bookworm/{rel}")
        assert idx.status_code == 200 and hashlib.sha256(idx.content).hexdigest() == digest
        assert len(idx.content) == int(size)
        by_hash = await client.get(f"dists/bookworm/{rel.rsplit('/', 1)[0]}/by-hash/SHA256/{digest}")
        assert by_hash.content == idx.content and "immutable" in by_hash.headers["cache-control"]
    again = await client.get("dists/bookworm/Release", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


async def test_signed_files_need_a_key(served: tuple[Store, list[Artifact]], client: httpx.AsyncClient) -> None:
    r = await client.get("dists/bookworm/InRelease")
    assert r.status_code == 503 and "mirrorctl archive-key generate" in r.text
    assert (await client.get("archive-keyring.gpg")).status_code == 503
    ArchiveKey(served[0].root / "keys").generate()
    r = await client.get("dists/bookworm/InRelease")
    assert r.status_code == 200 and r.text.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    assert (await client.get("dists/bookworm/Release.gpg")).text.startswith("-----BEGIN PGP SIGNATURE-----")
    assert (await client.get("archive-keyring.asc")).text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


async def test_pool_streams_the_blob_with_etag_and_range(
    served: tuple[Store, list[Artifact]], client: httpx.AsyncClient
) -> None:
    a = next(x for x in served[1] if x.name == "mctl-app" and x.attrs["architecture"] == "amd64")
    r = await client.get(str(a.attrs["pool"]))
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == a.sha256
    assert r.headers["etag"] == f'"{a.sha256}"'
    part = await client.get(str(a.attrs["pool"]), headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == b"!<arch>\n"
    cached = await client.get(str(a.attrs["pool"]), headers={"If-None-Match": f'"{a.sha256}"'})
    assert cached.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "dists/bookworm/main/binary-i386/Packages",
        "dists/trixie/InRelease",
        "dists/bookworm/main/binary-amd64/by-hash/SHA256/" + "0" * 64,
        "pool/main/c/curl/curl_7.88.1-10_amd64.deb",
        "pool/../keys/apt/keys.json",
        "",
    ],
)
async def test_anything_else_is_a_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_nothing_served_is_a_404(tmp_path: Path) -> None:
    app = Starlette(routes=[Mount("/apt", app=make_app(StoreContent(Store(tmp_path / "empty"))))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        assert (await c.get("dists/bookworm/Release")).status_code == 404


async def test_a_new_view_is_served_at_once(served: tuple[Store, list[Artifact]], client: httpx.AsyncClient) -> None:
    from .fixtures.store_content import publish_view

    first = (await client.get("dists/bookworm/main/binary-amd64/Packages")).text
    publish_view(served[0], [a for a in served[1] if a.name != "mctl-libbase"], sequence=2)
    second = (await client.get("dists/bookworm/main/binary-amd64/Packages")).text
    assert "Package: mctl-libbase" in first and "Package: mctl-libbase" not in second


async def test_serve_apt_settings_from_mirrorctl_toml_reach_the_release(
    served: tuple[Store, list[Artifact]], tmp_path: Path
) -> None:
    from datetime import timedelta

    from mirrorctl.config import load_settings
    from mirrorctl.ecosystems.apt import AptEcosystem
    from mirrorctl.ecosystems.apt.settings import ReleaseOptions
    from mirrorctl.inside.serve.app import create_app

    config = tmp_path / "mirrorctl.toml"
    config.write_text('[serve]\nport = 8090\n\n[serve.apt]\norigin = "ACME"\nlabel = "ACME inside"\nvalid-days = 7\n')
    settings = load_settings(config, ecosystems=load_ecosystems())
    # Checked and parsed by the apt adapter when mirrorctl.toml is read.
    assert settings.serve_port == 8090 and settings.serve_options == {
        "apt": ReleaseOptions("ACME", "ACME inside", valid_until=timedelta(days=7))
    }
    app = create_app(served[0], {"apt": AptEcosystem()}, options=settings.serve_options)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        release = (await c.get("dists/bookworm/Release")).text
    assert "Origin: ACME\n" in release and "Label: ACME inside\n" in release and "Valid-Until: " in release
    plain = create_app(served[0], {"apt": AptEcosystem()})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url=BASE) as c:
        assert "Valid-Until" not in (await c.get("dists/bookworm/Release")).text  # only when configured


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("valid-days = 0", "serve.apt.valid-days must be a whole number of days >= 1"),
        ('valid-days = "7d"', "serve.apt.valid-days must be a whole number of days >= 1"),
        ('origin = ""', "serve.apt.origin must be a one-line text"),
        ("valid-until = 7", "serve.apt.valid-until is not a setting"),
    ],
)
def test_bad_serve_apt_settings_stop_serve_at_start(
    served: tuple[Store, list[Artifact]], tmp_path: Path, table: str, message: str
) -> None:
    from typer.testing import CliRunner

    from mirrorctl.cli.app import app

    config = tmp_path / "mirrorctl.toml"
    config.write_text(f'[store]\npath = "{served[0].root}"\n\n[serve.apt]\n{table}\n')
    done = CliRunner().invoke(app, ["--config", str(config), "serve", "--port", "0"])
    assert done.exit_code == 2, done.output
    assert message in done.output
