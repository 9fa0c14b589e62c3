"""The exception tree of mirrorctl.

    MirrorctlError            every error this library raises on purpose
    ├── UserError             bad input: a profile, a setting, a flag, a file (CLI exit code 2)
    │   └── ProfileError      a profile or lock file that cannot be used
    ├── NetworkError          an upstream that cannot be reached or answers wrongly (exit 1)
    ├── IntegrityError        bytes that are not what a lock, manifest or signature says (exit 1)
    │   └── BundleRefused     a bundle that import or verify refuses
    ├── ResolutionError       requirements that no set of versions satisfies for a target (exit 1)
    └── TargetError           a publish target (Pulp, devpi) that fails (exit 1)

Each error carries a message that names the thing at fault (file, field, artifact, URL) and an optional hint
that says what to do. Lower-level exceptions are mapped once, at the boundary where they occur, with
``raise ... from exc``; the CLI turns these into a message and an exit code in one place.
"""

from __future__ import annotations


class MirrorctlError(Exception):
    """Base class. ``hint`` says what to do about it; ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UserError(MirrorctlError):
    """Input the user can fix: a profile, a setting, an argument, a file that is not what it should be."""

    exit_code = 2


class ProfileError(UserError):
    """A profile (or its lock) that cannot be used. The message names the file, field and, where known, line."""


class NetworkError(MirrorctlError):
    """An upstream that cannot be reached, or that answers with an error after retries."""


class IntegrityError(MirrorctlError):
    """Bytes that do not match the size or digest that a lock, manifest or signature promises."""


class BundleRefused(IntegrityError):
    """A bundle that verify or import refuses. Nothing was changed in the store."""


class ResolutionError(MirrorctlError):
    """A target for which no consistent set of versions exists."""


class TargetError(MirrorctlError):
    """A publish target that is unreachable, misconfigured, or refuses content."""
