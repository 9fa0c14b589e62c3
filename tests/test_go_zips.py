"""Module zips and h1: hashes (mirrorctl/ecosystems/go/dirhash.py, modzip.py): zips built the way the go command
builds them (tests/fixtures/go_modules.py) are accepted by the real go through a GOPROXY=file:// tree, and the
h1: hashes go writes into go.sum are the ones mirrorctl computes; hostile zips are refused naming the entry,
with the same verdict as Go's own zip.CheckZip where Go checks the same rule."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from mirrorctl.ecosystems.go import gosum
from mirrorctl.ecosystems.go.dirhash import gomod_hash, hash1, zip_hash
from mirrorctl.ecosystems.go.modpath import proxy_path
from mirrorctl.ecosystems.go.modzip import MAX_ZIP, ModuleZipRefused, check_zip
from mirrorctl.errors import IntegrityError
from tests.fixtures.go_modules import GoModule, module_zip, raw_zip, write_proxy
from tests.fixtures.go_tools import Oracle, go_env, run_go, shared_oracle

_TWO_MOD = "module example.com/two/v2\n\ngo 1.21\n\nrequire example.com/hello v1.0.0\n"
MODULES = [
    GoModule("example.com/hello", "v1.0.0", {"hello.go": "package hello\n\nconst Hi = 1\n", "LICENSE": "MIT\n"}),
    GoModule("example.com/hello", "v1.1.0", {"hello.go": "package hello\n", "sub/x.go": "package sub\n"}),
    GoModule("example.com/Upper/Case", "v0.2.0-rc.1", {"u.go": "package case\n", "README": "hi \u00fc\n"}),
    GoModule("example.com/two/v2", "v2.3.0", {"go.mod": _TWO_MOD, "t.go": "package two\n"}),
    GoModule("example.com/old", "v3.0.0+incompatible", {"old.go": "package old\n"}, zip_gomod=False),
    GoModule("example.com/pseudo", "v0.0.0-20260102030405-abcdef123456", {"p.go": "package pseudo\n"}),
]


@pytest.fixture(scope="module")
def go_oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    return shared_oracle(tmp_path_factory)


def test_real_go_accepts_fixture_zips_and_its_h1_is_ours(tmp_path: Path) -> None:
    proxy = write_proxy(tmp_path / "proxy", MODULES)
    work = tmp_path / "main"
    work.mkdir()
    (work / "go.mod").write_text("module main.test/app\n\ngo 1.21\n")
    env = go_env(tmp_path / "home", proxy=f"file://{proxy}")
    args = [f"{m.path}@{m.version}" for m in MODULES]
    done = run_go(["mod", "download", "-json", *args], work, env)
    reported = [json.loads(part) for part in _json_stream(done.stdout)]
    assert [r.get("Error") for r in reported] == [None] * len(MODULES), reported
    for mod, rep in zip(MODULES, reported, strict=True):
        assert (rep["Path"], rep["Version"]) == (mod.path, mod.version)
        assert rep["Zip"].endswith("/cache/download/" + proxy_path(mod.path, mod.version, "zip"))
        assert rep["Info"].endswith("/cache/download/" + proxy_path(mod.path, mod.version, "info"))
        zip_path = proxy / rep["Zip"].split("/cache/download/", 1)[1]
        assert rep["Sum"] == zip_hash(str(zip_path)), mod
        with zip_path.open("rb") as f:
            assert check_zip(f, mod.path, mod.version).h1 == rep["Sum"]
        assert rep["GoModSum"] == gomod_hash(Path(rep["GoMod"]).read_bytes()), mod
    # go get writes go.sum: every line there is one mirrorctl computes the same way
    run_go(["get", "example.com/two/v2@v2.3.0", "example.com/Upper/Case@v0.2.0-rc.1"], work, env)
    lines = (work / "go.sum").read_text().splitlines()
    assert lines, "go get wrote no go.sum"
    ours = set()
    for mod in MODULES:
        prefix = f"{mod.path}@{mod.version}/"
        ours.add(f"{mod.path} {mod.version} {hash1((prefix + n, d) for n, d in mod.all_files().items())}")
        ours.add(f"{mod.path} {mod.version}/go.mod {gomod_hash(mod.gomod)}")
    assert set(lines) <= ours, set(lines) - ours
    sums = gosum.parse((work / "go.sum").read_bytes(), "main/go.sum")
    two = MODULES[3]
    assert sums.hashes(two.path, two.version, gomod=True) == (gomod_hash(two.gomod),)
    assert sums.hashes(two.path, two.version) == (zip_hash(str(proxy / proxy_path(two.path, two.version, "zip"))),)
    assert sums.line_of(two.path, two.version) is not None


def _json_stream(text: str) -> list[str]:
    decoder = json.JSONDecoder()
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        obj, end = decoder.raw_decode(text, i)
        out.append(json.dumps(obj))
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def test_gomod_hash_of_known_bytes_is_stable() -> None:
    assert gomod_hash(b"module example.com/m\n") == hash1([("go.mod", b"module example.com/m\n")])
    assert gomod_hash(b"a") != gomod_hash(b"b")


P, V = "example.com/m", "v1.0.0"
PRE = f"{P}@{V}/"
HOSTILE = {
    "traversal": [(f"{PRE}../../etc/passwd", b"x")],
    "outside prefix": [("example.com/other@v1.0.0/a.go", b"x")],
    "absolute": [(f"{PRE}/abs.go", b"x")],
    "dot segment": [(f"{PRE}./a.go", b"x")],
    "duplicate": [(f"{PRE}a.go", b"1"), (f"{PRE}a.go", b"2")],
    "case-fold duplicate": [(f"{PRE}A.go", b"1"), (f"{PRE}a.go", b"2")],
    "case-fold directory": [(f"{PRE}Dir/a.go", b"1"), (f"{PRE}dir/b.go", b"2")],
    "file and directory": [(f"{PRE}x", b"1"), (f"{PRE}x/y.go", b"2")],
    "nested go.mod": [(f"{PRE}sub/go.mod", b"module x\n")],
    "uppercase go.mod": [(f"{PRE}GO.MOD", b"module x\n")],
    "bad char": [(f"{PRE}a:b.go", b"x")],
    "windows name": [(f"{PRE}aux.go", b"x")],
    "backslash": [(f"{PRE}a\\b.go", b"x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_zip_refused_naming_the_entry_as_go_does(case: str, tmp_path: Path, go_oracle: Oracle) -> None:
    data = raw_zip(HOSTILE[case])
    path = tmp_path / "m.zip"
    path.write_bytes(data)
    with pytest.raises(ModuleZipRefused) as err:
        check_zip(io.BytesIO(data), P, V)
    assert err.value.entry in {name for name, _ in HOSTILE[case]}
    assert f"go module zip {P}@{V} entry " in str(err.value)
    assert isinstance(err.value, IntegrityError)
    assert path.read_bytes() == data  # nothing written, nothing extracted
    assert not go_oracle.one("checkzip", P, V, str(path))["ok"], f"Go accepts {case}, mirrorctl refuses it"


def test_good_zip_accepted_by_both_and_same_hash(tmp_path: Path, go_oracle: Oracle) -> None:
    files = {"go.mod": b"module example.com/m\n", "a b/c#d.go": b"package x\n", "LICENSE": b"L", "\u00fcber.go": b"x"}
    data = module_zip(P, V, files)
    path = tmp_path / "m.zip"
    path.write_bytes(data)
    checked = check_zip(io.BytesIO(data), P, V)
    assert go_oracle.one("checkzip", P, V, str(path))["ok"]
    assert checked.h1 == go_oracle.one("hashzip", file=str(path))["out"] == zip_hash(io.BytesIO(data))
    assert sorted(n for n, _ in checked.files) == sorted(files)
    with_dir = raw_zip([(PRE, b""), (f"{PRE}d/", b""), (f"{PRE}d/a.go", b"x")])
    path.write_bytes(with_dir)
    assert check_zip(io.BytesIO(with_dir), P, V).files == (("d/a.go", 1),)
    assert go_oracle.one("checkzip", P, V, str(path))["ok"]
    assert zip_hash(io.BytesIO(with_dir)) == go_oracle.one("hashzip", file=str(path))["out"]


@pytest.mark.parametrize(
    ("module", "version", "reason"),
    [
        ("example.com/m", "v1.0", "not canonical"),
        ("Example.com/m", "v1.0.0", "malformed module path"),
        ("example.com/m/v2", "v1.0.0", "should be v2"),
    ],
)
def test_bad_module_or_version_refused(module: str, version: str, reason: str) -> None:
    with pytest.raises(ModuleZipRefused, match=reason) as err:
        check_zip(io.BytesIO(module_zip(module, version, {"a.go": b"x"})), module, version)
    assert err.value.entry is None


def _patch_declared_size(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the declared uncompressed size of ``name`` in the local header and the central directory."""
    out = bytearray(data)
    enc = name.encode()
    for sig, off_size in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (i := out.find(sig, start)) >= 0:
            name_off = 30 if sig == b"PK\x03\x04" else 46
            if out[i + name_off : i + name_off + len(enc)] == enc:
                out[i + off_size : i + off_size + 4] = size.to_bytes(4, "little")
            start = i + 4
    return bytes(out)


