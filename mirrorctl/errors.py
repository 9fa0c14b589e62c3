"""The exception tree of mirrorctl.

    MirrorctlError            every error this library raises on purpose
    ├── UserError             bad input: a profile, a setting, a flag, a file (CLI exit code 2)
    │   └── ProfileError      a profile or lock file that cannot be used
    ├── NetworkError          an upstream that cannot be reached or answers wrongly (exit 1)
    ├── IntegrityError        bytes that are not what a lock, manifest or signature says (exit 1)
    │   ├── DigestMismatch    a file whose size or digests differ from the ones promised
    │   ├── BundleRefused     a bundle that import or verify refuses
    │   └── ChecksumMismatch  SECURITY: a checksum a transparency log (a checksum database) contradicts
    ├── ResolutionError       requirements that no set of versions satisfies for a target (exit 1)
    └── TargetError           a publish target (Pulp, devpi) that fails (exit 1)

Each error carries data: what was at fault (file, field, artifact, URL), and an optional hint that says what to
do. Where the data matters to a caller it is typed: a :class:`NetworkError` holds the URL, the last HTTP status
and how many attempts were made; a :class:`DigestMismatch` the artifact and the expected and actual digests.
``message`` renders that data as one line; the CLI renders the error (message, hint) in one place
(``mirrorctl.cli.render.render_error``). Lower-level exceptions are mapped once, at the boundary where they
occur, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

QUOTE_LIMIT = 200


def shorten(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` (a string, or any value's ``repr``) as a message may quote it: cut to ``limit`` characters with
    its whole length said. Untrusted names (bundle members, paths, versions) can be megabytes long; a refusal
    names them without copying them whole into every message and journal entry. Quote the result with ``!r``
    where the value may hold control characters.

    Example: ``shorten("a" * 10_000, 5)`` -> ``"aaaaa… (10000 characters)"``
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = repr(value)
        except ValueError:  # an int past Python's digit limit cannot even be turned into text
            return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else "an unprintable value"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class MirrorctlError(Exception):
    """Base class. ``hint`` says what to do about it; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self._text = message
        self.hint = hint

    @property
    def message(self) -> str:
        """One line naming the thing at fault; errors with typed fields render it from them."""
        return self._text

    def __str__(self) -> str:
        return self.message


class UserError(MirrorctlError):
    """Input the user can fix: a profile, a setting, an argument, a file that is not what it should be."""

    exit_code = 2


class ProfileError(UserError):
    """A profile (or its lock) that cannot be used. The message names the file, field and, where known, line."""


