"""`mirrorctl serve --front nginx`: the real nginx, started and configured by serve, sends package files from the
served view's file tree and passes the rest to mirrorctl; a switch is seen at the next request, a view no link
points at is not reachable, nothing outside the store is served, and the refusals change nothing."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mirrorctl.ecosystems.pypi.serve import JSON_TYPE
from mirrorctl.errors import MirrorctlError
from mirrorctl.inside.channels import promote, rollback
from mirrorctl.inside.filetree import TREE, tree_dir
from mirrorctl.inside.serve.front import find_nginx
from mirrorctl.progress import SILENT
from tests.conftest import skip_or_fail
from tests.fixtures.snapshots import Snapshots, two_snapshots

MIRRORCTL = str(Path(sys.executable).parent / "mirrorctl")


def require_nginx() -> None:
    """nginx is installed by scripts/setup.sh: missing, these tests skip here and fail in CI."""
    try:
        find_nginx(None, None)
    except MirrorctlError as exc:
        skip_or_fail(f"needs nginx (scripts/setup.sh installs it): {exc}")


def snapshot_of_store(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and link under the store: what a refusal must leave as it was."""
    found: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = (0, os.readlink(path))
        elif path.is_file():
            found[rel] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            found[rel] = (-1, "")
    return found


class Front:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def nginx_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True) if c.name() == "nginx"]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        return err


