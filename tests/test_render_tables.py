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


def test_history_table_hides_pulp_api_addresses_and_aligns(capsys: pytest.CaptureFixture[str]) -> None:
    from mirrorctl.cli.cmd_publish import print_versions
    from mirrorctl.targets.base import PublishedVersion

    href = "/pulp/api/v3/repositories/python/python/0190-ab/versions/{n}/"
    versions = [
        PublishedVersion("pypi", "team", n, f"2026-03-{n + 1:02d}T12:00:00Z", 70 + n, n == 10,
                         {"href": href.format(n=n), "added": str(n), "removed": "0"})
        for n in (10, 9)
    ]
    print_versions(versions)
    header, first, second = capsys.readouterr().out.splitlines()
    assert "/pulp/api/" not in header + first + second and "href" not in header
    assert header.split() == ["version", "created", "repository", "artifacts", "added", "removed"]
    assert first.split() == ["*", "10", "2026-03-11T12:00:00Z", "team", "80", "10", "0"]
    assert second.split()[0] == "9" and second.index("9") == first.index("10") + 1  # numbers right-aligned


def test_publish_results_are_one_table_row_per_repository(capsys: pytest.CaptureFixture[str]) -> None:
    from mirrorctl.cli.cmd_publish import RESULT_COLUMNS, result_row
    from mirrorctl.targets.base import PublishResult

    results = [
        PublishResult("pypi", "team-pypi", 70, 0, 0, 1, True, "http://127.0.0.1:24817/pypi/team/simple/", 14.25),
        PublishResult("npm", "team-npm", 0, 120, 3, None, False, "http://127.0.0.1:24817/npm/team/", 0.5),
    ]
    print_table(RESULT_COLUMNS, [result_row(r) for r in results])
    header, pypi, npm = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "ecosystem", "repository", "result", "uploaded", "present", "removed", "version", "took", "clients", "use",
    ]
    assert pypi.split() == ["pypi", "team-pypi", "changed", "70", "0", "0", "1", "14.2s",
                            "http://127.0.0.1:24817/pypi/team/simple/"]
    assert npm.split()[2:8] == ["unchanged", "0", "120", "3", "-", "0.5s"]
    assert pypi.index("http") == npm.index("http") == header.index("clients use")
