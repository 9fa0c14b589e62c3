"""Publish events with a fake target that keeps versions per repository, as Pulp does: a publish is one recorded
event across its repositories, `history` lists the events, `rollback --publish N` serves all of N's versions
again together, and every refusal or failure leaves what is served (and the journal) as it was."""

# ruff: noqa: F811  (the two_profiles fixture is imported by name and taken as a parameter)
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli import cmd_publish
from mirrorctl.cli.app import app
from mirrorctl.errors import TargetError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.publish import publish, read_journal
from mirrorctl.inside.publish_events import events, rollback_publish
from mirrorctl.inside.store import Store
from mirrorctl.lockfile import Artifact
from mirrorctl.progress import SILENT, Progress
from mirrorctl.targets.base import PublishedVersion, PublishResult, TargetCheck

from .test_publish import FakeTarget, _settings, two_profiles  # noqa: F401


class VersionedTarget:
    """Two repositories (pypi, npm), each with its own version numbers; a publish of a new set makes a version
    and serves it; rollback serves an earlier one. ``fail_switch``: ecosystems whose rollback fails."""

    kind = "fake"
    name = "vt"
    ecosystems = frozenset({"pypi", "npm"})

    def __init__(self) -> None:
        # ecosystem -> versions (index = number; each the set of filenames); npm starts one version ahead, so
        # the repositories' numbers differ as they do on a real Pulp
        self.versions: dict[str, list[frozenset[str]]] = {"pypi": [frozenset()], "npm": [frozenset(), frozenset()]}
        self.served: dict[str, int] = {"pypi": 0, "npm": 1}
        self.fail_switch: set[str] = set()
        self.rollbacks: list[tuple[str, int]] = []

    async def check(self) -> TargetCheck:
        return TargetCheck(True, True, "1", {})

    async def publish(
        self, ecosystem: str, artifacts: Sequence[Artifact], store: Store, progress: Progress
    ) -> PublishResult:
        files = frozenset(a.filename for a in artifacts)
        versions = self.versions[ecosystem]
        changed = versions[self.served[ecosystem]] != files
        if changed:
            versions.append(files)
            self.served[ecosystem] = len(versions) - 1
        return PublishResult(
            ecosystem, f"repo-{ecosystem}", len(files), 0, 0, self.served[ecosystem], changed, f"http://vt/{ecosystem}/"
        )

    async def history(self, ecosystem: str) -> list[PublishedVersion]:
        return [
            PublishedVersion(ecosystem, f"repo-{ecosystem}", n, "t", len(files), n == self.served[ecosystem])
            for n, files in enumerate(self.versions[ecosystem])
        ]

    async def rollback(self, ecosystem: str, version: int) -> PublishedVersion:
        if ecosystem in self.fail_switch:
            raise TargetError(f"switching repo-{ecosystem} failed")
        self.rollbacks.append((ecosystem, version))
        self.served[ecosystem] = version
        return PublishedVersion(ecosystem, f"repo-{ecosystem}", version, "t", 0, True)

    def endpoint(self, ecosystem: str) -> str:
        return f"http://vt/{ecosystem}/"

    async def trust_files(self, ecosystem: str) -> dict[str, str]:
        return {}


async def _two_publishes(store: Store, target: VersionedTarget) -> None:
    await publish(_settings(store), store, target, ["web"], SILENT, target_name="vt", channel="prod")
    await publish(_settings(store), store, target, None, SILENT, target_name="vt")


def _state(store: Store, target: VersionedTarget) -> tuple[object, ...]:
    return (dict(target.served), read_journal(store, "vt"), audit.last_entries(store))


async def test_a_publish_is_one_event_across_its_repositories(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)
    found = await events(store, target, target_name="vt")
    assert [(e.number, e.action, e.channel, e.ok, e.served) for e in found] == [
        (1, "publish", "prod", True, False),
        (2, "publish", None, True, True),
    ]
    # each repository with its own version number: pypi 1 then 2, npm 2 (its own) and unchanged after
    assert [[(r.ecosystem, r.repository, r.version) for r in e.repositories] for e in found] == [
        [("npm", "repo-npm", 2), ("pypi", "repo-pypi", 1)],
        [("npm", "repo-npm", 2), ("pypi", "repo-pypi", 2)],
    ]
    view = store.current_view()
    assert view is not None and found[0].view_id == view.view_id
    # the audit trail names the event in each repository's entry
    published = [e for e in audit.last_entries(store) if e["event"] == "publish"]
    assert [(e["publish"], e["ecosystem"], e["version"]) for e in published] == [
        (1, "npm", 2), (1, "pypi", 1), (2, "npm", 2), (2, "pypi", 2),
    ]  # fmt: skip
    assert published[0]["channel"] == "prod" and published[0]["repository"] == "repo-npm"


