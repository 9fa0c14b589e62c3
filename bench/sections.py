"""Named sections of docs/benchmarks.md, so several benchmarks share one file without overwriting each other.

A section is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` (each marker on its own
line). :func:`update_section` replaces that text, or appends a new section at the end, and leaves every other
byte of the file as it was. Example::

    from sections import update_section
    update_section(Path("docs/benchmarks.md"), "publish", "## Publishing into Pulp and devpi\\n...")
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_section(text: str, name: str, markdown: str) -> str:
    """``text`` with section ``name`` holding ``markdown``: replaced in place, or appended at the end."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"section name {name!r}: use lower-case letters, digits, '.', '_' and '-'")
    start, end = _markers(name)
    body = markdown.strip("\n")
    if start in body or end in body:
        raise ValueError(f"section {name}: the Markdown must not contain its own markers")
    block = f"{start}\n{body}\n{end}"
    # Markers must stand alone on their line, so a marker quoted inside a code span is not mistaken for one.
    pattern = re.compile(rf"^{re.escape(start)}[ \t]*\n.*?^{re.escape(end)}[ \t]*$", re.M | re.S)
    found = list(pattern.finditer(text))
    if len(found) > 1:
        raise ValueError(f"section {name} appears {len(found)} times; fix the file by hand")
    if found:
        m = found[0]
        return text[: m.start()] + block + text[m.end() :]
    if re.search(rf"^{re.escape(start)}[ \t]*$", text, re.M) or re.search(rf"^{re.escape(end)}[ \t]*$", text, re.M):
        raise ValueError(f"section {name} has an opening or closing marker without the other; fix the file by hand")
    if not text:
        return block + "\n"
    return text.rstrip("\n") + "\n\n" + block + "\n"


def update_section(path: Path, name: str, markdown: str) -> None:
    """Replace (or append) section ``name`` of the Markdown file at ``path``; the file is created if missing.

    Written to a temporary file beside it and renamed over it, so a failure leaves the old file whole.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new = replace_section(text, name, markdown)
    if new == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
