"""Issue 12, item 4: killed between serving a new view and journalling it, an import used to leave a served view
with no recorded digest, so a later edit of its view.json passed `mirrorctl verify` and importing the bundle
again was a no-op that recorded nothing. Now verify refuses a served view with no digest, a re-import journals
it (only if the view is still what the bundle makes), and a finished import journals before it lets go of the
store's lock."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from pathlib import Path

import pytest

from mirrorctl.crossing.bundle import importer as importer_mod
from mirrorctl.crossing.bundle.importer import import_bundle
from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.inside import audit
from mirrorctl.inside.store import Store
from mirrorctl.inside.verify import verify_store
from mirrorctl.progress import SILENT
from tests.fixtures.bundles import ECOSYSTEMS, NOW, World, fingerprint, make_world
from tests.test_import_crash import run_import


def verify(store: Store) -> None:
    asyncio.run(verify_store(store, SILENT))


def view_json(store: Store) -> Path:
    view_id = store.current_view_id()
    assert view_id is not None
    return store.root / "views" / view_id / "view.json"


def edit(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    doc["artifacts"] = doc["artifacts"][1:]  # an artifact quietly dropped from what is served
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def killed_after_the_switch(tmp_path: Path) -> tuple[World, Path]:
    """An inside serving bundle 1; bundle 2's import killed after the switch, before its journal entry."""
    world = make_world(tmp_path)
    import_bundle(world.export("old.bundle"), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    bundle = world.export("new.bundle")
    proc = run_import(world, bundle, crash_at="recorded")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    view = world.inside.current_view()
    assert view is not None and view.sequence == 2  # served...
    assert view.view_id not in audit.recorded_view_digests(world.inside)  # ...with nothing journalled
    return world, bundle


def test_verify_refuses_a_served_view_whose_digest_was_never_journalled(tmp_path: Path) -> None:
    world, _ = killed_after_the_switch(tmp_path)
    before = fingerprint(world.inside)
    journal = audit.journal_path(world.inside).read_bytes()
    with pytest.raises(IntegrityError, match="served, but no import journalled its digest") as info:
        verify(world.inside)
    assert "1 served snapshot(s) with no recorded digest" in info.value.message
    assert info.value.hint is not None and "import the bundle it came from again" in info.value.hint
    assert fingerprint(world.inside) == before and audit.journal_path(world.inside).read_bytes() == journal


def test_a_reimport_completes_the_record_and_a_later_edit_is_caught(tmp_path: Path) -> None:
    world, bundle = killed_after_the_switch(tmp_path)
    served = view_json(world.inside)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()

    again = run_import(world, bundle)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0 and out.split() == ["noop", "2"], (out, err)
    recovered = [e for e in audit.last_entries(world.inside) if e.get("recovered")]
    assert [(e["event"], e["result"], e["view-id"], e["view-sha256"]) for e in recovered] == [
        ("import", "ok", served.parent.name, digest)
    ]
    verify(world.inside)  # the record is complete
    audit.verify(world.inside)

    edit(served)
    with pytest.raises(IntegrityError, match="changed since its import"):
        verify(world.inside)
    # A third import of the same bundle does not bless the edit: the digest journalled first is kept.
    import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert len([e for e in audit.last_entries(world.inside) if e.get("recovered")]) == 1
    with pytest.raises(IntegrityError, match="changed since its import"):
        verify(world.inside)


def test_a_view_edited_before_the_reimport_is_not_recorded(tmp_path: Path) -> None:
    world, bundle = killed_after_the_switch(tmp_path)
    edit(view_json(world.inside))
    notes: list[str] = []

    class Notes:
        def note(self, text: str) -> None:
            notes.append(text)

        def task(self, *args: object, **kwargs: object) -> object:
            return SILENT.task(*args, **kwargs)  # type: ignore[arg-type]

    report = import_bundle(bundle, world.inside, world.trusted, ECOSYSTEMS, now=NOW, progress=Notes())  # type: ignore[arg-type]
    assert report.noop
    assert any("not what importing" in n and "changed after its import" in n for n in notes), notes
    assert not [e for e in audit.last_entries(world.inside) if e.get("recovered")]
    with pytest.raises(IntegrityError, match="served, but no import journalled its digest"):
        verify(world.inside)


def test_an_import_journals_its_view_before_releasing_the_store_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(tmp_path)
    held: list[bool] = []
    real = audit.record

    def record(store: Store, event: str, progress: object, **fields: object) -> None:
        if fields.get("result") == "ok":
            try:
                with store.exclusive(wait=False):
                    held.append(False)
            except UserError:
                held.append(True)
        real(store, event, progress, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(importer_mod.audit, "record", record)
    import_bundle(world.export(), world.inside, world.trusted, ECOSYSTEMS, now=NOW)
    assert held == [True]
    verify(world.inside)
