"""The ecosystem contract, checked for every registered ecosystem through the CLI as operators run it: lock,
snapshot, bundle export outside; import, workspace-config, serve inside.

A new ecosystem gets these tests by registering its entry point and adding its contract fixture
(tests/contract/kit.py says what that is); one registered without a fixture fails here, naming the file to add.

* the lock is deterministic (locked twice, from two upstreams with the same content on other ports: same bytes)
  and names no upstream host or port;
* a tampered upstream artifact fails the snapshot, naming it, and stores nothing;
* serve answers 404, at once, for what was not imported (and 200 for what was);
* the generated client config names only the mirror;
* what the adapter reports keeps its served content from working (``serve_problems``) is fixed by exactly the
  fixture's ``inside_setup`` commands, warned about by import, ``degraded`` in /healthz, left out of
  workspace-config (exit 3), and gone once the setup ran;
* the adapter's purls name no host and its version order is reflexive; its static layout (where it has one) has
  safe paths, names only the mirror and is what the embedded mirror serves;
* every locked artifact path is a safe relative path, and a hostile name from the upstream is refused before
  anything is downloaded;
* its served blobs (``served_blobs``) cover every locked file, are what the embedded mirror serves at those
  URLs, are the file tree import linked into the view, and are what ``serve --front nginx`` sends from nginx.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.ecosystems.base import Ecosystem, load_ecosystems
from mirrorctl.errors import MirrorctlError
from mirrorctl.inside.serve import StoreContent, create_app
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import read_lock
from tests.contract.kit import ContractFixture, ContractUpstream, contract_fixture, registered

MIRROR_URL = "http://mirror.contract.internal:8080"
MIRRORCTL = str(Path(sys.executable).parent / "mirrorctl")
FAST = 1.0  # seconds: a 404 is answered from the view, never after asking anything else


def cli(config: Path, *args: str) -> str:
    code, out = cli_result(config, *args)
    assert code == 0, f"mirrorctl {' '.join(args)} -> {code}\n{out}"
    return out


def cli_result(config: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["--config", str(config), *args])
    return done.exit_code, done.output


def blobs(store: Path) -> dict[str, str]:
    """Stored blob file -> sha256 of its bytes."""
    root = store / "blobs"
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def outside_site(root: Path, eco: str, up: ContractUpstream) -> Path:
    """``root/mirrorctl.toml`` (store, the upstream, a signing key) and ``root/profiles/contract.toml``."""
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    (root / "keys").mkdir(exist_ok=True)
    config = root / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "store"\n\n[upstreams.{eco}]\n{up.upstream}\n\n[signing]\nkey = "keys/mirrorctl.key"\n'
    )
    (root / "profiles" / "contract.toml").write_text(f'description = "contract suite"\n\n{up.profile}')
    return config


def record_path(record: dict[str, object]) -> str:
    """A lock record's path in its ecosystem's namespace (the suite's locks are written by this version)."""
    path = record.get("path")
    assert isinstance(path, str), f"a lock record without a path: {record}"
    return path


def record_blobs(record: dict[str, object]) -> set[str]:
    """The sha256 of a lock record's file and of its companions (PEP 658 metadata, ...)."""
    companions = record.get("companions", [])
    assert isinstance(companions, list)
    return {str(record["sha256"]), *(str(c["sha256"]) for c in companions)}


def assert_safe_path(path: str) -> None:
    """A relative POSIX path that stays in its folder on every system that stores or serves it."""
    assert isinstance(path, str) and path, path
    assert not path.startswith("/") and "\\" not in path, path
    assert not any(ord(ch) < 0x20 or ch == "\x7f" for ch in path), path
    assert all(seg not in ("", ".", "..") for seg in path.split("/")), path
    assert not re.match(r"^[A-Za-z]:", path), path


def host_marks(up: ContractUpstream) -> list[str]:
    port = up.server.url.rsplit(":", 1)[1]
    return [up.server.url, "127.0.0.1", "localhost", f":{port}"]


@dataclass
class Site:
    """One ecosystem taken through the pipeline once; each step runs when a test first needs it."""

    eco: str
    fixture: ContractFixture
    root: Path
    up: ContractUpstream
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @cached_property
    def outside(self) -> Path:
        config = outside_site(self.root / "out", self.eco, self.up)
        cli(config, "key", "generate", "--out", str(self.root / "out" / "keys" / "mirrorctl.key"))
        return config

    @property
    def lock_path(self) -> Path:
        return self.root / "out" / "profiles" / "contract.lock"

    @cached_property
    def lock_text(self) -> str:
        cli(self.outside, "lock", "contract")
        return self.lock_path.read_text()

    @cached_property
    def lock(self) -> dict[str, object]:
        return tomllib.loads(self.lock_text)

    @cached_property
    def bundle(self) -> Path:
        _ = self.lock_text
        cli(self.outside, "snapshot", "contract")
        bundle = self.root / "contract.bundle"
        cli(self.outside, "bundle", "export", "--out", str(bundle), "contract")
        return bundle

    @cached_property
    def inside(self) -> Path:
        # Short names: gpg-agent's socket (apt's archive key) lives under the store and must fit in 108 bytes.
        inside = self.root / "in"
        inside.mkdir(exist_ok=True)
        pub = self.root / "out" / "keys" / "mirrorctl.key.pub"
        config = inside / "mirrorctl.toml"
        config.write_text(f'[store]\npath = "s"\n\n[trust]\nkeys = ["{pub}"]\n')
        for command in self.up.inside_setup:
            cli(config, *command)
        cli(config, "import", str(self.bundle))
        return config

    @cached_property
    def mirror(self) -> str:
        """The URL of ``mirrorctl serve`` running over the inside store."""
        return self.serve()

    def serve(self, *args: str) -> str:
        proc = subprocess.Popen(
            [MIRRORCTL, "--config", str(self.inside), "serve", "--port", "0", "--no-access-log", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.procs.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert m, f"mirrorctl serve said: {line}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(m.group(1) + "/healthz", timeout=2)
                return m.group(1)
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mirrorctl serve did not come up"
                time.sleep(0.05)


@pytest.fixture(scope="module", params=registered())
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    eco: str = request.param
    fixture = contract_fixture(eco)
    root = tmp_path_factory.mktemp(f"c-{eco}")
    up = fixture.start(root / "up")
    s = Site(eco, fixture, root, up)
    try:
        yield s
    finally:
        for proc in s.procs:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
        up.server.stop()


def test_every_registered_ecosystem_has_a_contract_fixture() -> None:
    assert {"pypi", "npm", "apt"} <= set(registered())
    for eco in registered():
        contract_fixture(eco)


def test_a_registered_ecosystem_without_a_fixture_fails_naming_the_file_to_add() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"'go-mod' is registered .*add tests/contract/go_mod\.py"):
        contract_fixture("go-mod")


# -- the lock ------------------------------------------------------------------------------------------------


def test_lock_is_deterministic_and_host_free(site: Site) -> None:
    first = site.lock_text
    for mark in host_marks(site.up):
        assert mark not in first, f"the {site.eco} lock names the upstream ({mark!r}):\n{first}"
    assert site.lock["artifacts"], first
    site.lock_path.unlink()
    cli(site.outside, "lock", "contract")
    assert site.lock_path.read_text() == first  # resolved again from nothing: the same bytes
    # The same content on another port, into another store: still the same bytes.
    other = site.fixture.start(site.root / "up2")
    try:
        config = outside_site(site.root / "out2", site.eco, other)
        cli(config, "lock", "contract")
        assert (site.root / "out2" / "profiles" / "contract.lock").read_text() == first
    finally:
        other.server.stop()


def test_locked_paths_are_safe(site: Site) -> None:
    artifacts = site.lock["artifacts"]
    assert isinstance(artifacts, list) and artifacts
    for record in artifacts:
        assert_safe_path(record_path(record))
    paths = {(record["ecosystem"], record_path(record)) for record in artifacts}
    folded = {(eco, str(path).casefold()) for eco, path in paths}
    assert len(folded) == len(paths), f"locked paths that collide under casefold: {sorted(paths)}"


def test_hostile_upstream_name_refused_before_download(site: Site) -> None:
    if site.fixture.HOSTILE is None:
        pytest.skip(f"the {site.eco} contract fixture declares no hostile-name check (HOSTILE = None)")
    root = site.root / "hostile"
    up = site.fixture.start(root / "up", hostile=True)
    try:
        config = outside_site(root / "out", site.eco, up)
        code, out = cli_result(config, "lock", "contract")
        assert code in (1, 2), out
        assert site.fixture.HOSTILE in out, out
        assert "Traceback" not in out, out
        assert not (root / "out" / "profiles" / "contract.lock").exists()
        # However a client would spell or normalize the hostile name, the request would end in the file's name.
        downloads = [p for _, p, _ in up.server.log if p in up.artifacts or p.rsplit("/", 1)[-1] == up.label]
        assert downloads == [], f"the {site.eco} lock downloaded {downloads} before refusing"
        assert blobs(root / "out" / "store") == {}
    finally:
        up.server.stop()


# -- the snapshot ----------------------------------------------------------------------------------------------


def test_tampered_artifact_fails_the_snapshot_and_stores_nothing(site: Site) -> None:
    _ = site.lock_text
    # Into a store of its own: a lock may already have stored what it verified while resolving.
    config = site.root / "out" / "tamper.toml"
    config.write_text(site.outside.read_text().replace('path = "store"', 'path = "store-tamper"', 1))
    store = site.root / "out" / "store-tamper"
    before = blobs(store)
    path = site.up.artifacts[0]
    site.up.server.tamper(path)
    try:
        code, out = cli_result(config, "snapshot", "contract")
    finally:
        site.up.server.untamper(path)
    assert code == 1, out
    assert site.up.label in out and "Traceback" not in out, out
    assert site.up.server.requests[path] >= 1  # the tampered bytes were offered, and refused
    after = blobs(store)
    records: list[dict[str, object]] = site.lock["artifacts"]  # type: ignore[assignment]
    locked = set().union(*(record_blobs(a) for a in records))
    tampered = next(str(a["sha256"]) for a in records if record_path(a).endswith(site.up.label))
    gained = {name: sha for name, sha in after.items() if name not in before}
    assert tampered not in after.values()
    # Only other locked blobs (a companion verified on its own), each under its own digest, may have come in.
    assert all(name.endswith(sha) and sha in locked - {tampered} for name, sha in gained.items()), gained
    assert {k: v for k, v in after.items() if k in before} == before
    if locked == {tampered}:
        assert after == before
    # Mended upstream, the same snapshot goes through.
    cli(config, "snapshot", "contract")
    assert tampered in blobs(store).values()


# -- inside ------------------------------------------------------------------------------------------------------


def test_serve_404s_fast_for_what_was_not_imported(site: Site) -> None:
    with httpx.Client(base_url=site.mirror, timeout=10) as client:
        for path in site.up.imported:
            assert client.get(path).status_code == 200, path
        for path in site.up.not_imported:
            started = time.monotonic()
            r = client.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text[:200])
            assert time.monotonic() - started < FAST, path
    upstream_requests = sum(site.up.server.requests.values())
    with httpx.Client(base_url=site.mirror, timeout=10) as client:
        client.get(site.up.not_imported[0])
    assert sum(site.up.server.requests.values()) == upstream_requests  # the mirror never asks the upstream


def test_workspace_config_names_only_the_mirror(site: Site) -> None:
    ws = site.root / "ws"
    cli(site.inside, "workspace-config", "--mirror-url", MIRROR_URL, "--out", str(ws), "--install-dir", str(ws))
    texts = {p.name: p.read_bytes().decode("utf-8", "replace") for p in ws.rglob("*") if p.is_file()}
    assert texts
    for name, text in texts.items():
        for mark in host_marks(site.up):
            assert mark not in text, f"{name} names the upstream ({mark!r}):\n{text}"
        for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", text):
            assert url.startswith(MIRROR_URL), f"{name} names {url}, not the mirror"
    assert any(f"{MIRROR_URL}/{site.eco}" in text for text in texts.values()), texts


def _healthz(store: Store) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(store, load_ecosystems()))
        async with httpx.AsyncClient(transport=transport, base_url=MIRROR_URL) as client:
            return await client.get("/healthz")

    return asyncio.run(get())


