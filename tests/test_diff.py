"""`mirrorctl diff A B`: locks, verified bundles and store views compared per ecosystem, in three formats;
every refusal exits 2 naming the side and changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.config import Settings, load_settings
from mirrorctl.diff import Diff, compute_diff, human_size, load_side, render_markdown, render_text
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.inside.store import Store, View
from mirrorctl.lockfile import Artifact, Companion, Lock, dump_lock
from mirrorctl.runtime import Runtime
from tests.fixtures.bundles import World, fingerprint, make_lock, make_world, read_members, write_members
from tests.fixtures.mixed_bundles import (
    APT_BASE_NEW,
    APT_BASE_OLD,
    BUMPED,
    FULL,
    NPM_LEFT_NEW,
    NPM_LEFT_OLD,
    mixed_world,
)

TARGET = "py3.11-manylinux_2_28_x86_64"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_11_0_arm64", "win_amd64")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pypi(name: str, version: str, filename: str, size: int, *, meta: int = 0) -> Artifact:
    companions = (Companion(".metadata", meta, sha(filename + ".metadata")),) if meta else ()
    return Artifact("pypi", name, version, filename, size, sha(filename), (TARGET,), companions=companions)


def npm(name: str, version: str, size: int) -> Artifact:
    return Artifact("npm", name, version, f"{name}-{version}.tgz", size, sha(f"npm/{name}-{version}"), ("linux-x64",))


def requests_wheels(version: str, size: int) -> list[Artifact]:
    return [
        pypi("requests", version, f"requests-{version}-cp311-cp311-{p}.whl", size) for p in PLATFORMS
    ]


OLD = [
    *requests_wheels("2.31.0", 100_000),
    pypi("six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl", 11_053),
    pypi("idna", "3.10", "idna-3.10-py3-none-any.whl", 70_442, meta=1_000),
    pypi("Chardet", "5.10.0", "chardet-5.10.0-py3-none-any.whl", 200_000),
    npm("left-pad", "1.9.0", 2_000),
    npm("lodash", "4.17.21", 300_000),
]
NEW = [
    *requests_wheels("2.32.3", 103_000),
    pypi("idna", "3.10", "idna-3.10-py3-none-any.whl", 70_442, meta=1_000),
    pypi("urllib3", "2.2.2", "urllib3-2.2.2-py3-none-any.whl", 121_000, meta=500),
    pypi("chardet", "5.9.0", "chardet-5.9.0-py3-none-any.whl", 199_000),
    npm("left-pad", "1.10.0", 2_500),
    npm("lodash", "4.17.21", 300_000),
]


def write_lock(path: Path, artifacts: list[Artifact]) -> Path:
    lock = Lock(path.stem, "sha256:" + "0" * 64, (f"pypi:{TARGET}", "npm:linux-x64"), tuple(artifacts))
    path.write_text(dump_lock(lock, source=f"profiles/{path.stem}.toml"))
    return path


def cli(*args: str, cwd: Path) -> tuple[int, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output


@pytest.fixture
def locks(tmp_path: Path) -> tuple[Path, Path]:
    return write_lock(tmp_path / "old.lock", OLD), write_lock(tmp_path / "new.lock", NEW)


def test_locks_text(locks: tuple[Path, Path], tmp_path: Path) -> None:
    code, out = cli("diff", "old.lock", "new.lock", cwd=tmp_path)
    assert code == 0, out
    assert out == (
        "diff old.lock -> new.lock\n"
        "npm: 0 added, 0 removed, 1 upgraded, 0 downgraded, 0 changed, 1 unchanged; +2.5 kB, -2.0 kB, net +500 B\n"
        "  ^ left-pad 1.9.0 -> 1.10.0 (1 file, +500 B)\n"
        "pypi: 1 added, 1 removed, 1 upgraded, 1 downgraded, 0 changed, 1 unchanged; "
        "+732 kB, -611 kB, net +121 kB\n"
        "  + urllib3 2.2.2 (1 file, +122 kB)\n"
        "  - six 1.16.0 (1 file, -11 kB)\n"
        "  ^ requests 2.31.0 -> 2.32.3 (4 files, +12 kB)\n"
        "  v chardet 5.10.0 -> 5.9.0 (1 file, -1.0 kB)\n"
        "total: +735 kB, -613 kB, net +122 kB\n"
    )


def test_locks_markdown_exact(locks: tuple[Path, Path], tmp_path: Path) -> None:
    code, out = cli("diff", "old.lock", "new.lock", "--format", "markdown", cwd=tmp_path)
    assert code == 0, out
    assert out == (
        "## Mirror change: `old.lock` -> `new.lock`\n"
        "\n"
        "### npm\n"
        "\n"
        "0 added, 0 removed, 1 upgraded, 0 downgraded, 0 changed, 1 unchanged; +2.5 kB, -2.0 kB, net +500 B\n"
        "\n"
        "| change | name | from | to | files | size |\n"
        "|---|---|---|---|--:|--:|\n"
        "| upgraded | left-pad | 1.9.0 | 1.10.0 | 1 | +500 B |\n"
        "\n"
        "### pypi\n"
        "\n"
        "1 added, 1 removed, 1 upgraded, 1 downgraded, 0 changed, 1 unchanged; +732 kB, -611 kB, net +121 kB\n"
        "\n"
        "| change | name | from | to | files | size |\n"
        "|---|---|---|---|--:|--:|\n"
        "| added | urllib3 |  | 2.2.2 | 1 | +122 kB |\n"
        "| removed | six | 1.16.0 |  | 1 | -11 kB |\n"
        "| upgraded | requests | 2.31.0 | 2.32.3 | 4 | +12 kB |\n"
        "| downgraded | chardet | 5.10.0 | 5.9.0 | 1 | -1.0 kB |\n"
        "\n"
        "**Total:** +735 kB added, 613 kB removed, net +122 kB\n"
    )


def test_locks_json(locks: tuple[Path, Path], tmp_path: Path) -> None:
    code, out = cli("diff", "old.lock", "new.lock", "--format", "json", cwd=tmp_path)
    assert code == 0, out
    doc = json.loads(out)
    pypi_eco = doc["ecosystems"]["pypi"]
    assert pypi_eco["summary"] == {
        "added": 1, "removed": 1, "upgraded": 1, "downgraded": 1, "changed": 0, "unchanged": 1,
        "bytes-added": 4 * 103_000 + 121_500 + 199_000,
        "bytes-removed": 4 * 100_000 + 11_053 + 200_000,
        "bytes-net": 4 * 3_000 + 121_500 - 11_053 - 1_000,
    }
    req = next(c for c in pypi_eco["changes"] if c["name"] == "requests")
    assert req == {
        "ecosystem": "pypi", "name": "requests", "kind": "upgraded", "old-versions": ["2.31.0"],
        "new-versions": ["2.32.3"], "files": 4, "bytes-added": 412_000, "bytes-removed": 400_000,
        "bytes-net": 12_000,
    }
    assert [c["kind"] for c in doc["ecosystems"]["npm"]["changes"]] == ["upgraded"]
    assert doc["a"] == {"spec": "old.lock", "kind": "lock", "label": "old.lock"}
    # Deterministic: the same input gives the same bytes.
    assert cli("diff", "old.lock", "new.lock", "--format", "json", cwd=tmp_path)[1] == out


def test_same_lock_is_no_change(locks: tuple[Path, Path], tmp_path: Path) -> None:
    code, out = cli("diff", "new.lock", "new.lock", cwd=tmp_path)
    assert code == 0
    assert "pypi: 0 added, 0 removed, 0 upgraded, 0 downgraded, 0 changed, 4 unchanged" in out
    assert "total: +0 B, -0 B, net +0 B" in out


def test_same_version_other_files_is_changed(tmp_path: Path) -> None:
    extra = pypi("requests", "2.31.0", "requests-2.31.0-py3-none-any.whl", 50_000)
    write_lock(tmp_path / "a.lock", requests_wheels("2.31.0", 100_000))
    write_lock(tmp_path / "b.lock", [*requests_wheels("2.31.0", 100_000), extra])
    d = _diff_locks(tmp_path)
    (change,) = d.ecosystems[0].changes
    assert (change.kind, change.files, change.net) == ("changed", 5, 50_000)


def test_unknown_ecosystem_order_is_changed_not_guessed(tmp_path: Path) -> None:
    def go(v: str) -> Artifact:
        # an ecosystem no installation registers, so diff has no version order for it
        return Artifact("unregistered-eco", "example.test/mod", v, f"mod-{v}.zip", 10, sha(v))

    write_lock(tmp_path / "a.lock", [go("v1.2.0")])
    write_lock(tmp_path / "b.lock", [go("v1.10.0")])
    d = _diff_locks(tmp_path)
    assert d.ecosystems[0].changes[0].kind == "changed"


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 999, 1_000, 12_345, 3_400_000)] == ["0 B", "999 B", "1.0 kB", "12 kB", "3.4 MB"]
    assert human_size(-1_500, signed=True) == "-1.5 kB" and human_size(0, signed=True) == "+0 B"


class _NoSettings(Runtime):
    @property
    def settings(self) -> Settings:  # type: ignore[override]
        raise AssertionError("a lock side must not read settings")


def _diff_locks(tmp_path: Path) -> Diff:
    old, new = (load_side(str(tmp_path / name), _NoSettings()) for name in ("a.lock", "b.lock"))
    return compute_diff(old, new, load_ecosystems())


# --- bundles ---------------------------------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path / "w")
    w.locks = [make_lock("web", w.artifacts)]
    (tmp_path / "mirrorctl.toml").write_text(
        f'[store]\npath = "inside"\n[trust]\nkeys = ["{w.key.public_path}"]\n'
    )
    write_lock(tmp_path / "old.lock", w.artifacts[:1])
    return w


def test_bundle_side_verified(world: World, tmp_path: Path) -> None:
    bundle = world.export("web.bundle")
    code, out = cli("diff", "old.lock", str(bundle), "--format", "json", cwd=tmp_path)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["b"]["kind"] == "bundle"
    added = [c["name"] for c in doc["ecosystems"]["pypi"]["changes"] if c["kind"] == "added"]
    assert added == ["beta", "gamma"] and doc["ecosystems"]["pypi"]["summary"]["unchanged"] == 1


def test_tampered_bundle_refused(world: World, tmp_path: Path) -> None:
    bundle = world.export("web.bundle")
    members = read_members(bundle)
    i = next(i for i, (m, _) in enumerate(members) if m.name.startswith("blobs/"))
    info, data = members[i]
    members[i] = (info, bytes([data[0] ^ 1]) + data[1:])
    write_members(bundle, members)
    before, store_before = bundle.read_bytes(), fingerprint(world.inside)
    code, out = cli("diff", "old.lock", str(bundle), cwd=tmp_path)
    assert code == 2, out
    assert str(bundle) in out.replace("\n", "") and "does not match its sha256" in out.replace("\n", "")
    assert "diff" not in out.split("error:")[0]  # nothing was rendered before the refusal
    assert bundle.read_bytes() == before and fingerprint(world.inside) == store_before


def test_bundle_without_trusted_keys_refused(world: World, tmp_path: Path) -> None:
    bundle = world.export("web.bundle")
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    code, out = cli("diff", "old.lock", str(bundle), cwd=tmp_path)
    flat = out.replace("\n", "")
    assert code == 2 and str(bundle) in flat and "no trusted keys configured" in flat and "[trust] keys" in flat
    assert "beta" not in flat  # the unverified content is not shown


def test_bundle_signed_by_other_key_refused(world: World, tmp_path: Path) -> None:
    from mirrorctl.crossing.signing import generate_key

    other = generate_key(tmp_path / "other.key")
    (tmp_path / "mirrorctl.toml").write_text(f'[store]\npath = "inside"\n[trust]\nkeys = ["{other.public_path}"]\n')
    bundle = world.export("web.bundle")
    code, out = cli("diff", str(bundle), "old.lock", cwd=tmp_path)
    assert code == 2 and "unknown key" in out.replace("\n", "")


# --- views -----------------------------------------------------------------------------------------------------
def _view(store: Store, view_id: str, artifacts: list[Artifact], seq: int) -> None:
    created = "2026-03-01T12:00:00Z"
    store.write_view(View(view_id, f"bundle-{seq}", seq, "lineage", created, {"web": "x"}, tuple(artifacts)))


def test_views_and_current(tmp_path: Path) -> None:
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    store = Store(tmp_path / "store")
    _view(store, "v1", OLD, 1)
    _view(store, "v2", NEW, 2)
    store.switch_current("v2")
    code, out = cli("diff", "view:v1", "current", cwd=tmp_path)
    assert code == 0, out
    assert out.startswith("diff view:v1 -> current (view:v2)\n")
    # A view holds several profiles: its changes carry the target column (issue 13 item 10); these views were
    # written without their locks in the store, so no profile is named.
    assert f"  ^ requests 2.31.0 -> 2.32.3 (4 files, +12 kB) [target {TARGET}]\n" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("missing.lock", "new.lock"), "missing.lock: file not found"),
        (("old.lock", "gone.bundle"), "gone.bundle: file not found"),
        (("old.lock", "notes.txt"), "notes.txt: unknown kind of diff side"),
        (("old.lock", "view:../../etc"), "view:../../etc: not a view id"),
        (("view:nope", "old.lock"), "view.json: view not found"),
        (("current", "old.lock"), "serves no view yet"),
        (("broken.lock", "old.lock"), "broken.lock: lock is not valid TOML"),
    ],
)
def test_refusals_exit_2(locks: tuple[Path, Path], tmp_path: Path, args: tuple[str, str], expected: str) -> None:
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.lock").write_text("not = [toml")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out = cli("diff", *args, cwd=tmp_path)
    assert code == 2, out
    assert expected in out.replace("\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a store


def test_help_has_example() -> None:
    result = CliRunner().invoke(app, ["diff", "--help"])
    assert result.exit_code == 0 and "Example: mirrorctl diff" in result.output


# --- apt: versions ordered as dpkg orders them (python-debian), epochs and tildes included ----------------------
def apt(name: str, version: str, size: int, arch: str = "amd64") -> Artifact:
    fname = f"{name}_{version.split(':')[-1]}_{arch}.deb"
    attrs: dict[str, str | int | bool] = {
        "architecture": arch, "suite": "bookworm", "component": "main", "pool": f"pool/main/{name[0]}/{name}/{fname}",
    }
    return Artifact("apt", name, version, fname, size, sha(f"apt/{name}/{version}/{arch}"), (arch,), attrs)


APT_OLD = [
    apt("mctl-epoch", "3.0-1", 10_000),  # -> 1:2.0-1: the epoch wins although 2.0 < 3.0
    apt("mctl-rc", "1.0~rc1-1", 5_000),  # -> 1.0-1: a tilde sorts before the release
    apt("mctl-back", "2.0-1", 4_000),  # -> 2.0~beta-1: a tilde is lower, so this is a downgrade
    apt("mctl-multi", "1.2-1", 1_000),  # two architectures, bumped together: one change of two files
    apt("mctl-multi", "1.2-1", 1_000, "arm64"),
    apt("mctl-same", "7.88.1-10+deb12u5", 300_000),
]
APT_NEW = [
    apt("mctl-epoch", "1:2.0-1", 11_000),
    apt("mctl-rc", "1.0-1", 5_500),
    apt("mctl-back", "2.0~beta-1", 3_900),
    apt("mctl-multi", "1.10-1", 1_200),
    apt("mctl-multi", "1.10-1", 1_200, "arm64"),
    apt("mctl-same", "7.88.1-10+deb12u5", 300_000),
]


def test_apt_rules_follow_dpkg_order() -> None:
    from mirrorctl.diff import rules_for

    cmp = rules_for("apt", load_ecosystems()).compare
    assert cmp("1:2.0", "3.0") == 1 and cmp("3.0", "1:2.0") == -1
    assert cmp("1.0~rc1", "1.0") == -1 and cmp("1.0", "1.0~rc1") == 1
    assert cmp("1.10-1", "1.9-1") == 1  # not a string order
    assert cmp("1.0-1", "1.0-1") == 0
    assert cmp("not a version!", "1.0") is None  # unparseable: "changed", never a guess


def test_apt_locks_text(tmp_path: Path) -> None:
    write_lock(tmp_path / "old.lock", APT_OLD)
    write_lock(tmp_path / "new.lock", APT_NEW)
    code, out = cli("diff", "old.lock", "new.lock", cwd=tmp_path)
    assert code == 0, out
    assert out == (
        "diff old.lock -> new.lock\n"
        "apt: 0 added, 0 removed, 3 upgraded, 1 downgraded, 0 changed, 1 unchanged; +23 kB, -21 kB, net +1.8 kB\n"
        "  ^ mctl-epoch 3.0-1 -> 1:2.0-1 (1 file, +1.0 kB)\n"
        "  ^ mctl-multi 1.2-1 -> 1.10-1 (2 files, +400 B)\n"
        "  ^ mctl-rc 1.0~rc1-1 -> 1.0-1 (1 file, +500 B)\n"
        "  v mctl-back 2.0-1 -> 2.0~beta-1 (1 file, -100 B)\n"
        "total: +23 kB, -21 kB, net +1.8 kB\n"
    )


def test_apt_locks_markdown(tmp_path: Path) -> None:
    write_lock(tmp_path / "old.lock", APT_OLD)
    write_lock(tmp_path / "new.lock", APT_NEW)
    code, out = cli("diff", "old.lock", "new.lock", "--format", "markdown", cwd=tmp_path)
    assert code == 0, out
    assert out == (
        "## Mirror change: `old.lock` -> `new.lock`\n"
        "\n"
        "### apt\n"
        "\n"
        "0 added, 0 removed, 3 upgraded, 1 downgraded, 0 changed, 1 unchanged; +23 kB, -21 kB, net +1.8 kB\n"
        "\n"
        "| change | name | from | to | files | size |\n"
        "|---|---|---|---|--:|--:|\n"
        "| upgraded | mctl-epoch | 3.0-1 | 1:2.0-1 | 1 | +1.0 kB |\n"
        "| upgraded | mctl-multi | 1.2-1 | 1.10-1 | 2 | +400 B |\n"
        "| upgraded | mctl-rc | 1.0~rc1-1 | 1.0-1 | 1 | +500 B |\n"
        "| downgraded | mctl-back | 2.0-1 | 2.0~beta-1 | 1 | -100 B |\n"
        "\n"
        "**Total:** +23 kB added, 21 kB removed, net +1.8 kB\n"
    )


# --- a full bundle against a delta bundle: the delta's locks are rebuilt from the inside's copies ----------------
def test_full_bundle_against_delta_bundle_shows_the_bumps_with_sizes(tmp_path: Path) -> None:
    w = mixed_world(tmp_path)
    w.set_profile(FULL)
    full, delta, state = tmp_path / "full.bundle", tmp_path / "delta.bundle", tmp_path / "inside.state"
    w.cli("outside", "bundle", "export", "--out", str(full))
    w.cli("inside", "import", str(full))
    w.cli("inside", "state", "export", "--out", str(state))
    w.set_profile(BUMPED)
    w.cli("outside", "bundle", "export", "--since", str(state), "--out", str(delta))
    settings = load_settings(w.config("inside"), ecosystems=load_ecosystems())
    rt = Runtime.for_settings(settings)
    d = compute_diff(load_side(str(full), rt), load_side(str(delta), rt), load_ecosystems())
    assert d.b.kind == "bundle"
    by_eco = {e.ecosystem: e for e in d.ecosystems}
    assert (by_eco["pypi"].changes, by_eco["pypi"].unchanged) == ((), 1)
    for eco, old_key, new_key in (("apt", APT_BASE_OLD, APT_BASE_NEW), ("npm", NPM_LEFT_OLD, NPM_LEFT_NEW)):
        old, new = w.arts[old_key], w.arts[new_key]
        (change,) = by_eco[eco].changes
        assert (change.name, change.kind, change.old_versions, change.new_versions, change.files) == (
            old.name, "upgraded", (old.version,), (new.version,), 1
        )
        assert (change.bytes_added, change.bytes_removed) == (new.size, old.size)  # the delta holds only new
        assert by_eco[eco].unchanged == 1
        net = human_size(new.size - old.size, signed=True)
        # Bundle diffs carry the profile and target columns (issue 13 item 10).
        assert change.profiles == ("team",) and change.targets == tuple(sorted(set(old.targets) | set(new.targets)))
        targets = ", ".join(change.targets)
        line = f"  ^ {old.name} {old.version} -> {new.version} (1 file, {net}) [profile team; target {targets}]"
        assert line in render_text(d).splitlines()
        row = f"| upgraded | {old.name} | {old.version} | {new.version} | team | {targets} | 1 | {net} |"
        assert row in render_markdown(d).splitlines()


def test_delta_bundle_without_its_base_in_the_store_refused(tmp_path: Path) -> None:
    w = mixed_world(tmp_path)
    w.set_profile(FULL)
    full, delta, state = tmp_path / "full.bundle", tmp_path / "delta.bundle", tmp_path / "inside.state"
    w.cli("outside", "bundle", "export", "--out", str(full))
    w.cli("inside", "import", str(full))
    w.cli("inside", "state", "export", "--out", str(state))
    w.set_profile(BUMPED)
    w.cli("outside", "bundle", "export", "--since", str(state), "--out", str(delta))
    # Another inside that trusts the key but never imported the base: the delta's locks cannot be rebuilt.
    other = tmp_path / "other"
    other.mkdir()
    (other / "mirrorctl.toml").write_text(
        w.config("inside").read_text().replace('path = "s"', f'path = "{other / "store"}"')
    )
    code, out = cli("--config", str(other / "mirrorctl.toml"), "diff", str(full), str(delta), cwd=other)
    flat = out.replace("\n", "")
    assert code == 2 and str(delta) in flat, out
    assert "locks/team.lock travels as a line delta" in flat and "which is not in this store" in flat
    assert "mctl-libbase" not in flat  # nothing of the unverifiable delta is shown
    assert sorted(p.name for p in other.iterdir()) == ["mirrorctl.toml"]  # diff reads only: no store made


# --- chunked bundles and channels ------------------------------------------------------------------------------
def test_chunked_bundle_side_from_two_folders_and_a_missing_part_named(world: World, tmp_path: Path) -> None:
    whole = world.export("whole.bundle")
    world.export("web.bundle", chunk_size=4096)
    parts = sorted(world.root.glob("web.bundle.part[0-9]*"))
    assert len(parts) >= 3
    other = tmp_path / "usb-b"
    other.mkdir()
    for part in parts[1::2]:
        part.rename(other / part.name)
    index = world.root / "web.bundle.parts.json"
    code, out = cli("diff", str(whole), str(index), "--from", str(other), "--format", "json", cwd=tmp_path)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["b"]["kind"] == "bundle"
    assert doc["ecosystems"]["pypi"]["summary"]["unchanged"] == len({a.name for a in world.artifacts})
    code, out = cli("diff", "old.lock", str(index), cwd=tmp_path)  # the parts in usb-b are not looked for
    flat = out.replace("\n", "")
    assert code == 2 and parts[1].name in flat and "missing" in flat, out


def test_channel_sides(tmp_path: Path) -> None:
    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    store = Store(tmp_path / "store")
    _view(store, "v1", OLD, 1)
    _view(store, "v2", NEW, 2)
    store.switch_channel("prod", "v1")
    store.switch_channel("staging", "v2")
    code, out = cli("diff", "channel:prod", "channel:staging", cwd=tmp_path)
    assert code == 0, out
    assert out.startswith("diff channel:prod (view:v1) -> channel:staging (view:v2)\n")
    assert f"  ^ requests 2.31.0 -> 2.32.3 (4 files, +12 kB) [target {TARGET}]\n" in out  # views: target column
    code, out = cli("diff", "channel:prod", "channel:nope", cwd=tmp_path)
    flat = out.replace("\n", "")
    assert code == 2 and "channel:nope" in flat and "no channel 'nope'" in flat and "prod" in flat, out


def test_the_parts_index_suffix_is_the_one_chunks_writes() -> None:
    from mirrorctl import diff
    from mirrorctl.crossing.bundle.chunks import INDEX_SUFFIX

    # diff keeps its own copy so a lock-only diff skips mirrorctl.crossing.bundle
    assert diff._INDEX_SUFFIX == INDEX_SUFFIX
