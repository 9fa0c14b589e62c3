"""`mirrorctl diff` over sets of locks: every profile's lock against a git revision (read with git, nothing
changed), two revisions (A B, A..B, A...B) and two folders, one section per changed profile; how an argument's
kind is told; every refusal exits 2 naming the argument and leaves the repository as it was."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.test_diff import NEW, OLD, cli, npm, pypi, write_lock

OPS = [pypi("six", "1.16.0", "six-1.16.0-py2.py3-none-any.whl", 11_053)]
WEB_OLD = [npm("left-pad", "1.9.0", 2_000), npm("lodash", "4.17.21", 300_000)]
WEB_NEW = [npm("left-pad", "1.10.0", 2_500), npm("lodash", "4.17.21", 300_000), npm("ms", "2.1.3", 6_000)]


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x.example", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x.example", "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under root (the .git folder included) by content: a read-only diff changes none."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: data (OLD), web (WEB_OLD), ops; the working tree then changes data and web, leaves ops."""
    root = tmp_path / "repo"
    (root / "profiles").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write_lock(root / "profiles" / "data.lock", OLD)
    write_lock(root / "profiles" / "web.lock", WEB_OLD)
    write_lock(root / "profiles" / "ops.lock", OPS)
    (root / "profiles" / "data.toml").write_text("# not a lock: ignored\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "locks")
    write_lock(root / "profiles" / "data.lock", NEW)
    write_lock(root / "profiles" / "web.lock", WEB_NEW)
    return root


def test_diff_main_compares_every_profile_in_one_command(repo: Path) -> None:
    before = fingerprint(repo)
    code, out = cli("diff", "main", cwd=repo)
    assert code == 0, out
    assert out.startswith(
        "diff main:profiles/ -> profiles/ (working tree): 2 profiles changed (data, web), 1 unchanged (ops)\n"
    ), out
    assert "== profile data\ndiff main:profiles/data.lock -> " in out
    assert "  ^ requests 2.31.0 -> 2.32.3 (4 files, +12 kB)\n" in out
    assert "== profile web\n" in out and "  + ms 2.1.3 (1 file, +6.0 kB)\n" in out
    assert "== profile ops" not in out
    # Over all profiles a file two profiles share counts once: the left-pad bump of data and web is one file,
    # and six leaves data but stays in ops, so it is not removed from what the mirror carries.
    assert out.endswith("all profiles (shared files once): +741 kB, -602 kB, net +139 kB\n"), out
    assert fingerprint(repo) == before


def test_diff_main_markdown_is_a_pr_body_per_profile(repo: Path) -> None:
    code, out = cli("diff", "main", "--format", "markdown", cwd=repo)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "## Mirror change: `main:profiles/` -> `profiles/ (working tree)`"
    assert lines[2] == "2 profiles changed (data, web), 1 unchanged (ops)"
    assert "### Profile `data`: `main:profiles/data.lock` -> `" in out
    assert "### Profile `web`: " in out and "#### npm" in out
    assert "| upgraded | requests | 2.31.0 | 2.32.3 | 4 | +12 kB |" in lines
    assert "| added | ms |  | 2.1.3 | 1 | +6.0 kB |" in lines
    assert lines[-1] == "**All profiles** (shared files once): +741 kB, -602 kB, net +139 kB"


def test_two_revisions_and_ranges(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "commit", "-q", "-am", "bump")
    before = fingerprint(repo)
    outs = {}
    for args in (("main", "feature"), ("main..feature",), ("main...feature",), ("git:main", "git:feature")):
        code, out = cli("diff", *args, "--format", "json", cwd=repo)
        assert code == 0, (args, out)
        outs[args] = json.loads(out)
    doc = outs[("main", "feature")]
    assert sorted(doc["profiles"]) == ["data", "web"] and doc["unchanged-profiles"] == ["ops"]
    assert doc["profiles"]["web"]["ecosystems"]["npm"]["summary"]["added"] == 1
    assert doc["a"]["label"] == "main:profiles/" and doc["b"]["label"] == "feature:profiles/"
    for args, other in outs.items():
        assert other["profiles"] == {
            name: {**d, "a": other["profiles"][name]["a"], "b": other["profiles"][name]["b"]}
            for name, d in doc["profiles"].items()
        }, args
    assert fingerprint(repo) == before


def test_a_profile_only_on_one_side_is_all_added(repo: Path) -> None:
    write_lock(repo / "profiles" / "ml.lock", OPS)
    code, out = cli("diff", "main", cwd=repo)
    assert code == 0, out
    assert "3 profiles changed (data, ml, web)" in out
    assert "diff ml.lock absent in main:profiles/ -> profiles/ml.lock\n" in out and "  + six 1.16.0" in out


def test_two_folders(tmp_path: Path) -> None:
    for folder, data in (("old", OLD), ("new", NEW)):
        (tmp_path / folder).mkdir()
        write_lock(tmp_path / folder / "data.lock", data)
        write_lock(tmp_path / folder / "ops.lock", OPS)
    before = fingerprint(tmp_path)
    code, out = cli("diff", "old", "new/", cwd=tmp_path)  # no git repository needed
    assert code == 0, out
    assert out.startswith("diff old/ -> new/: 1 profile changed (data), 1 unchanged (ops)\n"), out
    assert "diff old/data.lock -> new/data.lock\n" in out and "  - six 1.16.0 (1 file, -11 kB)\n" in out
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("nope",), "nope: 'nope' is not a git revision of "),
        (("main..nope",), "main..nope: 'nope' is not a git revision of "),
        (("nope", "main"), "nope: 'nope' is not a git revision of "),
        (("main", "profiles/web.lock"), "main is a set of locks (a folder or a git revision) but profiles/web.lock"),
        (("profiles",), "diff profiles: alone, A is a git revision"),
        (("git:main~5",), "git:main~5: 'main~5' is not a git revision"),
        (("profiles/ops.lock", "typo"), "typo: 'typo' is not a git revision of "),
    ],
)
def test_refusals_name_the_argument_and_change_nothing(repo: Path, args: tuple[str, ...], expected: str) -> None:
    before = fingerprint(repo)
    code, out = cli("diff", *args, cwd=repo)
    assert code == 2, out
    assert expected in " ".join(out.split()), out
    assert "Traceback" not in out
    assert fingerprint(repo) == before


