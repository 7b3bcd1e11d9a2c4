"""The build cache: one generated module per distinct set of NodeIDs, on disk, imported once.

Generated source lives at ``build_dir()/gen/<digest>.py``; Numba's ``cache=True`` keeps the compiled
kernels next to it (``__pycache__``), so a second process running the same strategy loads machine code
instead of compiling.  The file's name is the digest of everything its text depends on (the
generator's own sources and the module's NodeIDs and outputs) and it is written atomically, so a file
that exists is the text ``generate`` would produce: it is imported without generating again (for a
2,000-node strategy, rendering costs more than loading), and never rewritten, because a new mtime would
invalidate Numba's cache.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from qmtl import paths
from qmtl.ir.module import Module

from .generate import digest, generate

_LOADED: dict[str, ModuleType] = {}


def module_path(module: Module) -> Path:
    return paths.build_dir() / "gen" / f"m_{digest(module)}.py"


def load(module: Module) -> ModuleType:
    """Import (generating first if needed) the generated module for ``module``."""
    path = module_path(module)
    key = str(path.resolve()) if path.exists() else str(path)
    if key in _LOADED:
        return _LOADED[key]
    if not path.exists():
        source = generate(module)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    name = f"qmtl_gen_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    gen = importlib.util.module_from_spec(spec)
    sys.modules[name] = gen  # numba's cache locator needs the module importable by name
    spec.loader.exec_module(gen)
    _LOADED[str(path.resolve())] = gen
    return gen
