"""Bounded concurrent downloads into the content-addressed store: stream -> hash -> temp -> verify -> rename.

Each file is streamed into ``<store>/tmp/<sha256>.part`` in ~1 MiB chunks (memory stays flat whatever the
file size), hashed as it arrives, and refused as soon as more bytes arrive than the lock declares ("endless
data"). Only a complete, fsynced file whose size and digests match is renamed to its real name, so a crash
or a failure leaves at most a ``.part`` file, which the next run continues with a ``Range`` request.

Example::

    report = await fetch_all(items, store, client, concurrency=16, retries=4, progress=SILENT)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mirrorctl.ecosystems.base import FetchItem
from mirrorctl.errors import DigestMismatch, IntegrityError, MirrorctlError, NetworkError
from mirrorctl.inside.store import Store
from mirrorctl.net import RetryPolicy, redact, retrying
from mirrorctl.progress import Progress, ProgressTask

CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True, slots=True)
class FetchReport:
    """What one ``fetch_all`` did: files and bytes downloaded now vs. already in the store."""

    downloaded: int
    downloaded_bytes: int
    present: int
    present_bytes: int
    elapsed: float


class _Hashes:
    """sha256 plus any extra algorithms (hex digests), fed together."""

    def __init__(self, item: FetchItem) -> None:
        self._h: dict[str, Any] = {"sha256": hashlib.sha256()}
        for name in item.extra_hashes:
            try:
                self._h[name] = hashlib.new(name)
            except ValueError:
                raise IntegrityError(
                    f"{item.label}: unknown hash algorithm {name!r} in the fetch plan",
                    hint="use a hashlib name such as sha512 or sha1 (hex digests)",
                ) from None

    def update(self, data: bytes | bytearray) -> None:
        for h in self._h.values():
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {k: h.hexdigest() for k, h in self._h.items()}


class _Partial:
    """The state of one ``.part`` file: how many bytes it holds, and (when known) their hashes.

    ``hashes`` is None when the prefix came from disk (an earlier run) and has not been re-hashed yet.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1  # held open with an exclusive flock while this process works on the file
        self.offset = 0
        self.hashes: _Hashes | None = None
        self.from_disk = False


async def fetch_all(
    items: Sequence[FetchItem],
    store: Store,
    client: httpx.AsyncClient,
    *,
    concurrency: int,
    retries: int,
    progress: Progress,
    backoff_base: float = 0.5,
    backoff_cap: float = 30.0,
) -> FetchReport:
    """Download every item not yet in ``store``; raise one error listing every failure after the rest finish.

    Items already stored (by sha256 and size) cost no request at all, so a warm re-run is only ``stat`` calls.
    """
    started = time.monotonic()
    unique: dict[str, FetchItem] = {}
    for item in items:
        unique.setdefault(item.sha256, item)  # one download per blob, however many artifacts share it
    present: list[FetchItem] = []
    missing: list[FetchItem] = []
    for i in unique.values():
        (present if store.has_blob(i.sha256, i.size) else missing).append(i)
    if not missing:
        return FetchReport(0, 0, len(present), sum(i.size for i in present), time.monotonic() - started)

    tmp_dir = store.tmp_dir
    task = progress.task("fetch", total=sum(i.size for i in missing), unit="bytes")
    sem = asyncio.Semaphore(max(1, concurrency))
    failures: list[tuple[FetchItem, Exception]] = []
    policy = RetryPolicy(retries, backoff_base, backoff_cap)

    async def one(item: FetchItem) -> None:
        async with sem:
            try:
                await _fetch_one(item, store, tmp_dir, client, policy, task)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # collected: the other downloads still finish
                failures.append((item, exc))
                progress.note(f"failed: {exc}")

    try:
        await asyncio.gather(*(one(i) for i in missing))
    finally:
        task.close()
    if failures:
        raise _combined(failures, len(missing))
    return FetchReport(
        len(missing), sum(i.size for i in missing), len(present), sum(i.size for i in present),
        time.monotonic() - started,
    )