async def test_rollback_publish_restores_every_repository_together(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await publish(_settings(store), store, target, ["data"], SILENT, target_name="vt")  # pypi v1, npm untouched
    await publish(_settings(store), store, target, ["web"], SILENT, target_name="vt")  # pypi v2, npm v2
    target.served["npm"] = 1  # someone switched npm by hand meanwhile
    done = await rollback_publish(store, target, 2, SILENT, target_name="vt")
    assert [(d.ecosystem, d.version, d.previous, d.changed) for d in done] == [
        ("npm", 2, 1, True), ("pypi", 2, 2, False),
    ]  # fmt: skip
    done = await rollback_publish(store, target, 1, SILENT, target_name="vt")
    assert target.served == {"pypi": 1, "npm": 2}  # event 1 touched pypi only: npm stays
    entries = read_journal(store, "vt")
    assert [(e.number, e.action, e.restores, e.ok) for e in entries] == [
        (1, "publish", None, True), (2, "publish", None, True), (3, "rollback", 2, True), (4, "rollback", 1, True),
    ]  # fmt: skip
    found = await events(store, target, target_name="vt")
    assert [e.number for e in found if e.served] == [4]  # pypi v1, put there by the rollback (event 4), not event 1
    last = audit.last_entries(store)[-1]
    assert (last["event"], last["publish"], last["entry"], last["result"]) == ("rollback", 1, 4, "ok")


async def test_rollback_publish_of_a_two_repository_event(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)
    target.versions["npm"].append(frozenset({"x"}))  # a later npm publish elsewhere: npm serves its v3
    target.served["npm"] = 3
    done = await rollback_publish(store, target, 1, SILENT, target_name="vt")
    assert target.served == {"pypi": 1, "npm": 2}
    assert sorted((d.ecosystem, d.version, d.previous) for d in done) == [("npm", 2, 3), ("pypi", 1, 2)]
    assert read_journal(store, "vt")[-1].results["npm"] == {
        "repository": "repo-npm", "version": 2, "previous": 3, "changed": True,
    }  # fmt: skip


@pytest.mark.parametrize("number", [0, 3, 99])
async def test_an_unknown_publish_number_is_refused_and_nothing_changes(
    two_profiles: tuple[Store, dict[str, Artifact]], number: int
) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)
    before = _state(store, target)
    with pytest.raises(UserError, match=f"no publish event {number} \\(events: 1-2\\)") as info:
        await rollback_publish(store, target, number, SILENT, target_name="vt")
    assert "mirrorctl history --to vt" in (info.value.hint or "")
    assert _state(store, target) == before and target.rollbacks == []


async def test_a_failed_publish_event_is_refused_and_nothing_changes(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)

    async def broken(*args: object) -> PublishResult:
        raise TargetError("server said no")

    target.publish = broken  # type: ignore[method-assign]
    with pytest.raises(TargetError):
        await publish(_settings(store), store, target, None, SILENT, target_name="vt")
    before = _state(store, target)
    with pytest.raises(UserError, match=r"publish event 3 of target vt did not complete.*server said no"):
        await rollback_publish(store, target, 3, SILENT, target_name="vt")
    assert _state(store, target) == before and target.rollbacks == []


async def test_a_version_gone_from_the_server_is_refused_before_anything_switches(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)
    target.versions["pypi"][1:2] = []  # deleted on the server (and the numbers below stay as they were)
    target.served["pypi"] = 1
    before = _state(store, target)
    with pytest.raises(TargetError, match="repo-pypi \\(pypi\\) has no version 2 any more; nothing was switched"):
        await rollback_publish(store, target, 2, SILENT, target_name="vt")
    assert target.rollbacks == [] and target.served == before[0]
    assert read_journal(store, "vt") == before[1]
    last = audit.last_entries(store)[-1]
    assert (last["event"], last["publish"], last["result"]) == ("rollback", 2, "failed")