def test_actual_bytes_beyond_declared_size_refused_bounded() -> None:
    data = _patch_declared_size(raw_zip([(f"{PRE}big.go", b"0" * 1_000_000)]), f"{PRE}big.go", 10)
    with pytest.raises(ModuleZipRefused, match=r"more than its declared 10 bytes|Bad CRC") as err:
        check_zip(io.BytesIO(data), P, V)
    assert err.value.entry == f"{PRE}big.go"


def test_fewer_bytes_than_declared_refused() -> None:
    data = _patch_declared_size(raw_zip([(f"{PRE}a.go", b"abc")]), f"{PRE}a.go", 5)
    with pytest.raises(ModuleZipRefused, match=r"holds 3 bytes, not its declared 5|unreadable"):
        check_zip(io.BytesIO(data), P, V)


def test_zip_bomb_refused_from_declared_sizes_before_reading(go_oracle: Oracle, tmp_path: Path) -> None:
    # 300 MiB of zeros twice compress to well under a megabyte: the total declared is past Go's 500 MiB.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name in ("a", "b"):
            info = zipfile.ZipInfo(f"{PRE}{name}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as f:
                for _ in range(300):
                    f.write(bytes(1 << 20))
    data = buf.getvalue()
    assert len(data) < 4 << 20
    with pytest.raises(ModuleZipRefused, match="total uncompressed size") as err:
        check_zip(io.BytesIO(data), P, V)
    assert err.value.entry == f"{PRE}b"
    (tmp_path / "bomb.zip").write_bytes(data)
    assert not go_oracle.one("checkzip", P, V, str(tmp_path / "bomb.zip"))["ok"]


def test_oversize_go_mod_and_license_refused() -> None:
    for name in ("go.mod", "LICENSE"):
        data = _patch_declared_size(raw_zip([(f"{PRE}{name}", b"x")]), f"{PRE}{name}", (16 << 20) + 1)
        with pytest.raises(ModuleZipRefused, match=f"{name} file too large"):
            check_zip(io.BytesIO(data), P, V)


def test_symlink_and_garbage_refused() -> None:
    with pytest.raises(ModuleZipRefused, match="symbolic link"):
        check_zip(io.BytesIO(raw_zip([(f"{PRE}link", b"/etc/passwd")], symlink=[f"{PRE}link"])), P, V)
    with pytest.raises(ModuleZipRefused, match="not a readable zip"):
        check_zip(io.BytesIO(b"PK\x03\x04 not a zip"), P, V)
    big = io.BytesIO()
    big.seek(MAX_ZIP + 1)
    big.write(b"\0")
    with pytest.raises(ModuleZipRefused, match="too large"):
        check_zip(big, P, V)


def test_go_sum_refusals_name_file_and_line(tmp_path: Path) -> None:
    text = "example.com/m v1.0.0 h1:abc=\n\nexample.com/m v1.0.0/go.mod\n"
    with pytest.raises(gosum.GoSumError) as err:
        gosum.parse(text.encode(), "team/go.sum")
    assert (err.value.source, err.value.line) == ("team/go.sum", 3)
    assert str(err.value).startswith("team/go.sum:3: malformed go.sum: wrong number of fields 2")
    # the go command refuses the same file, on the same line
    work = tmp_path / "m"
    work.mkdir()
    (work / "go.mod").write_text("module main.test/m\n\ngo 1.21\n\nrequire example.com/m v1.0.0\n")
    (work / "go.sum").write_text(text)
    done = run_go(["list", "-m", "all"], work, go_env(tmp_path / "home"), check=False)
    assert done.returncode != 0 and "go.sum:3: wrong number of fields 2" in done.stderr
    assert (work / "go.sum").read_text() == text
    old = gosum.parse(f"example.com/x v1.0.0/go.mod {gosum.EMPTY_GO_MOD_H1}\n".encode(), "s")
    assert old.entries == {}
