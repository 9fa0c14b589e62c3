"""bench/sections.py: named sections of docs/benchmarks.md are replaced or appended, the rest stays byte for byte."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_sections", Path(__file__).parents[1] / "bench" / "sections.py")
assert _spec and _spec.loader
sections = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sections)


def test_appends_a_missing_section_and_keeps_the_rest(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nissue 2 text\n")
    sections.update_section(doc, "publish", "## Publish\n\n| a |\n")
    assert (
        doc.read_text()
        == "# Benchmarks\n\nissue 2 text\n\n<!-- bench:publish -->\n## Publish\n\n| a |\n<!-- /bench:publish -->\n"
    )


def test_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    before = (
        "head\n<!-- bench:pypi -->\nP1\n<!-- /bench:pypi -->\n"
        "middle\n<!-- bench:publish -->\nold\n<!-- /bench:publish -->\ntail\n"
    )
    doc.write_text(before)
    sections.update_section(doc, "publish", "new\nlines")
    assert doc.read_text() == before.replace("old\n", "new\nlines\n")
    sections.update_section(doc, "pypi", "P2")
    assert doc.read_text() == before.replace("P1", "P2").replace("old\n", "new\nlines\n")


def test_creates_the_file(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    sections.update_section(doc, "publish", "x")
    assert doc.read_text() == "<!-- bench:publish -->\nx\n<!-- /bench:publish -->\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- bench:publish -->\nonly the start\n", "without the other"),
        (
            "a\n<!-- bench:publish -->\n1\n<!-- /bench:publish -->\n"
            "<!-- bench:publish -->\n2\n<!-- /bench:publish -->\n",
            "2 times",
        ),
    ],
)
def test_refuses_broken_markers_and_leaves_the_file(tmp_path: Path, text: str, message: str) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(text)
    with pytest.raises(ValueError, match=message):
        sections.update_section(doc, "publish", "new")
    assert doc.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["benchmarks.md"]


def test_refuses_bad_names_and_nested_markers(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    with pytest.raises(ValueError, match="section name"):
        sections.update_section(doc, "Pub lish", "x")
    with pytest.raises(ValueError, match="its own markers"):
        sections.update_section(doc, "publish", "<!-- /bench:publish -->")
    assert not doc.exists()


def test_a_marker_inside_a_line_is_not_a_marker(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("see `<!-- bench:publish -->` markers\n")
    sections.update_section(doc, "publish", "x")
    assert doc.read_text().startswith("see `<!-- bench:publish -->` markers\n\n<!-- bench:publish -->\nx\n")
