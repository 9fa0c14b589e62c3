"""The PyPI contract fixture: one pure wheel locked, one project the profile does not ask for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.contract.kit import ContractUpstream
from tests.fixtures.upstream import FixtureUpstream
from tests.fixtures.wheels import Dist

# A file name from the index that is no distribution file name (it would leave the files folder) is skipped, as
# pip skips it: never pinned, never downloaded, so the target has no file left.
HOSTILE = "no file installs here"
EVIL_NAME = "../../contract_pypi_app-1.0-py3-none-any.whl"

APP = Dist("contract-pypi-app", "1.0")
EXTRA = Dist("contract-pypi-extra", "1.0")
PROFILE = '[pypi]\nrequirements = ["contract-pypi-app"]\npython = ["3.11"]\nplatforms = ["manylinux_2_28_x86_64"]\n'


def start(workdir: Path, *, hostile: bool = False) -> ContractUpstream:
    up = FixtureUpstream(workdir=workdir)
    (app,) = up.add(APP)
    (extra,) = up.add(EXTRA)
    if hostile:
        up.remove(app.filename)
        up.files[EVIL_NAME] = replace(app, filename=EVIL_NAME)
    up.server.start()
    return ContractUpstream(
        server=up.server,
        upstream=f'url = "{up.url}"',
        profile=PROFILE,
        artifacts=(f"/files/{app.filename}",),
        label=app.filename,
        imported=("/pypi/simple/contract-pypi-app/",),
        not_imported=(
            "/pypi/simple/contract-pypi-extra/",
            f"/pypi/files/{extra.sha256}/{extra.filename}",
            f"/pypi/files/{app.sha256}/{extra.filename}",
        ),
    )


