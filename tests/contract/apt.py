"""The apt contract fixture: one .deb without dependencies locked (amd64), one the profile does not ask for, in a
signed archive; the inside generates its archive key before it serves."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.contract.kit import ContractUpstream
from tests.fixtures.apt_upstream import PREFIX, FixtureAptUpstream
from tests.fixtures.debs import BuiltDeb, TestKey, build_deb

# The index lists the .deb under a Filename that climbs out of the pool: the refusal names that path.
HOSTILE = "'pool/../../etc/contract-apt-tool_1.0-1_amd64.deb'"


@dataclass(frozen=True)
class _HostileDeb(BuiltDeb):
    """Stored in the pool as usual, listed in the index under a Filename that leaves the pool."""

    def stanza(self, component: str = "main") -> str:
        real = f"Filename: {self.pool_path(component)}\n"
        return super().stanza(component).replace(real, f"Filename: pool/../../etc/{self.path.name}\n")


@cache
def _material(root: Path) -> tuple[BuiltDeb, BuiltDeb, TestKey]:
    """Built once per folder: dpkg-deb and gpg take a while, and ``start`` twice must serve the same bytes."""
    tool = build_deb(root / "debs", "contract-apt-tool", "1.0-1", "amd64")
    extra = build_deb(root / "debs", "contract-apt-extra", "1.0-1", "amd64")
    return tool, extra, TestKey.create(root / "gnupg")


def start(workdir: Path, *, hostile: bool = False) -> ContractUpstream:
    tool, extra, key = _material(workdir.parent / "apt-material")
    listed = _HostileDeb(tool.path, tool.name, tool.version, tool.architecture, tool.control) if hostile else tool
    workdir.mkdir(parents=True, exist_ok=True)
    up = FixtureAptUpstream(workdir / "archive", [(listed, ("amd64",)), (extra, ("amd64",))], key)
    up.publish()
    up.server.start()
    return ContractUpstream(
        server=up.server,
        upstream=f'url = "{up.url}"\nkeyring = "{up.keyring}"',
        profile=f'[apt]\nsuite = "{up.suite}"\narchitectures = ["amd64"]\npackages = ["{tool.name}"]\n',
        artifacts=(f"{PREFIX}/{tool.pool_path()}",),
        label=tool.path.name,
        imported=(f"/apt/dists/{up.suite}/InRelease", f"/apt/{tool.pool_path()}"),
        not_imported=(f"/apt/{extra.pool_path()}", f"/apt/pool/main/c/{tool.name}/{extra.path.name}"),
        inside_setup=(("archive-key", "generate"),),
    )