def test_serve_problems_are_what_the_inside_setup_fixes(site: Site) -> None:
    # An inside that imported the bundle but has not run the fixture's inside_setup (apt: no archive key yet):
    # what the adapter reports is fixed by exactly those commands, import warns with each, /healthz is
    # degraded and workspace-config leaves the ecosystem out (exit 3); after the setup, nothing is reported.
    root = site.root / "bare"
    root.mkdir()
    config = root / "mirrorctl.toml"
    config.write_text(site.inside.read_text())
    code, out = cli_result(config, "import", str(site.bundle))
    assert code == 0, out
    store = Store(root / "s")
    problems = list(adapter(site).serve_problems(StoreContent(store)))
    assert {p.fix for p in problems} == set(site.up.inside_setup), problems
    assert all(p.ecosystem == site.eco and p.problem for p in problems), problems
    for p in problems:
        assert f"WARNING: {p.line(config)}" in out, out
    health = _healthz(store)
    assert health.status_code == 200
    assert health.text == ("degraded\n" + "".join(p.line() + "\n" for p in problems) if problems else "ok\n")
    ws = root / "ws"
    code, out = cli_result(config, "workspace-config", "--mirror-url", MIRROR_URL, "--out", str(ws))
    assert code == (3 if problems else 0), out
    readme = (ws / "README.txt").read_text()
    assert (f"{site.eco}: NOT CONFIGURED: " in readme) == bool(problems), readme
    for command in site.up.inside_setup:
        cli(config, *command)
    assert list(adapter(site).serve_problems(StoreContent(store))) == []
    assert _healthz(store).text == "ok\n"
    code, out = cli_result(config, "workspace-config", "--mirror-url", MIRROR_URL, "--out", str(ws))
    assert code == 0, out
    assert "NOT CONFIGURED" not in (ws / "README.txt").read_text()