class SpeculativeFetcher:
    """Downloads handed over one at a time while something else runs: ``mirrorctl lock --snapshot`` gives it
    each file the resolver pins, so the bytes flow while resolution goes on. Same path as :func:`fetch_all`
    (flocked ``.part``, resume, retries, size cap, hash, fsync, rename), its own bound on concurrency.

    Speculative: a failure is only counted and noted; the snapshot that follows fetches whatever is still
    missing through :func:`fetch_all` and reports errors there. A file it is still downloading makes that
    snapshot wait on the ``.part`` flock, then find the blob: nothing is fetched twice.

    Example::

        spec = SpeculativeFetcher(store, client, concurrency=16, retries=4, progress=SILENT)
        spec.submit(item)                      # on the event loop thread
        spec.cancel_unless({locked sha256s})   # drop what the final lock does not name
        await spec.wait()
    """

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        *,
        concurrency: int,
        retries: int,
        progress: Progress,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self._store, self._client, self._progress = store, client, progress
        self._sem = asyncio.Semaphore(max(1, concurrency))
        self._policy = RetryPolicy(retries, backoff_base, backoff_cap)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._bytes = progress.task("fetch (while resolving)", unit="bytes")
        self.downloaded = 0
        self.downloaded_bytes = 0
        self.failed = 0
        self.cancelled = 0

    def submit(self, item: FetchItem) -> None:
        """Start downloading ``item`` unless it is stored or already started. Call on the loop thread."""
        if item.sha256 in self._tasks or self._store.has_blob(item.sha256, item.size):
            return
        self._tasks[item.sha256] = asyncio.get_running_loop().create_task(self._one(item))

    async def _one(self, item: FetchItem) -> None:
        async with self._sem:
            try:
                await _fetch_one(item, self._store, self._store.tmp_dir, self._client, self._policy, self._bytes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a hint only: the snapshot after the lock fetches and reports it
                self.failed += 1
                self._progress.note(f"early download failed (the snapshot tries again): {exc}")
                return
        self.downloaded += 1
        self.downloaded_bytes += item.size

    def cancel_unless(self, wanted: set[str]) -> None:
        """Stop downloads of files the final lock does not name (candidates the resolver dropped). A
        cancelled download keeps its ``.part`` file, which a later run resumes if it needs the file."""
        for sha, task in self._tasks.items():
            if sha not in wanted and not task.done():
                task.cancel()
                self.cancelled += 1

    async def wait(self) -> None:
        """Until every download started has finished, failed or been cancelled."""
        try:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        finally:
            self._bytes.close()

    async def abort(self) -> None:
        """Cancel everything (the lock failed): ``.part`` files stay for a later run to resume."""
        for task in self._tasks.values():
            task.cancel()
        await self.wait()


def _combined(failures: list[tuple[FetchItem, Exception]], attempted: int) -> Exception:
    """One error for all failures: IntegrityError if any bytes were wrong, else NetworkError.

    An unexpected error (a full disk, a bug) is re-raised as it is, after the other downloads finished.
    """
    for _, exc in failures:
        if not isinstance(exc, MirrorctlError):
            return exc
    if len(failures) == 1:
        return failures[0][1]
    failures.sort(key=lambda f: f[0].label)
    lines = "\n".join(f"  - {exc}" for _, exc in failures)
    message = f"{len(failures)} of {attempted} downloads failed:\n{lines}"
    if any(isinstance(exc, IntegrityError) for _, exc in failures):
        return IntegrityError(message, hint="the upstream served bytes the lock does not record; nothing "
                              "was stored for those files. Check the upstream, or re-lock if it changed")
    errors = tuple(exc for _, exc in failures if isinstance(exc, MirrorctlError))
    hints = {exc.hint for exc in errors} - {None}
    hint = hints.pop() if len(hints) == 1 else "run again: finished files are kept, partial ones resume"
    return NetworkError(message, hint=hint, failures=errors)


async def _fetch_one(
    item: FetchItem,
    store: Store,
    tmp_dir: Path,
    client: httpx.AsyncClient,
    policy: RetryPolicy,
    task: ProgressTask,
) -> None:
    part = _Partial(tmp_dir / f"{item.sha256}.part")
    reported = _Reporter(task)
    await _claim(part)
    committed = False
    try:
        if store.has_blob(item.sha256, item.size):
            reported.at(item.size)  # another process finished it while we waited for its lock
            return
        await _adopt_leftover(part, item)
        while True:
            await _download(item, part, client, policy, reported)
            resumed = part.from_disk
            try:
                await _verify_and_commit(item, part, store, reported)
                committed = True
                return
            except IntegrityError:
                if not resumed:
                    raise
                # The prefix came from an earlier run, perhaps of another upstream state: give the file
                # one clean download from zero before calling it tampered (the .part is emptied already).
    finally:
        if not committed and part.offset == 0:
            # Nothing worth resuming (or bytes that must not stay): no temp file is left behind. Unlinked
            # while still locked, so a waiting process notices and opens a fresh one. (After a commit the
            # path is no longer ours: the file was renamed to its real name.)
            with contextlib.suppress(FileNotFoundError):
                part.path.unlink()
        os.close(part.fd)  # releases the lock


async def _claim(part: _Partial) -> None:
    """Open the ``.part`` file and take an exclusive flock on it, waiting while another process holds it.

    Two snapshots into one store must never write into one temp file: the hashes describe only the bytes
    a process wrote itself, so interleaved writes could put wrong bytes under a real name.
    """
    while True:
        fd = os.open(part.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            # Short: with ``lock --snapshot`` the snapshot waits here for files the download child is finishing,
            # and each poll is one open + flock.
            await asyncio.sleep(0.05)
            continue
        try:
            same = os.stat(part.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            part.fd = fd
            return
        os.close(fd)  # the holder renamed or removed it before letting go: open the current one


async def _download(
    item: FetchItem, part: _Partial, client: httpx.AsyncClient, policy: RetryPolicy, reported: _Reporter
) -> None:
    """Bring the ``.part`` file to full length, retrying transient errors and resuming where it stopped."""

    async def once() -> None:
        while True:
            try:
                await _attempt(item, part, client, reported)
                return
            except _Restart:
                continue  # not the upstream failing: our prefix was unusable; start over, not counted
            except IntegrityError:
                await _discard(part)  # endless data: nothing of it may stay behind
                raise

    await retrying(once, item.label, policy)


class _Restart(Exception):
    """The ``.part`` prefix cannot be continued (server ignored or refused the Range): start from zero."""


class _Reporter:
    """Advances the shared bytes task only past the highest point this item reached, so restarts and
    resumed prefixes are not counted twice."""

    def __init__(self, task: ProgressTask) -> None:
        self._task = task
        self._high = 0

    def at(self, offset: int) -> None:
        if offset > self._high:
            self._task.advance(offset - self._high)
            self._high = offset


async def _adopt_leftover(part: _Partial, item: FetchItem) -> None:
    """Continue a ``.part`` left by an interrupted run, unless it is already longer than the file."""
    size = os.fstat(part.fd).st_size
    if size == 0:
        return
    if size > item.size:
        await _discard(part)
        return
    part.offset = size
    part.from_disk = True


async def _rehash_prefix(part: _Partial, item: FetchItem) -> _Hashes:
    """Hash the bytes already in the ``.part`` file, off the event loop."""

    def work() -> _Hashes:
        hashes = _Hashes(item)
        with open(part.path, "rb") as f:
            remaining = part.offset
            while remaining > 0:
                chunk = f.read(min(CHUNK, remaining))
                if not chunk:
                    raise _Restart()  # shorter than we thought (someone truncated it): start over
                hashes.update(chunk)
                remaining -= len(chunk)
        return hashes

    return await asyncio.to_thread(work)


async def _discard(part: _Partial) -> None:
    # Emptied in place, never unlinked while in use: the lock must stay on the file at this path.
    os.ftruncate(part.fd, 0)
    part.offset, part.hashes, part.from_disk = 0, None, False


async def _attempt(item: FetchItem, part: _Partial, client: httpx.AsyncClient, reported: _Reporter) -> None:
    """One request: continue the ``.part`` from ``part.offset`` (Range) or write it from zero."""
    if part.offset > 0 and part.hashes is None:
        try:
            part.hashes = await _rehash_prefix(part, item)
        except _Restart:
            await _discard(part)
    if part.offset >= item.size:
        return  # complete already (a run that crashed before the rename): only verification is left
    # identity: the digest is over the file's bytes as stored upstream, never a transfer-decoded form
    headers = {"Accept-Encoding": "identity"}
    if part.offset > 0:
        headers["Range"] = f"bytes={part.offset}-"
    async with client.stream("GET", item.url, headers=headers) as resp:
        if part.offset > 0 and resp.status_code == 416:
            await _discard(part)
            raise _Restart()
        resp.raise_for_status()
        if part.offset > 0 and not _continues(resp, part.offset):
            # A 200 (Range ignored) or a 206 for other bytes: the body is the whole file, or unusable.
            await _discard(part)
            if resp.status_code != 200:
                raise _Restart()
        if part.offset == 0:
            part.hashes = _Hashes(item)
        _check_declared_length(item, part, resp)
        hashes = part.hashes
        assert hashes is not None
        received = part.offset
        pending = bytearray()  # network reads are small; gather ~1 MiB per (threaded) file write
        # Continue right after the bytes hashed so far; anything beyond them is stale.
        await asyncio.to_thread(os.ftruncate, part.fd, part.offset)

        async def write_pending() -> None:
            # One thread hop writes and hashes (hashlib releases the GIL, so hashing runs beside the event loop);
            # the hashes are updated only once the bytes are written: they always describe the file's bytes.
            await asyncio.to_thread(_write_and_hash, part.fd, part.offset, pending, hashes)
            part.offset += len(pending)
            pending.clear()

        try:
            async for chunk in resp.aiter_raw():
                received += len(chunk)
                if received > item.size:
                    pending.clear()
                    raise _overflow(item, received)
                pending += chunk
                reported.at(received)
                if len(pending) >= CHUNK:
                    await write_pending()
        finally:
            # Keep what did arrive before a dropped connection: the retry resumes after it.
            if pending:
                await write_pending()
            await asyncio.to_thread(os.fsync, part.fd)
        if part.offset < item.size:
            # A body that ended cleanly but short: treat it like a dropped connection (retry, resume).
            raise httpx.RemoteProtocolError(
                f"body ended after {part.offset} of {item.size} bytes", request=resp.request
            )


def _write_and_hash(fd: int, offset: int, data: bytearray, hashes: _Hashes) -> None:
    """Write ``data`` at ``offset`` (all of it: pwrite may write less), then add it to the hashes."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    hashes.update(data)


def _continues(resp: httpx.Response, offset: int) -> bool:
    if resp.status_code != 206:
        return False
    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    return m is not None and int(m.group(1)) == offset


def _check_declared_length(item: FetchItem, part: _Partial, resp: httpx.Response) -> None:
    """Refuse before reading when the server already announces more bytes than the lock allows."""
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and part.offset + int(length) > item.size:
        raise _overflow(item, part.offset + int(length), announced=True)


def _overflow(item: FetchItem, got: int, *, announced: bool = False) -> IntegrityError:
    how = "announces" if announced else "sent at least"
    return IntegrityError(
        f"{item.label}: upstream {how} {got} bytes, the lock declares {item.size} ({redact(item.url)}); "
        "stopped reading",
        hint="the upstream serves a different file than the one locked; nothing was stored for it",
    )


async def _verify_and_commit(item: FetchItem, part: _Partial, store: Store, reported: _Reporter) -> None:
    if part.hashes is None:
        part.hashes = await _rehash_prefix(part, item)
    actual = part.hashes.hexdigests()
    extra = {k: v.lower() for k, v in item.extra_hashes.items()}
    expected: Mapping[str, str] = {"sha256": item.sha256, **extra}
    wrong = {k: actual.get(k, "") for k, v in expected.items() if actual.get(k) != v}
    on_disk = os.fstat(part.fd).st_size  # what is renamed must be exactly what was hashed
    if part.offset != item.size or on_disk != item.size or wrong:
        same_size = part.offset == on_disk == item.size
        await _discard(part)
        raise DigestMismatch(
            item.label, expected=expected, actual=wrong if same_size else {},
            expected_size=item.size, actual_size=item.size if same_size else max(part.offset, on_disk),
            url=redact(item.url),
            hint="the upstream served different bytes than were locked; nothing was stored for this file",
        )
    reported.at(item.size)
    await asyncio.to_thread(store.commit_blob, part.path, item.sha256)
