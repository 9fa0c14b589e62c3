"""What keeps the served apt repository from working on the mirror host (``Ecosystem.serve_problems``).

The one problem a host can have on its own: apt packages are served but no archive key exists (or its state file
is damaged), so every InRelease and Release.gpg answers 503 and ``apt-get update`` fails in every workspace. It
is checked from ``keys.json`` alone (a small file; no gpg process), because ``/healthz`` asks on every probe.
"""

from __future__ import annotations

from mirrorctl.ecosystems.base import ServedContent, ServeProblem
from mirrorctl.errors import UserError

from .archive_key import ArchiveKey

ECOSYSTEM = "apt"
GENERATE = ("archive-key", "generate")
IMPORT_HINT = "or `mirrorctl archive-key import FILE` to sign with a key you already have"


def serve_problems(content: ServedContent) -> list[ServeProblem]:
    """``[]`` when no apt package is served or the archive key is there; else the problem and its fix."""
    view = content.current()
    if view is None or not view.artifacts(ECOSYSTEM):
        return []
    key = ArchiveKey(content.keys_dir())
    try:
        if key.exists():
            return []
    except UserError as exc:  # keys.json damaged: signing fails as surely as with no key
        problem = f"{exc.message}: InRelease answers 503 and apt-get update fails"
        return [ServeProblem(ECOSYSTEM, problem, (), exc.hint or "")]
    return [
        ServeProblem(
            ECOSYSTEM,
            f"apt packages are served but there is no archive key in {key.folder}: InRelease answers 503 and "
            "apt-get update fails in every workspace",
            GENERATE,
            IMPORT_HINT,
        )
    ]
