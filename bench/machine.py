"""The facts about this machine that every benchmark report records beside its figures."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def host_facts() -> list[tuple[str, str]]:
    """CPUs, CPU model, memory and OS, as rows for a report's machine table."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    os_name = platform.platform()
    osr = Path("/etc/os-release")
    if osr.exists():
        found = re.search(r'^PRETTY_NAME="?([^"\n]*)', osr.read_text(), re.M)
        if found:
            os_name = f"{found.group(1)} (kernel {platform.release()})"
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", cpu),
        ("memory", mem),
        ("OS", os_name),
    ]