# -- what the adapter reports about what it locked and serves ---------------------------------------------------


def adapter(site: Site) -> Ecosystem:
    return load_ecosystems()[site.eco]


def test_purls_and_version_order_of_the_locked_artifacts(site: Site) -> None:
    eco = adapter(site)
    _ = site.lock_text
    artifacts = read_lock(site.lock_path).for_ecosystem(site.eco)
    assert artifacts
    for art in artifacts:
        purl = eco.purl(art)
        assert purl.startswith("pkg:") and "@" in purl and "file_name=" in purl, purl
        for mark in host_marks(site.up):
            assert mark not in purl, purl
        assert eco.compare_versions(art.version, art.version) == 0, art.version


def test_static_layout_is_safe_names_only_the_mirror_and_is_served(site: Site) -> None:
    view = StoreContent(Store(site.inside.parent / "s")).current()
    assert view is not None
    base = f"{MIRROR_URL}/{site.eco}/"
    layout = adapter(site).static_layout(view, base)
    if layout is None:
        pytest.skip(f"the {site.eco} adapter gives no static layout (static_layout returns None)")
    assert layout
    locked = {sha for a in site.lock["artifacts"] for sha in record_blobs(a)}  # type: ignore[union-attr]
    served_blobs: set[str] = set()
    with httpx.Client(base_url=site.mirror, timeout=10) as client:
        for path, file in layout.items():
            assert_safe_path(path)
            if file.data is not None:
                text = file.data.decode("utf-8", "replace")
                for mark in host_marks(site.up):
                    assert mark not in text, f"{path} names the upstream ({mark!r})"
                for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", text):
                    assert url.startswith(base), f"{path} names {url}, not {base}"
                continue
            assert view.blob_path(file.sha256).stat().st_size == file.size, path
            served_blobs.add(file.sha256)
            r = client.get(f"/{site.eco}/{path}")  # the embedded mirror serves the same tree
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == file.sha256, path
    files = {str(a["sha256"]) for a in site.lock["artifacts"]}  # type: ignore[union-attr]
    assert files <= served_blobs <= locked, (files, served_blobs)  # every locked file, and nothing unlocked