class NetworkError(MirrorctlError):
    """An upstream that cannot be reached, or that answers with an error after retries.

    Built from a free-form ``message``, or from data: ``what`` was being fetched (an artifact label, "pypi
    project page requests"), ``url`` (redacted), the last HTTP ``status`` (None when no answer came),
    ``reason`` (the transport failure's kind, when there was no answer) with its ``detail``, and
    ``attempts`` (requests made, retries included). ``failures``: the single errors, when this one stands for
    several downloads.

    Example: ``NetworkError(what="pypi a 1.0", url="http://127.0.0.1:9/a.whl", status=503, attempts=5)``
    renders as ``pypi a 1.0 (after 5 attempts): HTTP 503 from http://127.0.0.1:9/a.whl``.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        hint: str | None = None,
        what: str | None = None,
        url: str | None = None,
        status: int | None = None,
        reason: str | None = None,
        detail: str | None = None,
        attempts: int = 1,
        failures: tuple[MirrorctlError, ...] = (),
    ) -> None:
        self.what = what
        self.url = url
        self.status = status
        self.reason = reason
        self.detail = detail
        self.attempts = attempts
        self.failures = failures
        super().__init__(message if message is not None else "", hint=hint)
        self._free = message is not None
        self.args = (self.message,)

    @property
    def message(self) -> str:
        if self._free:
            return self._text
        what = self.what or "upstream request"
        tries = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        where = self.url or "upstream"
        if self.status is not None:
            return f"{what}{tries}: HTTP {self.status} from {where}"
        said = f": {self.detail}" if self.detail else ""
        return f"{what}{tries}: {self.reason or 'no answer'} talking to {where}{said}"


class IntegrityError(MirrorctlError):
    """Bytes that do not match the size or digest that a lock, manifest or signature promises."""


class DigestMismatch(IntegrityError):
    """A file whose size or digests are not the promised ones: ``artifact`` names it (the lock's label),
    ``expected``/``actual`` map algorithm -> hex digest (``actual`` holds the algorithms that differ, or nothing
    when the size already differs), ``expected_size``/``actual_size`` in bytes, ``url`` where it came from
    (redacted), ``source`` what promised the digest ("the lock", "the registry's integrity"), ``what`` the
    kind of file ("the file", "the tarball").

    Example: ``DigestMismatch("pypi a 1.0 (a-1.0.whl)", expected={"sha256": "ab…"}, actual={"sha256": "cd…"},
    url="http://127.0.0.1:9/a-1.0.whl")`` renders as ``pypi a 1.0 (a-1.0.whl): the file from
    http://127.0.0.1:9/a-1.0.whl does not match the lock: sha256 cd… (expected ab…)``.
    """

    def __init__(
        self,
        artifact: str,
        *,
        expected: Mapping[str, str],
        actual: Mapping[str, str],
        expected_size: int | None = None,
        actual_size: int | None = None,
        url: str | None = None,
        source: str = "the lock",
        what: str = "the file",
        hint: str | None = None,
    ) -> None:
        self.artifact = artifact
        self.expected = MappingProxyType(dict(expected))
        self.actual = MappingProxyType(dict(actual))
        self.expected_size = expected_size
        self.actual_size = actual_size
        self.url = url
        self.source = source
        self.what = what
        super().__init__("", hint=hint)
        self.args = (self.message,)

    @property
    def size_differs(self) -> bool:
        known = self.actual_size is not None and self.expected_size is not None
        return known and self.actual_size != self.expected_size

    @property
    def message(self) -> str:
        if self.size_differs:
            sha = f", sha256 {self.expected['sha256']}" if "sha256" in self.expected else ""
            got = f"size {self.actual_size} (expected {self.expected_size}{sha})"
        else:
            got = ", ".join(f"{k} {v} (expected {self.expected.get(k)})" for k, v in self.actual.items())
        origin = f" from {self.url}" if self.url else ""
        return f"{self.artifact}: {self.what}{origin} does not match {self.source}: {got}"


class BundleRefused(IntegrityError):
    """A bundle that verify or import refuses. Nothing was changed in the store."""


class ChecksumMismatch(IntegrityError):
    """SECURITY: a checksum database (a transparency log) contradicts a checksum, or cannot prove what it says.

    ``artifact`` names the module or file, ``reason`` what disagrees (``database`` / ``actual``: the two
    checksums when two were compared), ``database`` the checksum database's name.

    Example: ``ChecksumMismatch("example.test/m v1.0.0", database="sumdb.test", reason="checksum mismatch",
    expected="h1:AAA=", actual="h1:BBB=")`` renders as ``SECURITY ERROR: example.test/m v1.0.0: checksum
    mismatch against the checksum database sumdb.test: h1:BBB= (the database says h1:AAA=)``.
    """

    def __init__(
        self,
        artifact: str,
        *,
        database: str,
        reason: str,
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.artifact = artifact
        self.database = database
        self.reason = reason
        self.expected = expected
        self.actual = actual
        super().__init__(
            "",
            hint=hint
            or "do not use this version: the upstream or the way to it serves altered content; report it",
        )
        self.args = (self.message,)

    @property
    def message(self) -> str:
        said = f": {self.actual} (the database says {self.expected})" if self.expected or self.actual else ""
        return (
            f"SECURITY ERROR: {self.artifact}: {self.reason} against the checksum database "
            f"{shorten(self.database, 80)}{said}"
        )


class ResolutionError(MirrorctlError):
    """A target for which no consistent set of versions exists."""


class TargetError(MirrorctlError):
    """A publish target that is unreachable, misconfigured, or refuses content."""
