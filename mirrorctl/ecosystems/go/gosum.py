"""A go.sum read as the go command reads it (cmd/go ``modfetch.readGoSum``): lines ``<module> <version> <hash>``
and ``<module> <version>/go.mod <hash>``; blank lines skipped; any other number of fields refused naming the
file and line; the empty-go.mod hash an old go bug wrote dropped, as go drops it. A module version may carry
several hashes (go keeps each); the lock compares its own ``h1:`` with every ``h1:`` there.

    sums = parse(Path("go.sum").read_bytes(), "team/go.sum")
    sums.hashes("example.com/m", "v1.0.0")            # ("h1:...",): the zip's
    sums.hashes("example.com/m", "v1.0.0", gomod=True)  # the go.mod's
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mirrorctl.errors import UserError, shorten

# h1: of a one-file tree holding an empty go.mod: written for non-modules by an old go, dropped on read.
EMPTY_GO_MOD_H1 = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="


class GoSumError(UserError):
    """A go.sum line the go command refuses: ``source`` names the file, ``line`` the line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: malformed go.sum: {reason}", hint="run `go mod tidy` to rewrite it")


@dataclass(frozen=True, slots=True)
class GoSum:
    # (module, version, is the go.mod's) -> [(hash, line)], in file order
    entries: Mapping[tuple[str, str, bool], tuple[tuple[str, int], ...]]

    def hashes(self, module: str, version: str, *, gomod: bool = False) -> tuple[str, ...]:
        return tuple(h for h, _ in self.entries.get((module, version, gomod), ()))

    def line_of(self, module: str, version: str, *, gomod: bool = False) -> int | None:
        found = self.entries.get((module, version, gomod))
        return found[0][1] if found else None


def parse(data: bytes, source: str) -> GoSum:
    entries: dict[tuple[str, str, bool], list[tuple[str, int]]] = {}
    for no, raw in enumerate(data.split(b"\n"), 1):
        try:
            fields = raw.decode("utf-8").split()
        except UnicodeDecodeError as exc:
            raise GoSumError(source, no, "not valid UTF-8") from exc
        if not fields:
            continue
        if len(fields) != 3:
            raise GoSumError(source, no, f"wrong number of fields {len(fields)} in {shorten(raw.decode(), 80)!r}")
        module, version, digest = fields
        if digest == EMPTY_GO_MOD_H1:
            continue
        gomod = version.endswith("/go.mod")
        key = (module, version[: -len("/go.mod")] if gomod else version, gomod)
        entries.setdefault(key, []).append((digest, no))
    return GoSum(MappingProxyType({k: tuple(v) for k, v in entries.items()}))
