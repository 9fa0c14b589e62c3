"""apt client configuration: the exact files (golden), empty when nothing apt is served, refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mirrorctl.ecosystems.apt.archive_key import ArchiveKey
from mirrorctl.ecosystems.apt.clientconfig import APT_CONF, KEYRING, SOURCES, client_config
from mirrorctl.errors import UserError
from mirrorctl.inside.serve.app import StoreContent
from mirrorctl.inside.store import Store

from .fixtures.apt_store import apt_artifact, apt_store
from .fixtures.debs import build_deb
from .fixtures.store_content import publish_view

GOLDEN = Path(__file__).parent / "golden"


def test_sources_and_apt_conf_match_golden(tmp_path: Path) -> None:
    store, _, arts = apt_store(tmp_path / "store", tmp_path / "debs")
    extra = apt_artifact(store, build_deb(tmp_path / "debs", "mctl-sec", "1.0", "amd64"),
                         suite="bookworm-security", component="updates")
    publish_view(store, [*arts, extra], sequence=2)
    ArchiveKey(store.root / "keys").generate()
    cfg = client_config("http://deb.mirror.internal:8080", content=StoreContent(store))
    assert set(cfg.files) == {SOURCES, KEYRING, APT_CONF}
    assert cfg.files[SOURCES] == (GOLDEN / "apt-mirrorctl.sources").read_text()
    assert cfg.files[APT_CONF] == (GOLDEN / "apt-mirrorctl-apt.conf").read_text()
    assert cfg.files[KEYRING].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert cfg.env == {"APT_CONFIG": "{install_dir}/mirrorctl-apt.conf"}


def test_endpoint_replaces_the_mirror_layout(tmp_path: Path) -> None:
    store, _, _ = apt_store(tmp_path / "store", tmp_path / "debs")
    ArchiveKey(store.root / "keys").generate()
    cfg = client_config("http://pulp.internal", endpoint="http://pulp.internal/pulp/content/apt",
                        content=StoreContent(store))
    assert re.search(r"^URIs: http://pulp.internal/pulp/content/apt/$", cfg.files[SOURCES], re.M)


def test_nothing_apt_served_gives_empty_config(tmp_path: Path) -> None:
    assert client_config("http://m", content=None).files == {}
    empty = client_config("http://m", content=StoreContent(Store(tmp_path / "s")))
    assert (empty.files, empty.env) == ({}, {})


def test_apt_content_without_a_key_is_refused(tmp_path: Path) -> None:
    store, _, _ = apt_store(tmp_path / "store", tmp_path / "debs")
    with pytest.raises(UserError, match="no apt archive key") as err:
        client_config("http://m", content=StoreContent(store))
    assert err.value.hint and "archive-key generate" in err.value.hint
    assert not (store.root / "keys" / "apt").exists()
