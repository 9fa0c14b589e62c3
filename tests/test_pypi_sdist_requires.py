"""An old sdist (setuptools before metadata 2.2) lists its requirements only in ``*.egg-info/requires.txt``:
the lock reads them there, so a search going back through old versions does not take such an sdist as a
version without dependencies (issue 14: at scale, that was where backtracking ended up)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from mirrorctl.ecosystems.pypi.index import egg_info_requirements, with_egg_info_requires
from tests.fixtures.upstream import (  # noqa: F401  (until tests/conftest.py registers the plugin)
    FixtureUpstream,
    pypi_upstream_fixture,
)
from tests.fixtures.wheels import Dist
from tests.test_pypi_lock import by_target, lock

REQUIRES_TXT = """\
botocore<1.24.22,>=1.24.21
wrapt>=1.10.10

[awscli]
awscli<1.22.77,>=1.22.76

[:python_version < "3.8"]
typing_extensions

[boto3:sys_platform == "win32"]
boto3; python_version >= "3"
"""


def test_requires_txt_sections_become_pep508_requirements() -> None:
    assert egg_info_requirements(REQUIRES_TXT + "[broken\nnot a requirement !!\n") == [
        "botocore<1.24.22,>=1.24.21",
        "wrapt>=1.10.10",
        'awscli<1.22.77,>=1.22.76; extra == "awscli"',
        'typing_extensions; (python_version < "3.8")',
        'boto3; (python_version >= "3") and (sys_platform == "win32") and extra == "boto3"',
    ]


def test_pkg_info_requirements_win_over_requires_txt() -> None:
    pkg = b"Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Dist: b\n\nlong description\n"
    assert with_egg_info_requires(pkg, b"c\n") == pkg
    old = b"Metadata-Version: 2.1\nName: a\nVersion: 1\n\nRequires-Dist: not a header\n"
    assert with_egg_info_requires(old, b"c>=1\n[x]\nd\n") == (
        b"Metadata-Version: 2.1\nName: a\nVersion: 1\nRequires-Dist: c>=1\nRequires-Dist: d; extra == \"x\"\n"
        b"Provides-Extra: x\n\nRequires-Dist: not a header\n"
    )
    assert with_egg_info_requires(old, None) == old


def old_sdist(name: str, version: str, requires_txt: str) -> bytes:
    base = f"{name}-{version}"
    files = {
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{base}/setup.py": "from setuptools import setup\nsetup()\n",
        f"{base}/{name}.egg-info/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{base}/{name}.egg-info/requires.txt": requires_txt,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def test_an_old_sdists_requirements_are_locked(pypi_upstream: FixtureUpstream, tmp_path: Path) -> None:
    pypi_upstream.add(Dist("dep", "1.0"))
    pypi_upstream.add(Dist("extra_dep", "1.0"))
    data = old_sdist("oldpkg", "1.0", "dep>=1\n\n[fast]\nextra_dep\n")
    pypi_upstream._add_bytes(Dist("oldpkg", "1.0"), "oldpkg-1.0.tar.gz", data, None)
    profile = """\
[pypi]
requirements = ["oldpkg[fast]"]
python = ["3.11"]
platforms = ["manylinux_2_28_x86_64"]
sdist = "fallback"
"""
    arts, _ = await lock(tmp_path, pypi_upstream.url, profile)
    closure = by_target(arts)["py3.11-manylinux_2_28_x86_64"]
    assert closure == {
        "oldpkg": "oldpkg-1.0.tar.gz",
        "dep": "dep-1.0-py3-none-any.whl",
        "extra-dep": "extra_dep-1.0-py3-none-any.whl",
    }
