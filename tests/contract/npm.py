"""The npm contract fixture: one package without dependencies locked, one the profile does not ask for."""

from __future__ import annotations

from pathlib import Path

from tests.contract.kit import ContractUpstream
from tests.fixtures.npm_registry import FixtureNpmRegistry, PkgSpec

# The registry gives a version key that would climb out of the package folder: the refusal names it.
HOSTILE = "'1.0.0/../../x', which is not a valid npm version"

APP = PkgSpec("contract-npm-app", "1.0.0")
EXTRA = PkgSpec("contract-npm-extra", "1.0.0")


def start(workdir: Path, *, hostile: bool = False) -> ContractUpstream:
    reg = FixtureNpmRegistry(workdir=workdir)
    reg.add(APP)
    reg.add(EXTRA)
    if hostile:  # the latest tag points at it, and the profile asks for latest
        reg.list_as(APP.name, "1.0.0/../../x", APP.version)
        reg.set_tag(APP.name, "latest", "1.0.0/../../x")
    reg.server.start()
    return ContractUpstream(
        server=reg.server,
        upstream=f'url = "{reg.url}"',
        profile=f'[npm]\npackages = ["{APP.name}@latest"]\nplatforms = ["linux-x64"]\n',
        artifacts=(reg.tarball_path(APP.name, APP.version),),
        label=APP.filename,
        imported=(f"/npm/{APP.name}",),
        not_imported=(
            f"/npm/{EXTRA.name}", f"/npm/{EXTRA.name}/-/{EXTRA.filename}", f"/npm/{APP.name}/-/{EXTRA.filename}"
        ),
    )
