"""Where qmtl keeps its files: ``$QMTL_HOME`` or ``./.qmtl`` (build outputs, embedded databases)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("QMTL_HOME", ".qmtl"))


def build_dir() -> Path:
    return home() / "build"
