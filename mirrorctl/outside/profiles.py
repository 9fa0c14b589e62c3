"""Profile TOML -> typed :class:`Profile`, with errors that name the file, the field and, where known, the line.

A profile declares what one team needs, one table per ecosystem; ``include`` pulls in other profiles of the
same folder (lists are joined, scalars of the including profile win)::

    include = ["base"]
    description = "Data science workspaces"

    [pypi]
    requirements = ["pandas>=2", "httpx[http2]"]
    python = ["3.11", "3.12"]
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64"]
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirrorctl.ecosystems.base import Ecosystem, FieldRef, ProfileSpec
from mirrorctl.errors import ProfileError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_GENERIC_KEYS = {"include", "description"}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    path: Path
    description: str
    specs: Mapping[str, ProfileSpec]  # ecosystem name -> the adapter's parsed spec
    inputs_digest: str  # sha256 over the effective (merged) inputs: what `lock --check` compares

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")


class _Source:
    """Finds the line of a field in the profile text, for messages."""

    def __init__(self, path: Path, text: str, prefix: str) -> None:
        self.path = path
        self._lines = text.splitlines()
        self._prefix = prefix

    def ref(self, field: str, index: int | None = None) -> FieldRef:
        key = field.rsplit(".", 1)[-1]
        name = f"{self._prefix}{field}" + (f"[{index}]" if index is not None else "")
        return FieldRef(self.path, name, self._line_of(key, index))

    def _line_of(self, key: str, index: int | None) -> int | None:
        if not self._prefix:
            for no, line in enumerate(self._lines, 1):
                if re.match(rf"^\s*\[{re.escape(key)}(\.[^\]]*)?\]", line):
                    return no
        in_table = not self._prefix
        start = None
        for no, line in enumerate(self._lines, 1):
            stripped = line.strip()
            if stripped.startswith("["):
                in_table = stripped.strip("[] ") == self._prefix.rstrip(".") or not self._prefix
                continue
            if in_table and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                start = no
                break
        if start is None or index is None:
            return start
        # Best effort for one-item-per-line arrays: the index-th quoted string after the key.
        seen = -1
        for no in range(start, len(self._lines) + 1):
            body = self._lines[no - 1].split("=", 1)[1] if no == start else self._lines[no - 1]
            for _ in re.finditer(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'", body):
                seen += 1
                if seen == index:
                    return no
            if "]" in re.sub(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'", "", body):
                break
        return start


def profile_path(profiles_dir: Path, name_or_path: str) -> Path:
    """``web`` -> ``profiles/web.toml``; a path to a .toml file is taken as it is."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return Path(name_or_path)
    return profiles_dir / f"{name_or_path}.toml"


def list_profiles(profiles_dir: Path) -> list[Path]:
    return sorted(profiles_dir.glob("*.toml"))


def load_profile(path: Path, ecosystems: Mapping[str, Ecosystem]) -> Profile:
    """Read, merge includes, validate. Raises ProfileError naming file, field and line."""
    name = path.stem
    if not _NAME.match(name):
        raise ProfileError(
            f"{path}: profile name {name!r} is not allowed",
            hint="use lowercase letters, digits, '-' and '_' (it becomes a file and bundle name)",
        )
    merged, texts = _load_merged(path, (), ecosystems)
    specs: dict[str, ProfileSpec] = {}
    for eco_name in sorted(k for k in merged if k not in _GENERIC_KEYS):
        table = merged[eco_name]
        origin, text = texts[eco_name]
        specs[eco_name] = ecosystems[eco_name].parse_profile(table, _Source(origin, text, f"{eco_name}."))
    if not specs:
        raise ProfileError(
            f"{path}: declares no ecosystem",
            hint=f"add a table for one of: {', '.join(sorted(ecosystems))}",
        )
    inputs = {k: v for k, v in merged.items() if k != "description"}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    return Profile(name, path, str(merged.get("description", "")), specs, f"sha256:{digest}")


def _load_merged(
    path: Path, chain: tuple[Path, ...], ecosystems: Mapping[str, Ecosystem]
) -> tuple[dict[str, Any], dict[str, tuple[Path, str]]]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(p.name for p in (*chain, resolved))
        raise ProfileError(f"{path}: include cycle: {cycle}", hint="remove one of the includes")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f" (included from {chain[-1]})" if chain else ""
        raise ProfileError(
            f"{path}: profile not found{where}", hint="check the name; profiles live in profiles/"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}", hint="fix the syntax at that line") from exc
    except RecursionError:  # arrays or tables nested past the interpreter's stack
        raise ProfileError(f"{path}: not valid TOML: nested too deeply", hint="flatten the nested arrays") from None

    src = _Source(path, text, "")
    for key, value in data.items():
        if key in _GENERIC_KEYS:
            continue
        if key not in ecosystems:
            raise ProfileError(
                f"{src.ref(key)}: unknown key {key!r}",
                hint=f"top-level keys are include, description and the ecosystems: {', '.join(sorted(ecosystems))}",
            )
        if not isinstance(value, dict):
            raise ProfileError(f"{src.ref(key)}: must be a table ([{key}])")
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ProfileError(f"{src.ref('include')}: must be a list of profile names")
    if not isinstance(data.get("description", ""), str):
        raise ProfileError(f"{src.ref('description')}: must be a string")

    merged: dict[str, Any] = {}
    texts: dict[str, tuple[Path, str]] = {}
    for inc in includes:
        inc_path = profile_path(path.parent, inc)
        sub, sub_texts = _load_merged(inc_path, (*chain, resolved), ecosystems)
        _merge_into(merged, sub)
        texts.update(sub_texts)
    _merge_into(merged, {k: v for k, v in data.items() if k != "include"})
    texts.update({k: (path, text) for k in data if k not in _GENERIC_KEYS})
    return merged, texts


def _merge_into(dest: dict[str, Any], src: Mapping[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dest.get(key), dict):
            _merge_into(dest[key], value)
        elif isinstance(value, list) and isinstance(dest.get(key), list):
            dest[key] = dest[key] + [v for v in value if v not in dest[key]]
        else:
            dest[key] = json.loads(json.dumps(value, default=str)) if isinstance(value, (dict, list)) else value
