"""The store as the npm registry client sees it while locking: verified tarballs staged, committed only when the
whole closure resolved."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from mirrorctl.inside.store import Store


class StagedStore(Store):
    """The store as the registry client sees it while locking: tarballs verified during resolution are
    staged beside the store's temp files and committed only once the whole closure resolved, so a lock that
    fails (a range nothing satisfies, a missing package, a hostile document) stores nothing."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.root, adapters=store._adapters)
        self._target = store
        self._staged: dict[str, Path] = {}
        self._discarded = False
        # commit_blob runs in worker threads; a cancelled download's thread may still be in it at discard().
        self._mutex = threading.Lock()

    def commit_blob(self, tmp: Path, sha256: str) -> Path:
        with self._mutex:
            if self._discarded or sha256 in self._staged or self._target.has_blob(sha256):
                tmp.unlink(missing_ok=True)
                return self._staged.get(sha256) or self._target.blob_path(sha256)
            staged = tmp.with_name(tmp.name.removesuffix(".part") + ".staged")
            os.replace(tmp, staged)
            self._staged[sha256] = staged
            return staged

    def publish(self) -> None:
        with self._mutex:
            for sha256, staged in sorted(self._staged.items()):
                self._target.commit_blob(staged, sha256)
            self._staged.clear()

    def discard(self) -> None:
        with self._mutex:
            self._discarded = True
            for staged in self._staged.values():
                staged.unlink(missing_ok=True)
            self._staged.clear()
