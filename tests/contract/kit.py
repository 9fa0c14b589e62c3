"""What an ecosystem's contract fixture gives the contract suite (tests/contract/test_contract.py).

Every ecosystem registered under the ``mirrorctl.ecosystems.v1`` entry-point group gets the suite. Its test side is
one module, ``tests/contract/<entry-point name>.py`` (``-`` and ``.`` in the name become ``_``), with:

* ``start(workdir: Path, *, hostile: bool = False) -> ContractUpstream``: a running fixture upstream (on
  tests/fixtures/fixture_server.py) holding a tiny closure (one artifact is best) and one package the profile does
  not ask for. Same content, same bytes: ``start`` twice serves identical files. With ``hostile=True`` the
  upstream instead offers the closure under a name that must never become a path (``1.0.0/../../x``, a pool path
  leaving the pool, ...).
* ``HOSTILE: str | None``: what the lock says when it refuses that hostile upstream (best: the hostile name
  itself, quoted as the message quotes it); None where the ecosystem has no such check (then say why in a comment).

Example (a new ecosystem, ``gomod``)::

    # tests/contract/gomod.py
    HOSTILE = "is not a valid module path"

    def start(workdir: Path, *, hostile: bool = False) -> ContractUpstream:
        proxy = FixtureGoProxy(workdir)          # a fixture upstream whose ``server`` is a FixtureServer
        proxy.add("example.test/mod", "v1.0.0")
        proxy.server.start()
        return ContractUpstream(
            server=proxy.server, upstream=f'url = "{proxy.url}"',
            profile='[gomod]\\nmodules = ["example.test/mod@v1.0.0"]\\n',
            artifacts=("/example.test/mod/@v/v1.0.0.zip",), label="v1.0.0.zip",
            imported=("/gomod/example.test/mod/@v/list",),
            not_imported=("/gomod/example.test/other/@v/list",),
        )
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

from tests.fixtures.fixture_server import FixtureServer

GROUP = "mirrorctl.ecosystems.v1"


@dataclass
class ContractUpstream:
    server: FixtureServer  # running; the suite stops it
    upstream: str  # the body of [upstreams.<name>] in mirrorctl.toml: url and whatever else the adapter needs
    profile: str  # the profile's section(s) for this ecosystem
    artifacts: tuple[str, ...]  # request paths, on ``server``, of the closure's artifact files
    label: str  # what a refusal of the first artifact names (its file name)
    imported: tuple[str, ...]  # mirror paths (from the root: /<name>/...) served 200 once the closure is imported
    not_imported: tuple[str, ...]  # mirror paths of what the upstream has but the profile did not ask for: 404
    inside_setup: tuple[tuple[str, ...], ...] = ()  # CLI commands the inside runs before it serves


class ContractFixture(Protocol):
    HOSTILE: str | None

    def start(self, workdir: Path, *, hostile: bool = False) -> ContractUpstream: ...


def registered() -> list[str]:
    """The names of every registered ecosystem, as ``load_ecosystems`` finds them."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def module_name(ecosystem: str) -> str:
    return "tests.contract." + ecosystem.replace("-", "_").replace(".", "_")


def contract_fixture(ecosystem: str) -> ContractFixture:
    """The ecosystem's contract fixture module; a registered ecosystem without one fails the suite."""
    name = module_name(ecosystem)
    try:
        module: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        ep = next((e for e in entry_points(group=GROUP) if e.name == ecosystem), None)
        pytest.fail(
            f"ecosystem {ecosystem!r} is registered ({GROUP}: {ep.value if ep else '?'}) but has no contract "
            f"fixture: add tests/{name.split('.', 1)[1].replace('.', '/')}.py with start(workdir, *, hostile=False) "
            "-> ContractUpstream and HOSTILE (see tests/contract/kit.py)",
            pytrace=False,
        )
    missing = [attr for attr in ("start", "HOSTILE") if not hasattr(module, attr)]
    if missing:
        pytest.fail(f"{module.__file__}: the contract fixture of {ecosystem!r} lacks {', '.join(missing)} "
                    "(see tests/contract/kit.py)", pytrace=False)
    return module  # type: ignore[return-value]