async def test_one_repository_failing_puts_the_others_back(two_profiles: tuple[Store, dict[str, Artifact]]) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)
    target.versions["npm"].append(frozenset({"x"}))
    target.served["npm"] = 3  # so event 1 needs npm (switched first) and pypi moved
    target.fail_switch = {"pypi"}
    served, journal = dict(target.served), read_journal(store, "vt")
    with pytest.raises(TargetError) as info:
        await rollback_publish(store, target, 1, SILENT, target_name="vt")
    message = info.value.message
    assert "switching repo-pypi (pypi) to version 1 failed: switching repo-pypi failed" in message
    assert "put back repo-npm (npm) to version 3: nothing changed" in message
    assert target.rollbacks == [("npm", 2), ("npm", 3)]  # switched, then put back
    assert target.served == served and read_journal(store, "vt") == journal  # nothing changed
    last = audit.last_entries(store)[-1]
    assert (last["event"], last["publish"], last["result"]) == ("rollback", 1, "failed")
    assert "put back" in last["error"]


async def test_a_repository_that_cannot_be_put_back_is_named_and_journaled(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = VersionedTarget()
    await _two_publishes(store, target)
    target.versions["npm"].append(frozenset({"x"}))
    target.served["npm"] = 3
    target.fail_switch = {"pypi"}
    real = target.rollback
    calls: list[tuple[str, int]] = []

    async def npm_only_once(ecosystem: str, version: int) -> PublishedVersion:
        calls.append((ecosystem, version))
        if ecosystem == "npm" and len(calls) > 1:
            raise TargetError("npm is down now")
        return await real(ecosystem, version)

    target.rollback = npm_only_once  # type: ignore[method-assign]
    with pytest.raises(TargetError) as info:
        await rollback_publish(store, target, 1, SILENT, target_name="vt")
    assert "NOT repo-npm (npm), which serves version 2: npm is down now" in info.value.message
    assert target.served == {"pypi": 2, "npm": 2}
    last = read_journal(store, "vt")[-1]  # what is served now is on record
    assert (last.action, last.restores, last.ok, dict(last.results)) == (
        "rollback", 1, False, {"npm": {"repository": "repo-npm", "version": 2}},
    )  # fmt: skip


async def test_a_target_without_versions_refuses_rollback_publish(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    store, _ = two_profiles
    target = FakeTarget()
    await publish(_settings(store), store, target, None, SILENT)
    before = read_journal(store, "fake")
    with pytest.raises(UserError, match="keeps no versions") as info:
        await rollback_publish(store, target, 1, SILENT)
    assert "mirrorctl rollback --channel" in (info.value.hint or "")
    assert read_journal(store, "fake") == before
    [event] = await events(store, target)
    assert event.served and [(r.ecosystem, r.version) for r in event.repositories] == [("pypi", None)]


# --- the CLI: history's table, --publish refusals (exit 2, nothing changed) ------------------------------------------


@pytest.fixture
def cli_site(
    two_profiles: tuple[Store, dict[str, Artifact]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Store, VersionedTarget]:
    store, _ = two_profiles
    target = VersionedTarget()
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        f'[store]\npath = "{store.root}"\n\n[targets.vt]\nkind = "pulp"\nurl = "http://pulp.test:24817"\n'
        '[targets.vt.repositories]\npypi = "repo-pypi"\nnpm = "repo-npm"\n'
    )
    monkeypatch.setattr(cmd_publish, "make_target", lambda *a, **k: target)
    return config, store, target


def _cli(config: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["--config", str(config), *args])
    return done.exit_code, done.output


def test_cli_history_lists_events_in_an_aligned_table(cli_site: tuple[Path, Store, VersionedTarget]) -> None:
    config, store, _ = cli_site
    code, out = _cli(config, "history", "--to", "vt")
    assert (code, out.strip()) == (0, "nothing published to vt yet")
    view_id = store.current_view_id() or ""
    assert _cli(config, "-q", "promote", view_id, "--channel", "prod", "--create")[0] == 0
    assert _cli(config, "-q", "publish", "--to", "vt", "web", "--channel", "prod")[0] == 0
    assert _cli(config, "-q", "publish", "--to", "vt")[0] == 0
    code, out = _cli(config, "history", "--to", "vt")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["publish", "when", "what", "from", "snapshot", "repositories", "(version)"]
    assert lines[1].split()[0] == "1" and lines[2].split()[:2] == ["*", "2"]
    assert "npm repo-npm v2, pypi repo-pypi v1" in lines[1] and "pypi repo-pypi v2" in lines[2]
    # aligned: every column starts at the same place on every line
    assert lines[1].split()[3:5] == ["channel", "prod"] and lines[2].split()[4] == "current"
    assert lines[1].index("channel prod") == lines[2].index("current") == lines[0].index("from")
    assert lines[0].index("when") == lines[1].index(lines[1].split()[1])
    code, out = _cli(config, "history", "--to", "vt", "-e", "npm")  # the expert form: one repository's versions
    assert code == 0 and len(out.splitlines()) == 4 and out.split()[0] == "version" and "repo-npm" in out


def test_cli_rollback_publish_and_its_refusals(cli_site: tuple[Path, Store, VersionedTarget]) -> None:
    config, store, target = cli_site
    assert _cli(config, "-q", "publish", "--to", "vt", "web")[0] == 0
    assert _cli(config, "-q", "publish", "--to", "vt")[0] == 0
    before = _state(store, target)
    for args, says in (
        (["--publish", "7"], "no publish event 7 (events: 1-2)"),
        (["--publish", "1", "--version", "1"], "--publish N restores every repository"),
        (["--publish", "1", "-e", "npm"], "--publish N restores every repository"),
        ([], "give --publish N"),
        (["--version", "1"], "which ecosystem?"),
    ):
        code, out = _cli(config, "rollback", "--to", "vt", *args)
        assert code == 2 and says in out, (args, out)
        assert "Traceback" not in out
    code, out = _cli(config, "rollback", "--channel", "prod", "--publish", "1")
    assert code == 2 and "--publish and --version are for --to TARGET" in out
    assert _state(store, target) == before and target.rollbacks == []
    code, out = _cli(config, "rollback", "--to", "vt", "--publish", "1")
    assert code == 0, out
    assert "pypi repo-pypi serves version 1 (was version 2)" in out and "npm repo-npm serves version 2" in out
    assert target.served == {"pypi": 1, "npm": 2}
    last = _cli(config, "history", "--to", "vt")[1].splitlines()[-1].split()
    assert last[:6] == ["*", "3", last[2], "rollback", "to", "1"] and last[6:8] == ["-", "-"], last
    code, out = _cli(config, "rollback", "--to", "vt", "-e", "pypi", "--version", "2")  # the expert form
    assert code == 0 and target.served["pypi"] == 2, out


def test_cli_help_shows_examples() -> None:
    for command, example in (("history", "mirrorctl history --to pulp"), ("rollback", "--publish 3")):
        done = CliRunner().invoke(app, [command, "--help"])
        assert done.exit_code == 0 and example in done.output, done.output


def test_cli_publish_without_channel_sends_the_default_channel(cli_site: tuple[Path, Store, VersionedTarget]) -> None:
    """With [serve] default-channel set, the plain layout serves that channel, and so does a publish without
    --channel (it used to send `current`, which an import into channels no longer moves)."""
    config, store, target = cli_site
    view_id = store.current_view_id() or ""
    assert _cli(config, "-q", "promote", view_id, "--channel", "prod", "--create")[0] == 0
    config.write_text(config.read_text().replace("[store]", '[serve]\ndefault-channel = "prod"\n\n[store]'))
    code, out = _cli(config, "-q", "publish", "--to", "vt")
    assert code == 0, out
    (entry,) = read_journal(store, "vt")
    assert entry.channel == "prod"
    assert target.served == {"pypi": 1, "npm": 2}
    config.write_text(config.read_text().replace('"prod"', '"nope"'))
    before = (read_journal(store, "vt"), dict(target.served))
    code, out = _cli(config, "-q", "publish", "--to", "vt")  # a default channel that does not exist: refused
    assert code == 2 and "nope" in out
    assert (read_journal(store, "vt"), dict(target.served)) == before


async def test_an_interrupted_publish_is_journaled_for_the_repository_it_was_in(
    two_profiles: tuple[Store, dict[str, Artifact]],
) -> None:
    """`publish ... | head -5` closed the output pipe in the middle of one repository's publish: the event was
    listed as failed, but the audit journal had no entry for that repository. Every repository the publish got
    to is recorded, the interrupted one as failed, and the interruption still propagates."""
    store, _ = two_profiles

    class Interrupted(VersionedTarget):
        async def publish(
            self, ecosystem: str, artifacts: Sequence[Artifact], store: Store, progress: Progress
        ) -> PublishResult:
            if ecosystem == "pypi":
                raise BrokenPipeError(32, "Broken pipe")
            return await super().publish(ecosystem, artifacts, store, progress)

    with pytest.raises(BrokenPipeError):
        await publish(_settings(store), store, Interrupted(), None, SILENT, target_name="vt")
    (entry,) = read_journal(store, "vt")
    assert not entry.ok and entry.results["pypi"]["error"] == "interrupted (BrokenPipeError)"
    assert "error" not in entry.results["npm"]
    logged = [e for e in audit.last_entries(store) if e["event"] == "publish"]
    assert {(e["ecosystem"], e["result"]) for e in logged} == {("npm", "ok"), ("pypi", "failed")}
