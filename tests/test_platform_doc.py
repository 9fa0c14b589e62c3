"""docs/platform-engineers.md's inside: the whole mirrorctl.toml it shows is one mirrorctl reads (every table,
the Pulp target included), the first-time commands generate the apt archive key before anything is served, and
the warning it quotes is the one mirrorctl prints (issue 13 item 9)."""

from __future__ import annotations

import re
from pathlib import Path

from mirrorctl.config import load_settings
from mirrorctl.ecosystems.apt.health import serve_problems
from mirrorctl.ecosystems.base import load_ecosystems
from mirrorctl.inside.store import Store
from mirrorctl.targets.pulp.plugins import plugins_for

from .fixtures.apt_store import apt_artifact
from .fixtures.debs import build_deb
from .fixtures.store_content import publish_view

DOC = Path(__file__).resolve().parent.parent / "docs" / "platform-engineers.md"


def _section() -> str:
    return DOC.read_text().split("## Inside: import and serve", 1)[1].split("\n## ", 1)[0]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", _section(), flags=re.DOTALL)


def test_the_inside_mirrorctl_toml_is_whole_and_read_as_it_is(tmp_path: Path) -> None:
    [toml] = [b for b in _blocks("toml") if b.startswith("# the inside's mirrorctl.toml")]
    config = tmp_path / "mirrorctl.toml"
    config.write_text(toml)
    ecosystems = load_ecosystems()
    settings = load_settings(config, ecosystems=ecosystems)
    assert settings.upstreams == {}  # nothing inside fetches
    assert settings.store_path == tmp_path / "store"
    assert settings.trusted_keys == (tmp_path / "keys" / "mirrorctl.key.pub",)
    assert (settings.serve_host, settings.serve_port) == ("0.0.0.0", 8080)
    assert set(settings.serve_options) == {"apt", "npm"}
    assert set(plugins_for(settings.target("pulp"), ecosystems)) == {"pypi", "npm", "apt"}
    tables = set(re.findall(r"^\[([a-z.]+)\]", toml, flags=re.MULTILINE))
    assert tables == {"store", "trust", "serve", "serve.apt", "serve.npm", "signing", "targets.pulp"}


def test_the_first_time_commands_make_the_archive_key_before_serving() -> None:
    [commands] = [b for b in _blocks("sh") if "mirrorctl serve" in b]
    order = [line.split("#")[0].split()[1] for line in commands.splitlines() if line.startswith("mirrorctl ")]
    assert order == ["archive-key", "import", "serve", "workspace-config"]
    assert commands.startswith("mirrorctl archive-key generate")


def test_the_quoted_warning_is_the_one_mirrorctl_prints(tmp_path: Path) -> None:
    from mirrorctl.inside.serve import StoreContent

    store = Store(tmp_path / "s")
    publish_view(store, [apt_artifact(store, build_deb(tmp_path / "debs", "mctl-hello", "1.0-1", "amd64"))])
    [problem] = serve_problems(StoreContent(store))
    [quoted] = _blocks("text")
    # The doc's store is /srv/mirror/store (its mirrorctl.toml in /srv/mirror): word for word otherwise.
    printed = f"WARNING: {problem.line()}\n".replace(str(store.root), "/srv/mirror/store")
    assert quoted == printed
