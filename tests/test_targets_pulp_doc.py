"""docs/targets-pulp.md lists every key of a Pulp ``[targets.NAME]`` table: exactly the keys the parser accepts
(the core's target keys in mirrorctl/config.py and what every registered Pulp strategy reads), so the two cannot
drift apart (issue 13 item 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mirrorctl.config import _TARGET_KEYS, load_settings
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.errors import UserError
from mirrorctl.targets.pulp.plugins import plugins_for, strategies

DOC = Path(__file__).resolve().parent.parent / "docs" / "targets-pulp.md"


def documented_keys() -> list[str]:
    """The first column of the table under "Every key of `[targets.NAME]`"."""
    text = DOC.read_text()
    section = text.split("## Every key of `[targets.NAME]`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE)


def accepted_keys() -> set[str]:
    return set(_TARGET_KEYS).union(*(s.settings_keys for s in strategies().values()))


def test_the_doc_lists_exactly_the_keys_the_parser_accepts() -> None:
    listed = documented_keys()
    assert len(listed) == len(set(listed)), f"listed twice in {DOC}: {listed}"
    assert set(listed) == accepted_keys(), (
        f"{DOC} lists {sorted(set(listed) - accepted_keys())} that no parser accepts and misses "
        f"{sorted(accepted_keys() - set(listed))}"
    )


def _config(tmp_path: Path, extra: str = "") -> Path:
    # Every documented key with a value the parser takes, as the doc's own example writes them.
    config = tmp_path / "mirrorctl.toml"
    config.write_text(
        '[store]\npath = "s"\n\n[targets.pulp]\nkind = "pulp"\nurl = "http://pulp.internal:24817"\n'
        'content-url = "http://pulp.internal:24816"\nusername-env = "PULP_USERNAME"\npassword-env = "PULP_PASSWORD"\n'
        'token-env = "PULP_TOKEN"\napt-signing-service = "mirrorctl-archive"\n' + extra
        + 'repositories = { pypi = "team-pypi", npm = "team-npm", apt = "team-apt" }\n'
    )
    return config


def test_every_listed_key_is_accepted_and_any_other_is_refused_naming_it(tmp_path: Path) -> None:
    ecosystems = load_ecosystems()
    settings = load_settings(_config(tmp_path), ecosystems=ecosystems)
    target = settings.target("pulp")
    written = {"kind", "url", "content-url", "username-env", "password-env", "token-env", "apt-signing-service",
               "repositories"}
    assert written == set(documented_keys())  # the table above is exercised whole
    assert set(plugins_for(target, ecosystems)) == {"pypi", "npm", "apt"}
    bad = load_settings(_config(tmp_path, 'no-such-key = 0\n'), ecosystems=ecosystems).target("pulp")
    with pytest.raises(UserError, match=r"targets\.pulp\.no-such-key"):
        plugins_for(bad, ecosystems)
