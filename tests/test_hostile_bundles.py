"""Hostile variants of a genuine signed bundle, through the CLI (issue 12, items 2 and 3): bytes no manifest lists,
headers that would take unbounded memory or recursion, a lock whose attrs a view cannot hold, and a store that runs
out of inodes mid-import. Each is refused by `bundle verify` and by `import` alike with one line and a hint (exit 1
or 2, never a traceback), and afterwards the inside serves and remembers exactly what it did before: no staging, no
view folder without its view.json."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.crossing.bundle.container import MAX_EXTENDED_HEADER, ContainerReader
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import BundleRefused
from mirrorctl.inside.store import Store
from tests.fixtures.bundles import (
    ECOSYSTEMS,
    NOW,
    World,
    fingerprint,
    make_lock,
    make_world,
    pax_header,
    raw_header,
    sha256_of,
    staging_dirs,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """An inside that serves bundle 1 and has a mirrorctl.toml; the attacks are variants of bundle 2."""
    w = make_world(tmp_path)
    import_bundle(w.export("first.bundle"), w.inside, w.trusted, ECOSYSTEMS, now=NOW)
    w.export("second.bundle")
    _configure(w)
    yield w


def _configure(w: World) -> None:
    (w.root / "inside.toml").write_text(
        f'[store]\npath = "{w.inside.root}"\n[trust]\nkeys = ["{w.key.public_path}"]\n'
    )


def cli(world: World, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["-c", str(world.root / "inside.toml"), *args])
    return result.exit_code, result.output


def views_without_view_json(store: Store) -> list[Path]:
    views = store.root / "views"
    return [d for d in views.iterdir() if not (d / "view.json").is_file()] if views.is_dir() else []


def refused_by_cli(world: World, bundle: Path, match: str, code: int = 1) -> str:
    """`bundle verify` and `import` both refuse ``bundle`` naming ``match``; the inside is byte-for-byte unchanged."""
    before = fingerprint(world.inside)
    bundle_sha = sha256_of(bundle)
    for command in (["bundle", "verify"], ["import"]):
        exit_code, out = cli(world, *command, str(bundle))
        flat = out.replace("\n", "")
        assert exit_code == code, (command, out)
        assert "Traceback" not in out and "unexpected" not in out, out
        assert match in flat, (command, out)
        lines = [line for line in out.splitlines() if line.startswith(("error:", "hint:"))]
        assert [line.split(":")[0] for line in lines] == ["error", "hint"], out
        assert fingerprint(world.inside) == before
        assert staging_dirs(world.inside) == []
        assert views_without_view_json(world.inside) == []
    assert sha256_of(bundle) == bundle_sha
    return flat


def genuine(world: World) -> bytes:
    return (world.root / "second.bundle").read_bytes()


def write(world: World, data: bytes, name: str = "bad.bundle") -> Path:
    path = world.root / name
    path.write_bytes(data)
    return path


# --- item 2: every byte accounted for -----------------------------------------------------------------------
def test_huge_pax_comment_in_front_is_refused_unread(world: World) -> None:
    """A 256 MB PAX ``comment`` before a genuine bundle: refused from its 512-byte header, in bounded memory."""
    size = 256 * 1024 * 1024
    prefix = b"%d comment=" % size
    bad = world.root / "huge-comment.bundle"
    with open(bad, "wb") as f:  # sparse: the comment's bytes are a hole, never held anywhere
        f.write(raw_header(b"././@PaxHeader", size, b"x"))
        f.write(prefix)
        f.seek(512 + size - 1)
        f.write(b"\n")
        f.write(bytes(-size % 512))
        f.write(genuine(world))
    assert bad.stat().st_blocks * 512 < 4 * 1024 * 1024
    msg = refused_by_cli(world, bad, f"is {size} bytes, more than the {MAX_EXTENDED_HEADER} allowed")
    assert "extended header at offset 0" in msg
    for command in (["bundle", "verify"], ["import"]):  # modules are loaded now: measure the refusal alone
        tracemalloc.start()
        try:
            code, _ = cli(world, *command, str(bad))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert code == 1 and peak < 4 * 1024 * 1024, (command, peak)


class _Counting(io.RawIOBase):
    def __init__(self, inner: io.BufferedReader) -> None:
        self.inner, self.read_bytes = inner, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.inner.readinto(buffer)
        self.read_bytes += n
        return n


def test_the_refusal_reads_one_header_only(world: World) -> None:
    size = 256 * 1024 * 1024
    bad = world.root / "huge.bundle"
    with open(bad, "wb") as f:
        f.write(raw_header(b"././@PaxHeader", size, b"x"))
        f.truncate(512 + size)
    with open(bad, "rb", buffering=0) as raw:
        counting = _Counting(raw)  # type: ignore[arg-type]
        with pytest.raises(BundleRefused, match="more than the 8192 allowed"):
            ContainerReader(counting, str(bad)).next()  # type: ignore[arg-type]
    assert counting.read_bytes <= 512


def test_thousands_of_chained_pax_headers(world: World) -> None:
    chained = pax_header({"mtime": "1700000000"}) * 5000
    msg = refused_by_cli(world, write(world, chained + genuine(world)), "more than 4 extended headers in a row")
    assert "at offset 0" in msg


@pytest.mark.parametrize(
    ("records", "match"),
    [
        ({"comment": "hello"}, "sets 'comment', which a bundle never uses"),
        ({"GNU.sparse.map": "0,1"}, "sets 'GNU.sparse.map'"),
        ({"path": "manifest.json", "hdrcharset": "BINARY"}, "sets 'hdrcharset'"),
        ({"path": "a/" * 2500}, "member name at offset 0 is longer than 4096 bytes"),
        ({"path": "a" * 9000}, "more than the 8192 allowed"),
    ],
)
def test_extended_headers_a_bundle_never_has(world: World, records: dict[str, str], match: str) -> None:
    refused_by_cli(world, write(world, pax_header(records) + genuine(world)), match)


def test_global_pax_header(world: World) -> None:
    body = b"16 comment=abcd\n"
    g = raw_header(b"././@PaxHeader", len(body), b"g") + body + bytes(512 - len(body))
    refused_by_cli(world, write(world, g + genuine(world)), "a global extended header (pax 'g')")


@pytest.mark.parametrize(
    ("tail", "match"),
    [
        (b"junk after the end", "bytes follow the end-of-archive marker"),
        (b"\0" * 20 * 1024, "bytes follow the end-of-archive marker"),  # more zeros than one record
        (b"\0" * 100 + b"\x01", "bytes follow the end-of-archive marker"),
        (b"\0" * 512 + raw_header(b"README", 0), "bytes follow the end-of-archive marker"),
    ],
)
def test_bytes_after_the_end_of_archive_marker(world: World, tail: bytes, match: str) -> None:
    refused_by_cli(world, write(world, genuine(world) + tail), match)


def _end_of_members(data: bytes) -> int:
    """Where the end-of-archive marker starts in a genuine bundle (after the last member's padded data)."""
    pos = 0
    while data[pos : pos + 512] != bytes(512):
        size = int(data[pos + 124 : pos + 135], 8)
        pos += 512 + -(-size // 512) * 512
    return pos


@pytest.mark.parametrize("keep", [0, 512, 700])
def test_end_of_archive_marker_cut_off(world: World, keep: int) -> None:
    data = genuine(world)
    end = _end_of_members(data)
    cut = write(world, data[: end + keep])
    msg = refused_by_cli(world, cut, "without tar's end-of-archive marker: a truncated copy")
    assert f"ends at offset {end}" in msg
    assert "copy the bundle again" in msg


def test_a_nonzero_padding_byte_inside_the_archive(world: World) -> None:
    data = bytearray(genuine(world))
    size = int(data[124:135], 8)  # manifest.json
    assert size % 512, "the manifest's data does not end on a block"
    data[512 + size] = 0x41
    refused_by_cli(world, write(world, bytes(data)), "is not zeros")


def test_a_delta_ending_without_record_padding_still_imports(world: World) -> None:
    from mirrorctl.crossing.bundle.state import export_state, read_state

    export_state(world.inside, world.root / "inside.state", signing_key=None, now=NOW)
    delta = world.export("delta.bundle", since=read_state(world.root / "inside.state"))
    data = delta.read_bytes()
    assert data.endswith(bytes(1024)) and _end_of_members(data) + 1024 == len(data)  # no record padding
    for command in (["bundle", "verify"], ["import"]):
        code, out = cli(world, *command, str(delta))
        assert code == 0, out


def test_verify_judges_a_delta_as_import_does(world: World) -> None:
    """A delta whose expected blobs this store lost: `bundle verify` refuses it as import would."""
    from mirrorctl.crossing.bundle.state import export_state, read_state

    export_state(world.inside, world.root / "inside.state", signing_key=None, now=NOW)
    delta = world.export("delta.bundle", since=read_state(world.root / "inside.state"))
    world.inside.blob_path(world.artifacts[0].sha256).unlink()
    refused_by_cli(world, delta, "blob(s) it expects are not in this store")


# --- item 3: refusals instead of tracebacks -----------------------------------------------------------------
def _lock_with_attr(world: World, toml_value: str) -> Path:
    marked = replace(world.artifacts[0], attrs={"when": "MARK"})
    name, lock, data = make_lock("web", [marked, *world.artifacts[1:2]])
    text = data.decode().replace('when = "MARK"', f"when = {toml_value}")
    assert text != data.decode()
    world.locks = [(name, lock, text.encode())]
    return world.export("attrs.bundle")


@pytest.mark.parametrize(
    ("value", "kind"),
    [("2026-01-01T00:00:00Z", "datetime"), ("1979-05-27", "date"), ("1.5", "float"), ("[1, 2]", "list")],
)
def test_lock_attrs_of_a_type_a_view_cannot_hold(world: World, value: str, kind: str) -> None:
    bundle = _lock_with_attr(world, value)
    for _ in range(2):  # and again: a retry finds nothing left behind either
        msg = refused_by_cli(world, bundle, f"attrs.when: must be a string, integer or boolean, got {kind}")
        assert "locks/web.lock: artifacts[0].attrs.when" in msg


def test_lock_attrs_of_plain_types_import(world: World) -> None:
    marked = replace(world.artifacts[0], attrs={"a": "x", "b": 3, "c": True})
    world.locks = [make_lock("web", [marked, *world.artifacts[1:2]])]
    code, out = cli(world, "import", str(world.export("plain.bundle")))
    assert code == 0, out
    view = world.inside.current_view()
    assert view is not None and dict(view.artifacts[0].attrs) == {"a": "x", "b": 3, "c": True}


def _fail_nth_write(monkeypatch: pytest.MonkeyPatch, store_root: Path, n: int) -> list[str]:
    """The ``n``-th file-system change under the store fails with ENOSPC (the disk is full at that moment; what
    the failed import removes again frees room for putting back what it changed)."""
    calls: list[str] = []
    real_open, real_replace, real_rename = open, os.replace, os.rename
    real_mkdir, real_symlink = os.mkdir, os.symlink

    def counted(what: str, path: object) -> None:
        if str(path).startswith(str(store_root)):
            calls.append(f"{what} {path}")
            if len(calls) == n:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def fake_open(file, mode="r", *a, **kw):  # type: ignore[no-untyped-def]
        if any(c in mode for c in "wxa+") and not str(file).endswith(".lock"):
            counted("open", file)
        return real_open(file, mode, *a, **kw)

    def wrap(name: str, real):  # type: ignore[no-untyped-def]
        def fake(src, dst=None, *a, **kw):  # type: ignore[no-untyped-def]
            counted(name, dst if dst is not None else src)
            return real(src, dst, *a, **kw) if dst is not None else real(src, *a, **kw)

        return fake

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(os, "replace", wrap("replace", real_replace))
    monkeypatch.setattr(os, "rename", wrap("rename", real_rename))
    monkeypatch.setattr(os, "mkdir", wrap("mkdir", real_mkdir))
    monkeypatch.setattr(os, "symlink", wrap("symlink", real_symlink))
    return calls


def test_disk_full_at_every_write_of_an_import(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC injected at each file-system change an import makes in turn: every outcome is a one-line refusal
    with the inside unchanged, until the import has room to complete."""
    bundle = world.root / "second.bundle"
    outcomes = []
    for n in range(1, 60):
        before = fingerprint(world.inside)
        with monkeypatch.context() as m:
            calls = _fail_nth_write(m, world.inside.root, n)
            code, out = cli(world, "import", str(bundle))
        assert "Traceback" not in out and "unexpected" not in out, (n, calls, out)
        assert staging_dirs(world.inside) == [] and views_without_view_json(world.inside) == [], (n, out)
        if code == 0:
            break
        outcomes.append(out)
        assert code == 2 and "No space left on device" in out, (n, out)
        if "now serving view" in out:  # past the commit point: the new view is served, complete
            view = world.inside.current_view()
            assert view is not None and view.sequence == 2
            break
        assert "nothing was changed" in out, (n, calls, out)
        assert fingerprint(world.inside) == before, (n, calls, out)
    else:
        pytest.fail("the import never completed")
    assert any("cannot write to the store" in o for o in outcomes), outcomes
    assert any("cannot stage the bundle" in o for o in outcomes), outcomes


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=400", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_out_of_inodes_mid_import(tmp_path: Path, small_tmpfs: Path) -> None:
    """A real file system with few inodes, filled up to k free ones for k = 0, 1, 2, ...: each import is
    refused cleanly (or completes), never a traceback, the store unchanged by a refusal."""
    w = make_world(tmp_path / "w")
    w.inside = Store(small_tmpfs / "inside")
    _configure(w)
    import_bundle(w.export("first.bundle"), w.inside, w.trusted, ECOSYSTEMS, now=NOW)
    bundle = w.export("second.bundle")
    fill = small_tmpfs / "fill"
    fill.mkdir()
    refusals = []
    for free in range(0, 40):
        fillers = []
        try:
            while True:
                p = fill / str(len(fillers))
                p.touch()
                fillers.append(p)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        for p in fillers[len(fillers) - free :] if free else []:
            p.unlink()
        before = fingerprint(w.inside)
        code, out = cli(w, "import", str(bundle))
        for p in fill.iterdir():
            p.unlink()
        assert "Traceback" not in out and "unexpected" not in out, (free, out)
        assert staging_dirs(w.inside) == [] and views_without_view_json(w.inside) == [], (free, out)
        if code == 0:
            break
        refusals.append(out)
        assert code == 2, (free, out)
        if "now serving view" in out:
            break
        assert "nothing was changed" in out and fingerprint(w.inside) == before, (free, out)
    else:
        pytest.fail("the import never completed")
    assert refusals, "the store never ran out of inodes"
    view = w.inside.current_view()
    assert view is not None and view.sequence == 2
    assert json.loads((w.inside.root / "views" / view.view_id / "view.json").read_bytes())["sequence"] == 2


def test_only_the_container_module_opens_a_bundle_tar() -> None:
    """tarfile is imported by the container module and by ecosystems reading their own package archives (sdists,
    npm tarballs), never by other code that could open a bundle past the container's bounds."""
    root = Path(__file__).resolve().parents[1] / "mirrorctl"
    users = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if "tarfile" in p.read_text(encoding="utf-8")
    )
    assert [u for u in users if not u.startswith("ecosystems/")] == ["crossing/bundle/container.py"], users