def test_validate_artifact_accepts_the_lock_and_refuses_a_moved_path(site: Site) -> None:
    # Import checks every record with the adapter: a record the adapter would not have written (here, the same
    # file under another safe path, as a crafted lock would carry it) must be refused, not served.
    eco = adapter(site)
    _ = site.lock_text
    artifacts = read_lock(site.lock_path).for_ecosystem(site.eco)
    assert artifacts
    for art in artifacts:
        eco.validate_artifact(art)
        moved = replace(art, path=f"elsewhere/{art.path}")
        with pytest.raises(MirrorctlError):
            eco.validate_artifact(moved)


def served_blobs_checked(site: Site) -> tuple[Store, str, dict[str, str]]:
    """(store, view id, URL path under /<eco>/ -> sha256) of the adapter's served blobs, checked against the lock."""
    store = Store(site.inside.parent / "s")
    view = StoreContent(store).current()
    assert view is not None
    files = adapter(site).served_blobs(view)
    assert files
    locked = {sha for a in site.lock["artifacts"] for sha in record_blobs(a)}  # type: ignore[union-attr]
    wanted = {str(a["sha256"]) for a in site.lock["artifacts"]}  # type: ignore[union-attr]
    for path, file in files.items():
        assert_safe_path(path)
        assert file.data is None, path
        assert view.blob_path(file.sha256).stat().st_size == file.size, path
    served = {f.sha256 for f in files.values()}
    assert wanted <= served <= locked, (wanted, served)  # every locked file, nothing unlocked
    return store, view.view_id, {p: f.sha256 for p, f in files.items()}


