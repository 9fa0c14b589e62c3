"""The publish service with a fake target: what is chosen, that nothing is sent from a damaged store, and the
local journal that serves as history for targets without versions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from mirrorctl.config import Settings
from mirrorctl.errors import IntegrityError, TargetError, UserError
from mirrorctl.inside.publish import history, publish, read_journal, rollback
from mirrorctl.inside.store import Store, View
from mirrorctl.lockfile import Artifact, Lock, dump_lock
from mirrorctl.progress import SILENT, Progress, ProgressTask
from mirrorctl.targets.base import PublishedVersion, PublishResult, TargetCheck

from .fixtures.store_content import put_blob, wheel_artifact
from .fixtures.wheels import Dist


class FakeTarget:
    kind = "fake"
    name = "fake"
    ecosystems = frozenset({"pypi"})

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = fail

    async def check(self) -> TargetCheck:
        return TargetCheck(True, True, "1.0", {"fake": "1.0"})

    async def publish(
        self, ecosystem: str, artifacts: Sequence[Artifact], store: Store, progress: Progress
    ) -> PublishResult:
        self.calls.append((ecosystem, sorted(a.filename for a in artifacts)))
        if self.fail:
            raise TargetError(self.fail)
        return PublishResult(ecosystem, "team/index", len(artifacts), 0, 0, None, True, "http://fake/simple/")

    async def history(self, ecosystem: str) -> list[PublishedVersion]:
        return []

    async def rollback(self, ecosystem: str, version: int) -> PublishedVersion:
        raise TargetError("fake keeps no versions")

    def endpoint(self, ecosystem: str) -> str:
        return "http://fake/simple/"

    async def trust_files(self, ecosystem: str) -> dict[str, str]:
        return {}


def _settings(store: Store) -> Settings:
    return Settings(None, store.root, store.root.parent / "profiles")


def _lock_blob(store: Store, profile: str, arts: Sequence[Artifact]) -> str:
    text = dump_lock(Lock(profile, "sha256:" + "0" * 64, (), tuple(arts)), source=f"profiles/{profile}.toml")
    sha, _ = put_blob(store, text.encode())
    return sha


@pytest.fixture
def two_profiles(tmp_path: Path) -> tuple[Store, dict[str, Artifact]]:
    """A view of profiles web (alpha, shared) and data (beta, shared), with their locks as blobs."""
    store = Store(tmp_path / "store")
    build = tmp_path / "build"
    arts = {
        d.name: wheel_artifact(store, d, build)
        for d in (Dist("alpha", "1.0"), Dist("beta", "2.0"), Dist("shared", "3.0"))
    }
    npm_sha, npm_size = put_blob(store, b"npm tarball")
    other = Artifact("npm", "left-pad", "1.3.0", "left-pad-1.3.0.tgz", npm_size, npm_sha)
    arts["left-pad"] = other
    view = View(
        view_id=Store.new_view_id(1),
        bundle_id="bundle-1",
        sequence=1,
        lineage="lin",
        created="2026-01-01T00:00:00Z",
        profiles={
            "web": _lock_blob(store, "web", [arts["alpha"], arts["shared"], other]),
            "data": _lock_blob(store, "data", [arts["beta"], arts["shared"]]),
        },
        artifacts=tuple(arts.values()),
    )
    store.write_view(view)
    store.switch_current(view.view_id)
    return store, arts


async def test_nothing_imported_is_refused_and_nothing_sent(tmp_path: Path) -> None:
    store, target = Store(tmp_path / "store"), FakeTarget()
    with pytest.raises(UserError, match="nothing imported yet") as info:
        await publish(_settings(store), store, target, None, SILENT)
    assert "mirrorctl import" in (info.value.hint or "")
    assert target.calls == [] and read_journal(store, "fake") == []


async def test_all_profiles_by_default_only_supported_ecosystems(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, arts = two_profiles
    target = FakeTarget()
    notes: list[str] = []

    class Notes:
        def task(self, description: str, total: float | None = None, *, unit: str = "") -> ProgressTask:
            return SILENT.task(description, total, unit=unit)

        def note(self, message: str) -> None:
            notes.append(message)

    results = await publish(_settings(store), store, target, None, Notes())
    assert [r.uploaded for r in results] == [3]
    assert target.calls == [("pypi", sorted(arts[n].filename for n in ("alpha", "beta", "shared")))]
    assert any("cannot take npm" in n and "1 artifact" in n for n in notes), notes


async def test_named_profiles_filter_through_their_locks(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, arts = two_profiles
    target = FakeTarget()
    await publish(_settings(store), store, target, ["data"], SILENT)
    assert target.calls == [("pypi", sorted([arts["beta"].filename, arts["shared"].filename]))]


async def test_unknown_profile_is_refused_naming_it_and_those_present(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = FakeTarget()
    with pytest.raises(UserError, match=r"no profile 'nope'.*profiles present: data, web"):
        await publish(_settings(store), store, target, ["web", "nope"], SILENT)
    assert target.calls == [] and read_journal(store, "fake") == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
async def test_a_damaged_blob_refuses_the_whole_publish_before_anything_is_sent(
    two_profiles: tuple[Store, dict[str, Artifact]], damage: str
) -> None:
    store, arts = two_profiles
    victim = arts["shared"]
    path = store.blob_path(victim.sha256)
    data = path.read_bytes()
    if damage == "flip":
        path.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    elif damage == "truncate":
        path.write_bytes(data[:-1])
    else:
        path.unlink()
    target = FakeTarget()
    with pytest.raises(IntegrityError, match="nothing was published") as info:
        await publish(_settings(store), store, target, ["web"], SILENT)
    message = str(info.value)
    assert victim.filename in message and victim.sha256 in message
    assert {"flip": "sha256 ", "truncate": "size ", "delete": "missing"}[damage] in message
    assert arts["alpha"].filename not in message
    assert target.calls == [] and read_journal(store, "fake") == []


async def test_a_damaged_companion_refuses_too(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, arts = two_profiles
    companion = arts["alpha"].companions[0]
    store.blob_path(companion.sha256).write_bytes(b"x" * companion.size)
    target = FakeTarget()
    with pytest.raises(IntegrityError, match=arts["alpha"].filename + ".metadata"):
        await publish(_settings(store), store, target, None, SILENT)
    assert target.calls == []


async def test_a_damaged_lock_blob_is_refused(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, _ = two_profiles
    view = store.current_view()
    assert view is not None
    store.blob_path(view.profiles["data"]).write_text("tampered")
    target = FakeTarget()
    with pytest.raises(IntegrityError, match="lock of profile 'data'"):
        await publish(_settings(store), store, target, ["data"], SILENT)
    assert target.calls == []


async def test_journal_records_each_publish_and_is_the_history(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, _ = two_profiles
    target = FakeTarget()
    await publish(_settings(store), store, target, ["web"], SILENT, target_name="internal")
    await publish(_settings(store), store, target, None, SILENT, target_name="internal")
    entries = read_journal(store, "internal")
    view = store.current_view()
    assert view is not None
    assert [e.number for e in entries] == [1, 2]
    first = entries[0]
    assert (first.action, first.view_id, first.bundle_id, first.profiles, first.ok) == (
        "publish",
        view.view_id,
        "bundle-1",
        ("web",),
        True,
    )
    assert first.who and first.when.endswith("Z")
    assert first.results["pypi"]["uploaded"] == 2 and first.results["pypi"]["repository"] == "team/index"
    assert entries[1].profiles == ("data", "web")
    assert (store.root / "state" / "publish-internal.json").is_file()

    versions = await history(store, target, "pypi", target_name="internal")
    assert [(v.version, v.artifacts, v.served) for v in versions] == [(1, 2, False), (2, 3, True)]
    assert versions[0].details["view"] == view.view_id


async def test_a_failing_target_is_journaled_and_the_error_raised(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = FakeTarget(fail="server said no")
    with pytest.raises(TargetError, match="server said no"):
        await publish(_settings(store), store, target, None, SILENT)
    [entry] = read_journal(store, "fake")
    assert not entry.ok and entry.results["pypi"]["error"] == "server said no"


async def test_rollback_and_history_refuse_an_ecosystem_the_target_does_not_take(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    with pytest.raises(UserError, match="--ecosystem npm"):
        await history(store, FakeTarget(), "npm")
    with pytest.raises(TargetError, match="no versions"):
        await rollback(store, FakeTarget(), "pypi", 1)
    assert read_journal(store, "fake") == []


def test_lock_blob_digest_matches_view(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, _ = two_profiles
    view = store.current_view()
    assert view is not None
    for sha in view.profiles.values():
        assert hashlib.sha256(store.blob_path(sha).read_bytes()).hexdigest() == sha