def test_a_folder_named_like_a_revision_is_refused_until_said_which(repo: Path) -> None:
    (repo / "main").mkdir()
    write_lock(repo / "main" / "data.lock", NEW)
    before = fingerprint(repo)
    code, out = cli("diff", "main", "profiles", cwd=repo)
    assert code == 2 and "main: both a folder and a git revision" in out and "./main" in out, out
    assert fingerprint(repo) == before
    code, out = cli("diff", "./main", "profiles", cwd=repo)
    assert code == 0 and out.startswith("diff ./main/ -> profiles/: 2 profiles changed (ops, web), 1 unchanged"), out
    code, out = cli("diff", "git:main", "profiles", cwd=repo)
    assert code == 0 and "2 profiles changed (data, web)" in out, out


def test_a_revision_outside_a_git_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    code, out = cli("diff", "main", cwd=tmp_path)
    assert code == 2 and "main: not a file or folder" in out and "not in a git repository" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles"]


def test_single_sides_keep_working_beside_sets(repo: Path) -> None:
    code, out = cli("diff", "profiles/ops.lock", "profiles/data.lock", cwd=repo)
    assert code == 0 and out.startswith("diff profiles/ops.lock -> profiles/data.lock\n"), out


def test_snapshot_diffs_name_the_profile_and_target_of_each_change(tmp_path: Path) -> None:
    """Two profiles in each snapshot, their locks kept in the store as blobs (as an import keeps them)."""
    from mirrorctl.inside.store import Store, View
    from mirrorctl.lockfile import merge_artifacts

    (tmp_path / "mirrorctl.toml").write_text('[store]\npath = "store"\n')
    store = Store(tmp_path / "store")
    for seq, (data, web) in enumerate(((OLD, WEB_OLD), (NEW, WEB_NEW)), start=1):
        shas = {}
        for name, arts in (("data", data), ("web", web)):
            text = write_lock(tmp_path / f"{name}-{seq}.lock", arts).read_bytes()
            sha = hashlib.sha256(text).hexdigest()
            store.blob_path(sha).parent.mkdir(parents=True, exist_ok=True)
            store.blob_path(sha).write_bytes(text)
            shas[name] = sha
        merged = tuple(merge_artifacts([data, web]))
        store.write_view(View(f"v{seq}", f"b-{seq}", seq, "lineage", "2026-03-01T12:00:00Z", shas, merged))
    code, out = cli("diff", "view:v1", "view:v2", cwd=tmp_path)
    assert code == 0, out
    assert "  + ms 2.1.3 (1 file, +6.0 kB) [profile web; target linux-x64]\n" in out
    assert "  ^ left-pad 1.9.0 -> 1.10.0 (1 file, +500 B) [profiles data, web; target linux-x64]\n" in out
    assert "  - six 1.16.0 (1 file, -11 kB) [profile data; target py3.11-manylinux_2_28_x86_64]\n" in out
    code, out = cli("diff", "view:v1", "view:v2", "--format", "markdown", cwd=tmp_path)
    assert "| change | name | from | to | profile | target | files | size |" in out
    assert "| added | ms |  | 2.1.3 | web | linux-x64 | 1 | +6.0 kB |" in out.splitlines()
    code, out = cli("diff", "view:v1", "view:v2", "--format", "json", cwd=tmp_path)
    npm_changes = json.loads(out)["ecosystems"]["npm"]["changes"]
    assert {c["name"]: c["profiles"] for c in npm_changes} == {"ms": ["web"], "left-pad": ["data", "web"]}
