"""Early downloads in a child process, for ``mirrorctl lock --snapshot``.

Why a process: resolution is Python work in resolver threads that talk to the event loop for every page and
metadata file; streaming ~200 MB through httpx and hashing it is Python work too. In one process both share
one interpreter lock, and each slows the other down more than the overlap gains. A child process runs
:class:`~mirrorctl.outside.fetch.SpeculativeFetcher` on another CPU, with its own HTTP client built from the same
settings. It writes into the same store through the same verified path (flocked ``.part``, hash, fsync,
rename), so the parent's snapshot simply waits for a file the child is still downloading and then finds the
blob.

The child is a fresh interpreter that imports only this module and what downloading needs (not the CLI, as
``multiprocessing``'s spawn would by re-running the main script): it is ready in about 0.15 s. Parent and
child talk over the child's stdin and stdout with pickled messages (the child is our own code; nothing from
the network is ever unpickled): the settings, then ``("get", FetchItem)``, ``("keep", {sha256})``, ``("end" |
"abort", None)``; the child answers once, with its counts.

Example::

    early = ProcessFetcher(settings)
    early.start()                  # optional: start now, so the child is ready when the first file comes
    early.submit(item)
    early.cancel_unless(locked_sha256s)
    await early.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
from typing import IO, Any

from mirrorctl.config import Settings
from mirrorctl.ecosystems.base import FetchItem
from mirrorctl.progress import SILENT

# -P: nothing from the working folder on sys.path; the child imports mirrorctl from where the parent did.
# The httpx._main entry: as in mirrorctl/cli/__init__.py, httpx's own command-line client is never imported.
_CHILD = (
    "import sys; sys.modules.setdefault('httpx._main', None); "
    "from mirrorctl.outside.fetch_worker import child_main; child_main()"
)


class ProcessFetcher:
    """Same interface as :class:`~mirrorctl.outside.fetch.SpeculativeFetcher`, the downloads done by a child."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None  # started by start() or the first download
        self._sent: set[str] = set()
        self._open = True
        self.downloaded = self.downloaded_bytes = self.failed = self.cancelled = 0

    def start(self) -> None:
        """Start the child now (it takes a moment to be ready); submit() starts it otherwise."""
        if self._proc is not None or not self._open:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._send(self._settings)

    def submit(self, item: FetchItem) -> None:
        if item.sha256 in self._sent or not self._open:
            return
        self.start()
        self._sent.add(item.sha256)
        self._send(("get", item))

    def cancel_unless(self, wanted: set[str]) -> None:
        if self._proc is not None:
            self._send(("keep", wanted))

    async def wait(self) -> None:
        await self._finish(("end", None))

    async def abort(self) -> None:
        await self._finish(("abort", None))

    def _send(self, message: Any) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        if not self._open:
            return
        try:
            # small messages: the pipe takes them without blocking the loop (the child reads continuously)
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):  # the child died: the snapshot fetches what it did not
            self._open = False

    async def _finish(self, message: tuple[str, Any]) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        if self._open:
            self._send(message)
        try:
            if self._open:
                stats = await asyncio.to_thread(pickle.load, proc.stdout)
                self.downloaded, self.downloaded_bytes, self.failed, self.cancelled = stats
        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError):
            pass
        finally:
            self._open = False
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
            proc.stdout.close()


def child_main() -> None:
    """The child's entry point: settings first, then messages until "end" or "abort" (or the parent's end)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout is the answer channel: nothing else may be written to it
    try:
        settings = pickle.load(stdin)
        asyncio.run(_serve(settings, stdin, stdout))
    except (KeyboardInterrupt, EOFError):  # the parent's Ctrl-C reaches the whole process group; or it died
        pass


async def _serve(settings: Settings, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    from mirrorctl.outside.fetch import SpeculativeFetcher
    from mirrorctl.runtime import Runtime

    rt = Runtime.for_settings(settings, environ=os.environ)  # this process's own: the parent's settings
    async with rt.client() as client:
        early = SpeculativeFetcher(
            rt.store, client,
            concurrency=settings.fetch.concurrency, retries=settings.fetch.retries, progress=SILENT,
        )
        kind = "end"
        try:
            while True:
                try:
                    kind, value = await asyncio.to_thread(pickle.load, stdin)
                except EOFError:  # the parent is gone: do not leave downloads running for nobody
                    kind = "abort"
                if kind == "get":
                    early.submit(value)
                elif kind == "keep":
                    early.cancel_unless(value)
                else:
                    break
        finally:
            if kind == "end":
                await early.wait()
            else:
                await early.abort()
        with contextlib.suppress(OSError):
            pickle.dump((early.downloaded, early.downloaded_bytes, early.failed, early.cancelled), stdout)
            stdout.flush()
        # Every download has finished or was cancelled (its file closed, a finished one renamed into the store):
        # nothing is left to clean up that the parent waits for, so end now, as multiprocessing's workers do,
        # without closing idle connections and finalizing the interpreter first (~0.1 s the parent would wait).
        os._exit(0)
