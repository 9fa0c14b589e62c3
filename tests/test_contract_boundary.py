"""The rule of the ecosystem contract, enforced: the core (everything in mirrorctl/ outside ecosystems/ and the
engine plugins under targets/) names no ecosystem and never probes a contract object.

* no string literal equal to a registered ecosystem's name (``"pypi"``, ``"npm"``, ``"apt"``, and whatever
  registers next); docstrings and comments may name them, code may not;
* no import of an ecosystem package (``mirrorctl.ecosystems.<name>``); the contract modules base and commands
  are what the core imports;
* no ``hasattr``/``getattr`` call: what the core uses of an adapter, a spec, a view or a target is declared in
  their Protocols (ecosystems/base.py, targets/base.py).

A failure names the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mirrorctl.ecosystems.base import load_ecosystems

PACKAGE = Path(__file__).resolve().parent.parent / "mirrorctl"
CONTRACT_MODULES = {"base", "commands"}  # mirrorctl/ecosystems/<these>.py: the contract, not an ecosystem
TARGETS_CORE = {"base.py", "__init__.py"}  # the rest of mirrorctl/targets/ is engine plugins


def core_files() -> list[Path]:
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "ecosystems":
            continue
        if rel.parts[0] == "targets" and not (len(rel.parts) == 2 and rel.name in TARGETS_CORE):
            continue
        files.append(path)
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def violations(path: Path, names: set[str], root: Path = PACKAGE.parent) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root)
    docs = _docstrings(tree)
    out: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and node.value in names and id(node) not in docs:
            out.append(f"{where}:{line}: names the ecosystem {node.value!r}")
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for module in modules:
            parts = module.split(".")
            if parts[:2] == ["mirrorctl", "ecosystems"] and len(parts) > 2 and parts[2] not in CONTRACT_MODULES:
                out.append(f"{where}:{line}: imports the ecosystem package {'.'.join(parts[:3])}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr"):
            out.append(f"{where}:{line}: probes an object with {node.func.id}(); declare it in a Protocol instead")
    return sorted(set(out))


def test_the_core_names_no_ecosystem_and_probes_no_contract_object() -> None:
    names = set(load_ecosystems())
    assert {"pypi", "npm", "apt"} <= names
    files = core_files()
    assert PACKAGE / "diff.py" in files and PACKAGE / "targets" / "base.py" in files
    assert not any("ecosystems" in f.parts or "pulp" in f.parts for f in files)
    found = [v for f in files for v in violations(f, names)]
    assert found == [], "the core must not know ecosystems:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('x = "npm"\n', "names the ecosystem 'npm'"),
        ("from mirrorctl.ecosystems.apt.archive_key import ArchiveKey\n", "imports the ecosystem package"),
        ("from mirrorctl.ecosystems import pypi\n", "imports the ecosystem package mirrorctl.ecosystems.pypi"),
        ("import mirrorctl.ecosystems.npm.serve\n", "imports the ecosystem package mirrorctl.ecosystems.npm"),
        ("ok = hasattr(spec, 'target_ids')\n", "probes an object with hasattr()"),
        ("f = getattr(t, 'trust_files', None)\n", "probes an object with getattr()"),
    ],
)
def test_the_scan_catches_each_kind_and_names_file_and_line(tmp_path: Path, source: str, expected: str) -> None:
    path = tmp_path / "mirrorctl" / "probe.py"
    path.parent.mkdir()
    path.write_text('"""A docstring may say pypi, npm and apt."""\n\n' + source, encoding="utf-8")
    found = violations(path, {"pypi", "npm", "apt"}, tmp_path)
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith("mirrorctl/probe.py:3: ")


def test_docstrings_and_the_contract_modules_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        '"""pypi"""\nfrom mirrorctl.ecosystems.base import load_ecosystems\n'
        "from mirrorctl.ecosystems.commands import Command\n"
        'def f() -> None:\n    """npm"""\n',
        encoding="utf-8",
    )
    assert violations(path, {"pypi", "npm", "apt"}, tmp_path) == []
