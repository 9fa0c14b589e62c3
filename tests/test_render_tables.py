"""The CLI's tables (cli/render.py): aligned plain columns off a terminal, a rich table on one, human sizes;
and the listing commands that print through them (`snapshots list`, `channels list`, `channels history`)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorctl.cli.app import app
from mirrorctl.cli.render import Column, PlainProgress, print_table, table_lines
from mirrorctl.inside.channels import promote
from mirrorctl.progress import SILENT, human_size
from tests.fixtures.snapshots import Snapshots, two_snapshots


def cli(root: Path, *args: str) -> tuple[int, str]:
    (root / "mirrorctl.toml").write_text('[store]\npath = "inside"\n')
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def starts(line: str, header: str, word: str) -> int:
    """Where the column named ``word`` starts in ``header``; the same column of ``line`` must hold text there."""
    at = header.index(word)
    assert at == 0 or line[at - 1] == " ", (line, header, word)
    return at


def test_plain_table_aligns_columns_and_right_aligns_numbers() -> None:
    lines = table_lines(
        ["name", Column("files", right=True), Column("size", right=True), "where"],
        [["a", 1, human_size(12_345_678), "x"], ["longer-name", 120, human_size(999), None]],
    )
    assert lines == [
        "name         files   size  where",
        "a                1  12 MB  x",
        "longer-name    120  999 B  -",
    ]
    assert all(line == line.rstrip() for line in lines)


def test_plain_table_keeps_one_row_on_one_line_and_refuses_a_short_row() -> None:
    assert table_lines(["a", "b"], [["x\ny", "z"]]) == ["a    b", "x y  z"]
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        table_lines(["a", "b", "c"], [["1", "2"]])


def test_print_table_plain_off_a_terminal_and_rich_on_one() -> None:
    plain = io.StringIO()
    print_table(["id", Column("n", right=True)], [["[bold]x", 3]], out=plain)
    assert plain.getvalue() == "id       n\n[bold]x  3\n"
    fancy = io.StringIO()
    print_table(["id", Column("n", right=True)], [["[bold]x", 3]], out=fancy, rich=True)
    text = fancy.getvalue()
    assert "[bold]x" in text and "id" in text  # cell text is never read as markup
    assert text != plain.getvalue()


def test_human_size_decimal_units() -> None:
    assert [human_size(n) for n in (0, 999, 1_000, 12_345, 12_300_000, 3_400_000_000)] == [
        "0 B", "999 B", "1.0 kB", "12 kB", "12 MB", "3.4 GB",
    ]


def test_plain_progress_shows_byte_tasks_as_sizes_whichever_byte_unit_a_target_names() -> None:
    for unit in ("bytes", "B"):
        out = io.StringIO()
        task = PlainProgress(out).task("upload", 12_300_000, unit=unit)
        task.advance(12_300_000)
        task.close()
        text = out.getvalue()
        assert "upload: started (12 MB)" in text and "done, 12 MB in" in text, text
        assert "12300000" not in text


@pytest.fixture
def snaps(tmp_path: Path) -> Snapshots:
    return two_snapshots(tmp_path)


def test_snapshots_list_is_an_aligned_table_with_sizes(snaps: Snapshots) -> None:
    promote(snaps.store, snaps.first, "prod", SILENT)
    code, out = cli(snaps.world.root, "snapshots", "list")
    assert code == 0, out
    header, first, second = out.splitlines()
    assert header.split() == ["id", "created", "bundle", "sequence", "profiles", "artifacts", "size", "channels"]
    # Every column starts where its header does (left) or ends where it does (right).
    for word in ("created", "bundle", "profiles", "channels"):
        at = starts(first, header, word)
        assert first[at] != " " and second[at] != " ", (word, out)
    for word in ("sequence", "artifacts", "size"):
        end = header.index(word) + len(word) - 1
        assert first[end] != " " and second[end] != " " and first[end + 1] == " ", (word, out)
    view = snaps.store.load_view(snaps.first)
    size = human_size(sum(a.size + sum(c.size for c in a.companions) for a in view.artifacts))
    assert f" {size} " in first and size.endswith("B")


def test_channels_list_and_history_are_aligned_tables(snaps: Snapshots) -> None:
    promote(snaps.store, snaps.first, "prod", SILENT)
    promote(snaps.store, snaps.second, "prod", SILENT)
    code, out = cli(snaps.world.root, "channels", "list")
    assert code == 0, out
    header, *rows = out.splitlines()
    assert header.split() == ["channel", "snapshot", "created", "sequence", "rollback", "steps"]
    assert [r.split()[0] for r in rows] == ["current", "prod"]
    for row in rows:
        assert row[starts(row, header, "snapshot")] != " " and row[starts(row, header, "created")] != " "
    prod = rows[1]
    assert prod.split()[1] == snaps.second and prod.endswith(" 1")  # one step back to the first snapshot
    code, out = cli(snaps.world.root, "channels", "history", "prod")
    assert code == 0, out
    header, *rows = out.splitlines()
    assert header.split() == ["when", "who", "action", "from", "to"]
    assert [r.split()[2] for r in rows] == ["promote", "promote"]
    assert rows[0].split()[3] == "-" and rows[1].split()[3] == snaps.first
    assert all(r[starts(r, header, "to")] != " " for r in rows)