def start(config: Path, *args: str) -> Front:
    # The runtime folder goes under the test's own folder: one kept on purpose (nginx died) or left by a killed
    # serve disappears with it.
    env = {**os.environ, "TMPDIR": str(config.parent)}
    proc = subprocess.Popen(
        [MIRRORCTL, "--config", str(config), "serve", "--port", "0", "--front", "nginx", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/ ", line)
    assert m, line + (proc.communicate(timeout=10)[1] if proc.poll() is not None else "")
    front = Front(proc, m.group(1))
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{front.url}/healthz", timeout=2).status_code == 200:
                return front
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "serve --front nginx did not come up"
        time.sleep(0.1)


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path / "world")


@pytest.fixture
def config(tmp_path: Path, snaps: Snapshots) -> Path:
    path = tmp_path / "mirrorctl.toml"
    path.write_text(f'[store]\npath = "{snaps.store.root}"\n')
    return path


@pytest.fixture
def front(config: Path) -> Iterator[Front]:
    require_nginx()
    f = start(config)
    try:
        yield f
    finally:
        f.stop()


def wheel_urls(url: str, prefix: str = "") -> dict[str, str]:
    """Project -> the URL path of its wheel, from the simple JSON pages."""
    out = {}
    names = httpx.get(f"{url}{prefix}/pypi/simple/", headers={"Accept": JSON_TYPE}).json()["projects"]
    for p in names:
        page = httpx.get(f"{url}{prefix}/pypi/simple/{p['name']}/", headers={"Accept": JSON_TYPE}).json()
        base = f"{prefix}/pypi/simple/{p['name']}/"
        out[p["name"]] = str(httpx.URL(base).join(page["files"][0]["url"]))
    return out


def by_nginx(r: httpx.Response) -> bool:
    """nginx's own ETag ("<mtime>-<size>" in hex), never mirrorctl's sha256: the file came from the tree."""
    return r.status_code == 200 and re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', r.headers.get("etag", "")) is not None


def test_files_come_from_nginx_and_the_rest_from_mirrorctl(front: Front, snaps: Snapshots) -> None:
    store = snaps.store
    urls = wheel_urls(front.url)
    assert set(urls) == {"alpha", "beta"}
    view = store.load_view(snaps.second)
    for a in view.artifacts:
        r = httpx.get(front.url + urls[a.name])
        assert by_nginx(r), r.headers
        assert hashlib.sha256(r.content).hexdigest() == a.sha256
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        head = httpx.head(front.url + urls[a.name])
        assert head.status_code == 200 and int(head.headers["content-length"]) == a.size
        ranged = httpx.get(front.url + urls[a.name], headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == r.content[:10]
    # The index pages, healthz and status are mirrorctl's, through nginx, with the client's Host unchanged.
    page = httpx.get(f"{front.url}/pypi/simple/alpha/")
    assert page.status_code == 200 and "alpha" in page.text
    moved = httpx.get(f"{front.url}/pypi/simple/Alpha", headers={"Host": "mirror.internal:9"})
    assert moved.status_code == 301 and moved.headers["location"] == "/pypi/simple/alpha/"
    status = httpx.get(f"{front.url}/").json()
    assert status["view-id"] == snaps.second
    # A file the view does not hold: mirrorctl's own 404, not nginx's.
    gone = httpx.get(f"{front.url}/pypi/files/{'0' * 64}/nothing-1.0-py3-none-any.whl")
    assert gone.status_code == 404 and "not in this mirror" in gone.text
    # Every served view got its tree (made here: the fixture's views predate trees), hard links to the blobs.
    tree = tree_dir(store, snaps.second)
    for a in view.artifacts:
        entry = tree / "pypi" / "files" / a.sha256 / a.filename
        assert entry.stat().st_ino == store.blob_path(a.sha256).stat().st_ino


def test_a_promote_and_a_rollback_are_seen_by_the_next_file_request(tmp_path: Path, snaps: Snapshots) -> None:
    require_nginx()
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    config = tmp_path / "prod.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    f = start(config, "--channel", "prod", "--workers", "2")
    try:
        urls = wheel_urls(f.url)
        gamma = urls["gamma"]  # only in the first snapshot
        assert by_nginx(httpx.get(f.url + gamma))
        promote(store, snaps.second, "prod", SILENT)
        r = httpx.get(f.url + gamma)  # the very next request
        assert r.status_code == 404, r.headers
        assert by_nginx(httpx.get(f.url + urls["alpha"]))
        rollback(store, "prod", SILENT)
        assert by_nginx(httpx.get(f.url + gamma))
    finally:
        f.stop()


def test_several_channels_each_serve_their_own_files(tmp_path: Path, snaps: Snapshots) -> None:
    require_nginx()
    store = snaps.store
    promote(store, snaps.first, "prod", SILENT)
    promote(store, snaps.second, "dev", SILENT)
    config = tmp_path / "channels.toml"
    config.write_text(f'[store]\npath = "{store.root}"\n')
    f = start(config, "--channel", "dev", "--channel", "prod")
    try:
        prod = wheel_urls(f.url, "/prod")
        assert by_nginx(httpx.get(f.url + prod["gamma"]))
        assert httpx.get(f.url + prod["gamma"].replace("/prod/", "/dev/", 1)).status_code == 404
    finally:
        f.stop()


def test_a_file_of_a_view_no_link_points_at_is_not_reachable(front: Front, snaps: Snapshots) -> None:
    store = snaps.store
    first = store.load_view(snaps.first)
    gamma = next(a for a in first.artifacts if a.name == "gamma")
    assert (tree_dir(store, snaps.first) / "pypi" / "files" / gamma.sha256 / gamma.filename).is_file()
    for path in (
        f"/pypi/files/{gamma.sha256}/{gamma.filename}",
        f"/../views/{snaps.first}/{TREE}/pypi/files/{gamma.sha256}/{gamma.filename}",
        f"/pypi/%2e%2e/%2e%2e/%2e%2e/views/{snaps.first}/{TREE}/pypi/files/{gamma.sha256}/{gamma.filename}",
    ):
        r = httpx.get(front.url + path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert hashlib.sha256(r.content).hexdigest() != gamma.sha256


def test_a_link_planted_in_the_tree_is_not_followed(tmp_path: Path, config: Path, snaps: Snapshots) -> None:
    require_nginx()
    store = snaps.store
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the store\n")
    f = start(config)  # builds the trees
    try:
        planted = tree_dir(store, snaps.second) / "pypi" / "files" / "planted.whl"
        planted.symlink_to(secret)
        folder = tree_dir(store, snaps.second) / "pypi" / "linked"
        folder.symlink_to(tmp_path)
        for path in ("/pypi/files/planted.whl", "/pypi/linked/secret.txt"):
            r = httpx.get(f.url + path)
            assert "outside the store" not in r.text, path
            assert r.status_code in (403, 404), (path, r.status_code)
    finally:
        f.stop()


def test_stopping_serve_stops_nginx_and_removes_its_runtime_folder(config: Path) -> None:
    require_nginx()
    f = start(config)
    pids = f.nginx_pids()
    assert pids
    master = psutil.Process(min(pids)).cmdline()
    run_dir = Path(master[master.index("-p") + 1])
    assert run_dir.is_dir() and (run_dir / "nginx.conf").is_file() and (run_dir / "app.sock").is_socket()
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    f.proc.send_signal(signal.SIGTERM)
    f.proc.communicate(timeout=30)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not run_dir.exists()


def test_nginx_dying_stops_serve_with_its_error(config: Path) -> None:
    require_nginx()
    f = start(config)
    master = min(f.nginx_pids())
    workers = set(f.nginx_pids()) - {master}
    os.kill(master, signal.SIGKILL)
    _, err = f.proc.communicate(timeout=30)  # serve notices by itself
    assert f.proc.returncode == 1, err
    assert "nginx exited with code" in err and "error log" in err, err
    assert "Traceback" not in err
    for pid in workers:  # the killed master's workers do not linger
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_missing_nginx_binary_is_refused_naming_the_setting(tmp_path: Path, snaps: Snapshots) -> None:
    root = snaps.store.root
    before = snapshot_of_store(root)
    config = tmp_path / "missing.toml"
    config.write_text(f'[store]\npath = "{root}"\n\n[serve]\nfront = "nginx"\nnginx = "{tmp_path}/no-nginx"\n')
    done = subprocess.run([MIRRORCTL, "--config", str(config), "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "serve.nginx" in done.stderr and "no-nginx" in done.stderr and "apt-get install nginx" in done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot_of_store(root) == before


def test_no_nginx_on_path_nor_in_sbin_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mirrorctl.errors import UserError
    from mirrorctl.inside.serve import front

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(front, "_SBIN", (str(tmp_path),))
    with pytest.raises(UserError) as err:
        front.find_nginx(None, None)
    assert "no nginx binary" in err.value.message and "[serve] nginx" in err.value.message
    assert "apt-get install nginx" in (err.value.hint or "")


def test_serve_killed_leaves_no_nginx_behind(config: Path) -> None:
    require_nginx()
    f = start(config)
    pids = f.nginx_pids()
    f.proc.kill()
    f.proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() < deadline, "nginx outlived a killed serve"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("serve_table", "args", "named"),
    [
        ('front = "apache"\n', (), "serve.front"),
        ("front = 1\n", (), "serve.front"),
        ('nginx = ""\n', ("--front", "nginx"), "serve.nginx"),
        ('fronts = "nginx"\n', (), "serve.fronts"),
        ("", ("--front", "caddy"), "--front"),
    ],
)
def test_bad_front_settings_are_refused_and_change_nothing(
    tmp_path: Path, snaps: Snapshots, serve_table: str, args: tuple[str, ...], named: str
) -> None:
    root = snaps.store.root
    before = snapshot_of_store(root)
    config = tmp_path / "bad.toml"
    config.write_text(f'[store]\npath = "{root}"\n\n[serve]\n{serve_table}')
    done = subprocess.run([MIRRORCTL, "--config", str(config), "serve", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert snapshot_of_store(root) == before


def test_a_runtime_folder_too_long_for_a_socket_is_a_clear_error(tmp_path: Path, snaps: Snapshots) -> None:
    require_nginx()
    root = snaps.store.root
    deep = tmp_path / ("t" * 100)
    deep.mkdir()
    config = tmp_path / "deep.toml"
    config.write_text(f'[store]\npath = "{root}"\n')
    before = snapshot_of_store(root)
    done = subprocess.run([MIRRORCTL, "--config", str(config), "serve", "--port", "0", "--front", "nginx"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "TMPDIR": str(deep)})
    assert done.returncode == 2, done.stderr
    assert "unix socket" in done.stderr and "TMPDIR" in done.stderr and "Traceback" not in done.stderr
    assert list(deep.iterdir()) == []  # nginx never started: its runtime folder is gone too
    after = snapshot_of_store(root)
    # The trees serve writes for views made before them are the only change: nothing served moved.
    assert {k: v for k, v in after.items() if "/files" not in k} == before
