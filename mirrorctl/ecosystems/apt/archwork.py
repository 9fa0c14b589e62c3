"""One architecture's share of an apt lock: read its index texts, resolve, hand back only the closure.

In a small suite (tests) this runs in a thread over whole texts (:func:`lock_arch`). In a full suite each
architecture gets its own worker process (:class:`ArchWorker`): the index text is sent as it decompresses, in
stanza-aligned pieces, and the worker reads each piece at once, so reading overlaps the download instead of
following it. Nothing is resolved before the main process says every index of the architecture matched its Release
size and SHA256 (``resolve``); a piece from a failed attempt is dropped (``reset``), and on any failure the worker is
closed unused. Only the resolved packages travel back (a few hundred), never the 63,000 stanzas.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mirrorctl.errors import IntegrityError, MirrorctlError, ProfileError, ResolutionError, UserError

from .index import scan_index
from .resolve import BinaryPackage, ResolvedPackage, Source, resolve
from .spec import AptSpec


@dataclass(frozen=True)
class ArchResult:
    """One architecture's closure, the source (suite, archive, component) of each of its pool files, and where the
    time went."""

    resolved: list[ResolvedPackage]
    sources: dict[str, Source]
    parse_s: float
    resolve_s: float
    error: tuple[str, str, str | None] | None = None  # (error class, message, hint): exceptions lose hints in pickling


ERRORS: dict[str, type[MirrorctlError]] = {
    cls.__name__: cls for cls in (IntegrityError, ResolutionError, UserError, ProfileError)
}


def _failed(exc: MirrorctlError) -> ArchResult:
    return ArchResult([], {}, 0.0, 0.0, (type(exc).__name__, exc.message, exc.hint))


def _read(text: bytes) -> list[BinaryPackage]:
    return [BinaryPackage(fields) for fields in scan_index(text)]


def _closure(
    spec: AptSpec, arch: str, parts: Sequence[tuple[Source, list[BinaryPackage]]], parse_s: float
) -> ArchResult:
    """Resolve over the packages of each (source, packages) part, in the profile's suite and component order."""
    for source, found in parts:
        for pkg in found:
            pkg.source = source
    packages = [pkg for _, found in parts for pkg in found]
    try:
        t0 = time.monotonic()
        resolved = resolve_arch(spec, arch, packages)
        resolve_s = time.monotonic() - t0
    except (IntegrityError, ResolutionError, UserError) as exc:
        return _failed(exc)
    used = {p.filename: p.source for p in resolved if p.source is not None}
    return ArchResult(resolved, used, parse_s, resolve_s)


def lock_arch(spec: AptSpec, arch: str, indexes: Sequence[tuple[Source, str, bytes]]) -> ArchResult:
    """Read and resolve one architecture from its whole index texts (source, index key, text), each already
    checked against its suite's Release by :class:`.index.IndexCheck`."""
    try:
        t0 = time.monotonic()
        parts = [(source, _read(text)) for source, _key, text in indexes]
        parse_s = time.monotonic() - t0
    except IntegrityError as exc:
        return _failed(exc)
    return _closure(spec, arch, parts, parse_s)


def _suites(spec: AptSpec) -> str:
    """``suite 'bookworm'`` or ``suites 'bookworm', 'bookworm-security'`` for messages."""
    if not spec.more_suites:
        return f"suite {spec.suite!r}"
    return "suites " + ", ".join(repr(s) for s in spec.suites)


def resolve_arch(spec: AptSpec, arch: str, packages: list[BinaryPackage]) -> list[ResolvedPackage]:
    try:
        result = resolve(
            packages, spec.packages, arch=arch, pins=spec.pins, essential=spec.essential, recommends=spec.recommends
        )
    except ResolutionError as exc:
        named = [spec.origin(p) for p in spec.packages if f"package {p} " in exc.message or f"pin {p}=" in exc.message]
        where = f" (named at {named[0]})" if named else ""
        raise ResolutionError(f"apt {_suites(spec)}: {exc.message}{where}", hint=exc.hint) from exc
    names = {p.name for p in result}
    for root in spec.packages:
        if root not in names:
            # A virtual name with one provider resolves, but the lock records real packages only, and
            # `lock --check` must find every profile entry in it: ask for the provider by name.
            providers = sorted({p.name for p in packages if p.architecture in (arch, "all")
                                and any(v == root for v, _ in p.provides)})
            raise ResolutionError(
                f"apt {_suites(spec)}: {root} ({spec.origin(root)}) is a virtual package on {arch}, "
                f"provided by {', '.join(providers)}",
                hint="name the package that provides it instead",
            )
    return result


def child_main() -> None:
    """The worker's entry point. Messages on stdin (pickled; from our own parent only, nothing from the network is
    unpickled): ("text", path, piece) | ("reset", path) | ("resolve", spec, arch, [(source, key)]). Pieces are
    read as they come but stay unused until "resolve"; the one answer (an :class:`ArchResult`) goes to stdout. End
    of input without "resolve" (the parent failed or gave up): exit."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    parts: dict[str, list[BinaryPackage]] = {}
    error: IntegrityError | None = None
    parse_s = 0.0
    while True:
        try:
            msg = pickle.load(source)
        except (EOFError, OSError, pickle.UnpicklingError):
            return
        if msg[0] == "text":
            t0 = time.monotonic()
            try:
                parts.setdefault(msg[1], []).extend(_read(msg[2]))
            except IntegrityError as exc:
                error = error or exc
            parse_s += time.monotonic() - t0
        elif msg[0] == "reset":
            parts.pop(msg[1], None)
        elif msg[0] == "resolve":
            _, spec, arch, order = msg
            result = _failed(error) if error is not None else _closure(
                spec, arch, [(c, parts.get(p, [])) for c, p in order], parse_s)
            pickle.dump(result, sink, protocol=pickle.HIGHEST_PROTOCOL)
            sink.flush()
            return


# -P: nothing from the working folder on sys.path; the child imports mirrorctl from where the parent did.
_CHILD = "from mirrorctl.ecosystems.apt.archwork import child_main; child_main()"


class ArchWorker:
    """A child interpreter for one architecture that imports only this module and what it needs (not the CLI, as
    ``multiprocessing``'s spawn would by re-running the main script; no fork, as the caller may run threads).
    :meth:`text` may be called from any thread; :meth:`resolve` once, after every index checked out."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
        )  # its imports overlap the InRelease check and the downloads
        self._lock = threading.Lock()

    def _send(self, message: Any) -> None:
        assert self._proc.stdin is not None
        with self._lock:
            try:
                pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise MirrorctlError(f"the apt worker process ended early (exit {self._proc.poll()})",
                                     hint="run again; if it persists, report it with -v") from exc

    def text(self, path: str, piece: bytes) -> None:
        self._send(("text", path, piece))

    def reset(self, path: str) -> None:
        self._send(("reset", path))

    def _resolve(self, spec: AptSpec, arch: str, order: list[tuple[Source, str]]) -> ArchResult:
        assert self._proc.stdout is not None
        self._send(("resolve", spec, arch, order))
        try:
            result = pickle.load(self._proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise MirrorctlError(f"the apt worker for {arch} ended without a result (exit {self._proc.poll()})",
                                 hint="run again; if it persists, report it with -v") from exc
        assert isinstance(result, ArchResult)
        return result

    async def resolve(self, spec: AptSpec, arch: str, order: list[tuple[Source, str]]) -> ArchResult:
        return await asyncio.to_thread(self._resolve, spec, arch, order)

    def close(self) -> None:
        """End the child (it exits on end of input); used or not."""
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
