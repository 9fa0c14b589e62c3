"""Commands an ecosystem adds to ``mirrorctl``, described as data (part of the ecosystem contract).

An ecosystem package registers each :class:`CommandGroup` as an entry point of ``mirrorctl.commands.v1`` named
like the group (apt: ``archive-key = "mirrorctl.ecosystems.apt.commands:ARCHIVE_KEY"``); the CLI
(mirrorctl/cli/cmd_ecosystems.py) finds the names without loading anything, and turns a group into commands with
options, ``--help`` and the one error conversion every command has. An entry point of its own rather than a
method of the adapter: ``mirrorctl --help`` and ``mirrorctl <group>`` need no adapter loaded, and the CLI
registers its commands before the invocation's runtime (which loads the adapters once) exists.
Why data rather than an ecosystem-owned ``cli.py`` registering typer commands:
the library never imports the CLI framework, and an ecosystem module never imports the CLI (its ``Ctx``,
``run_sync``); a later ecosystem shipped as its own package gets the same options, exit codes and help layout
as every other command without depending on typer's API. What a command needs beyond its arguments comes in
:class:`CommandContext`; what it prints it returns as lines.

Example (apt's ``mirrorctl archive-key show``)::

    CommandGroup("archive-key", "The apt archive key ...", (
        Command("show", "List the archive keys.\\n\\nExample: mirrorctl archive-key show", (), run_show),
    ))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from mirrorctl.config import Settings
from mirrorctl.errors import MirrorctlError, UserError

COMMAND_GROUP = "mirrorctl.commands.v1"
T = TypeVar("T")

Value = str | int | float | bool | Path | None
ValueType = type[str] | type[int] | type[float] | type[bool] | type[Path]


@dataclass(frozen=True, slots=True)
class Param:
    """One option (``--overlap-days``) or positional argument of a command.

    ``name`` is the key in :class:`CommandArgs` and, unless ``flag`` says otherwise, the option's spelling
    (``overlap_days`` -> ``--overlap-days``). ``required``: the user must give it (then ``default`` is unused);
    otherwise ``default`` (None: absent)."""

    name: str
    help: str
    type: ValueType = str
    default: Value = None
    required: bool = False
    flag: str | None = None  # e.g. "--from" for name "from_file"
    short: str | None = None  # e.g. "-o"
    argument: bool = False  # positional

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


class Journal(Protocol):
    """Appends one entry to the store's audit journal (mirrorctl/inside/audit.py): ``journal("archive-key-generate",
    fingerprint=fpr, result="ok")``. A journal that cannot be written is reported as a warning, never turned into
    a failure of the change it records (that already happened)."""

    def __call__(self, event: str, /, **fields: object) -> None: ...


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command gets besides its arguments: the settings (read when first asked for, so ``--help`` and
    argument errors need no mirrorctl.toml), and the store's audit journal, where a command that changes the
    inside's state records the change, or its refusal, as every core command does."""

    settings: Callable[[], Settings]
    journal: Journal

    def keys_dir(self) -> Path:
        """The inside's own keys (``<store>/keys``; ``ServedContent.keys_dir`` of the server)."""
        return self.settings().store_path / "keys"

    def journaled(self, event: str, fields: Mapping[str, object], work: Callable[[], T]) -> T:
        """``work()``, its refusal journaled as ``event`` (``result="refused"``, ``error``) and raised again; the
        command journals its ``ok`` entry itself, with what it did."""
        try:
            return work()
        except MirrorctlError as exc:
            self.journal(event, **fields, result="refused", error=exc.message)
            raise


class CommandArgs:
    """The parsed values of a command's params, read back with their type checked."""

    def __init__(self, values: Mapping[str, Value]) -> None:
        self._values = dict(values)

    def _get(self, name: str) -> Value:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"the command declares no param {name!r}") from None

    def text(self, name: str) -> str | None:
        value = self._get(name)
        if value is None or isinstance(value, str):
            return value
        raise TypeError(f"param {name!r} is not text")

    def number(self, name: str) -> float:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"param {name!r} is not a number")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise TypeError(f"param {name!r} is not a flag")
        return value

    def path(self, name: str) -> Path | None:
        value = self._get(name)
        if value is None or isinstance(value, Path):
            return value
        raise TypeError(f"param {name!r} is not a path")


@dataclass(frozen=True, slots=True)
class Command:
    """``run`` does the work and returns the lines to print; it raises MirrorctlError subclasses (the CLI turns
    them into a message, a hint and exit 2 or 1). ``help``: the first line, details, and an ``Example:``."""

    name: str
    help: str
    params: tuple[Param, ...]
    run: Callable[[CommandContext, CommandArgs], Sequence[str]]


@dataclass(frozen=True, slots=True)
class CommandGroup:
    """``mirrorctl <name> <command> ...``."""

    name: str
    help: str
    commands: tuple[Command, ...]


def read_file(path: Path) -> bytes:
    """A file a command was given, or a UserError naming it (exit 2)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from exc
