"""scripts/setup.sh runs pip isolated from the machine's own pip settings, as scripts/services.sh does.

A stand-in ``.venv/bin/python`` records the environment pip would run with, so the script runs in a copy of
the repository without installing anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("unshare", "ip", "openssl", "gpg", "gpgv", "dpkg-scanpackages", "xz", "nginx")


def _isolation(script: Path) -> str:
    """The ``env -u ... PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1`` part of a pip call."""
    text = script.read_text().replace("\\\n", " ")
    found = re.search(r"env((?: -u PIP_[A-Z_]+)+)\s+PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1", text)
    assert found, f"{script}: no isolated pip call"
    return " ".join(found.group(1).split())


def test_setup_uses_the_same_pip_isolation_as_services() -> None:
    assert _isolation(REPO / "scripts" / "setup.sh") == _isolation(REPO / "scripts" / "services.sh")


def test_setup_ignores_the_machine_s_pip_settings_but_keeps_its_index(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    record = tmp_path / "pip-env.txt"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nenv > "{record}"\necho "ARGS $*" >> "{record}"\n')
    (venv_bin / "mirrorctl").write_text("#!/bin/sh\nexit 0\n")
    stubs = tmp_path / "stubs"  # every system tool present: the script must not reach apt-get
    stubs.mkdir()
    for name in TOOLS:
        (stubs / name).write_text("#!/bin/sh\nexit 0\n")
    for f in [*venv_bin.iterdir(), *stubs.iterdir()]:
        f.chmod(0o755)
    machine_conf = tmp_path / "machine-pip.conf"
    machine_conf.write_text("[global]\nextra-index-url = http://other.example/simple\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PIP_")},
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "PIP_CONFIG_FILE": str(machine_conf),
        "PIP_FIND_LINKS": "http://other.example/wheels",
        "PIP_EXTRA_INDEX_URL": "http://other.example/simple",
        "PIP_CONSTRAINT": "/nonexistent/constraints.txt",
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "http://index.internal/simple",
        "PIP_CERT": "/etc/ssl/certs/index.internal.pem",
    }
    ran = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "setup.sh")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = record.read_text().splitlines()
    seen = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("ARGS "))
    assert seen["PIP_CONFIG_FILE"] == "/dev/null"
    for dropped in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX"):
        assert dropped not in seen, dropped
    # The index the machine uses (and its certificate) is still what pip reaches.
    assert seen["PIP_INDEX_URL"] == "http://index.internal/simple"
    assert seen["PIP_CERT"] == "/etc/ssl/certs/index.internal.pem"
    assert "ARGS -m pip install -q -e .[test]" in lines
