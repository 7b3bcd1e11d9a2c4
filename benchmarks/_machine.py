"""One line describing the machine a benchmark ran on, for the header of every results file.

Each benchmark writes it so that numbers from different machines are never compared by mistake.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    # /proc/cpuinfo names the model on Linux; platform.processor() is often empty there.
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> str:
    """CPU model, core count, RAM, Python version and OS, comma-separated."""
    ram = _ram_gib()
    parts = [_cpu_model(), f"{os.cpu_count()} cores"]
    if ram is not None:
        parts.append(f"{ram:.0f} GiB RAM")
    parts += [f"Python {platform.python_version()}", platform.system()]
    return ", ".join(parts)
