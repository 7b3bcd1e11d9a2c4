"""Lazy re-exports for package ``__init__`` modules.

A package lists the names it re-exports and the module each lives in; the name's module is imported
on first access, so importing the package stays cheap (no pandas, Numba, lark or services until a
name that needs them is used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package``, which re-exports each name from ``exports[name]``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(exports), __getattr__
