"""`mirrorctl key generate` prints what docs/signing.md shows, and its hint fits both keys it makes: the outside's
bundle key (public half into the inside's [trust] keys) and an inside's state key (in no [trust] keys), so the
runbook's inside step does not tell anyone to trust a state key for bundles."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from mirrorctl.cli.app import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "signing.md"


def test_generate_prints_the_lines_the_signing_doc_shows(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "mirrorctl.toml").write_text(f'[store]\npath = "{tmp_path / "store"}"\n')
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        done = CliRunner().invoke(app, ["--config", "mirrorctl.toml", "key", "generate", "--out", "keys/mirrorctl.key"])
    finally:
        os.chdir(cwd)
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].startswith("key id ") and len(lines) == 3
    doc = DOC.read_text()
    for line in lines[1:]:
        assert line in doc, line
    assert "copy it inside" not in done.output and "in none" in lines[2]
