"""``mirrorctl verify``: re-hash what the store serves (or holds) and name every blob that is not what it
claims to be. Run it on a schedule inside: disks rot, and a mirror should say so before a client does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

from mirrorctl.errors import IntegrityError, UserError
from mirrorctl.progress import Progress
from mirrorctl.store import Store


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    bytes: int
    damaged: tuple[tuple[str, str, str], ...]  # (file name, sha256, what is wrong)


def _served_blobs(store: Store) -> Iterator[tuple[str, int, str]]:
    view = store.current_view()
    if view is None:
        raise UserError(
            f"{store.root}: nothing imported yet, so nothing is served", hint="pass --all to check every blob"
        )
    seen: set[str] = set()
    for artifact in view.artifacts:
        for sha, size, name in artifact.blobs():
            if sha not in seen:
                seen.add(sha)
                yield sha, size, name


def _all_blobs(store: Store) -> Iterator[tuple[str, int, str]]:
    for path in sorted((store.root / "blobs" / "sha256").glob("*/*")):
        yield path.name, path.stat().st_size, path.name


async def verify_store(store: Store, progress: Progress, *, everything: bool = False) -> VerifyReport:
    """Check size, then sha256, of every blob the current view serves (``everything``: every blob stored).
    Raises IntegrityError listing each damaged blob; returns the report when all are sound."""
    if not (store.root / "blobs").exists() and not everything and store.current_view_id() is None:
        raise UserError(f"{store.root}: no store here", hint="check [store] path in mirrorctl.toml")
    blobs = list(_all_blobs(store) if everything else _served_blobs(store))
    task = progress.task("verifying store", sum(size for _, size, _ in blobs), unit="bytes")
    damaged: list[tuple[str, str, str]] = []
    try:
        for sha, size, name in blobs:
            # Hashing is CPU and disk work: keep it off the event loop.
            problem = await asyncio.to_thread(store.verify_blob, sha, size)
            if problem is not None:
                damaged.append((name, sha, problem))
            task.advance(size)
    finally:
        task.close()
    if damaged:
        lines = "\n".join(f"  {name} ({sha[:16]}…): {problem}" for name, sha, problem in damaged)
        raise IntegrityError(
            f"{store.root}: {len(damaged)} of {len(blobs)} blobs are damaged:\n{lines}",
            hint="inside: `mirrorctl import --repair BUNDLE` with the bundle being served replaces them; "
            "outside: delete them and run `mirrorctl snapshot` again",
        )
    return VerifyReport(len(blobs), sum(size for _, size, _ in blobs), ())