def test_served_blobs_are_served_and_are_the_tree_import_linked(site: Site) -> None:
    store, view_id, files = served_blobs_checked(site)
    with httpx.Client(base_url=site.mirror, timeout=10) as client:
        for path, sha in files.items():
            r = client.get(f"/{site.eco}/{path}")  # the embedded mirror answers these URLs with these bytes
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha, path
    tree = store.root / "views" / view_id / "files" / site.eco
    on_disk = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if not p.is_dir()}
    assert on_disk == set(files)  # `mirrorctl import` wrote exactly these, as hard links of the blobs
    for path, sha in files.items():
        assert (tree / path).stat().st_ino == store.blob_path(sha).stat().st_ino, path


def test_serve_front_nginx_sends_the_served_blobs(site: Site) -> None:
    from tests.test_serve_front import require_nginx

    require_nginx()
    _, _, files = served_blobs_checked(site)
    front = site.serve("--front", "nginx")
    with httpx.Client(base_url=front, timeout=10) as client:
        for path, sha in files.items():
            r = client.get(f"/{site.eco}/{path}")
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha, path
            # nginx's ETag (mtime-size), not mirrorctl's digest: sent from the tree by nginx itself.
            assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', r.headers.get("etag", "")), (path, r.headers)
        assert client.get("/healthz").status_code == 200
