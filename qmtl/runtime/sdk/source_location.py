"""Where in the user's code something happened.

Nodes and traced ops remember the user's source line so that diagnostics point at the strategy file,
not at qmtl.  "The user's code" is the innermost frame that is not inside the qmtl package (nor in
pandas/numpy, which a traced call may pass through).
"""

from __future__ import annotations

import functools
import os
import sys
from functools import lru_cache
from types import CodeType, FrameType, TracebackType

import numpy
import pandas

from qmtl.ir.module import Loc

_QMTL_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__))
    for m in (pandas, numpy))


@lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """True for files that belong to qmtl itself (or the array libraries it wraps).

    Cached: every traced op and SDK node asks this for each frame on the stack."""
    path = os.path.abspath(filename)
    if path.startswith(_QMTL_DIR + os.sep):
        return True
    return filename.startswith("<frozen") or any(path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def frame_loc(frame: FrameType) -> Loc:
    """``Loc`` of the instruction a frame is executing, with a 1-based column when Python knows it."""
    code = frame.f_code
    col = 0
    try:
        pos = _positions(code)[frame.f_lasti // 2]
        if pos[2] is not None:
            col = pos[2] + 1
    except (AttributeError, IndexError, ValueError):
        pass
    return Loc(display_path(code.co_filename), frame.f_lineno or code.co_firstlineno, col)


def display_path(path: str | os.PathLike) -> str:
    """The path as a user would write it: relative to the working directory when inside it, so IR
    dumps, DAG documents and diagnostics do not depend on where the checkout lives."""
    return _shown(os.fspath(path), os.getcwd())


@functools.lru_cache(maxsize=512)
def _shown(path: str, cwd: str) -> str:
    if not os.path.isabs(path):
        return path
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith(os.pardir) else rel


# id(code object) → (code, its instruction positions).  A ``setup()`` that builds thousands of nodes
# asks for a location once per node from the same (long) code object: listing its positions every
# time made tracing quadratic in the strategy's size.  Keyed by identity because hashing a code object
# hashes all of its bytecode; the entry keeps the code alive so its id cannot be reused, and the cache
# is bounded.
_POSITIONS: dict[int, tuple[CodeType, list[tuple[int | None, ...]]]] = {}
_POSITIONS_MAX = 256


def _positions(code: CodeType) -> list[tuple[int | None, ...]]:
    entry = _POSITIONS.get(id(code))
    if entry is None or entry[0] is not code:
        if len(_POSITIONS) >= _POSITIONS_MAX:
            _POSITIONS.clear()
        entry = _POSITIONS[id(code)] = (code, list(code.co_positions()))
    return entry[1]


def user_location(depth: int = 1) -> Loc | None:
    """The innermost stack frame outside qmtl (skipping ``depth`` frames: the caller's own)."""
    frame: FrameType | None = sys._getframe(depth)
    while frame is not None:
        if not is_library_file(frame.f_code.co_filename):
            return frame_loc(frame)
        frame = frame.f_back
    return None


def traceback_location(tb: TracebackType | None, prefer_file: str | None = None) -> Loc | None:
    """Innermost traceback entry in ``prefer_file`` (else outside qmtl): where the user's code failed."""
    best: Loc | None = None
    fallback: Loc | None = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        here = Loc(filename, tb.tb_lineno, _tb_column(tb))
        if prefer_file is not None and os.path.abspath(filename) == os.path.abspath(prefer_file):
            best = here
        if not is_library_file(filename):
            fallback = here
        tb = tb.tb_next
    return best or fallback


def _tb_column(tb: TracebackType) -> int:
    """1-based column of the failing expression in a traceback entry, 0 when Python does not know."""
    try:
        pos = _positions(tb.tb_frame.f_code)[tb.tb_lasti // 2]
    except (AttributeError, IndexError, ValueError):
        return 0
    # positions are (line, end_line, col, end_col); trust the column only on the reported line
    return pos[2] + 1 if pos[2] is not None and pos[0] == tb.tb_lineno else 0


def short(loc: Loc | None) -> str:
    """``file.py:12`` — the form used inside human-readable reasons."""
    return f"{os.path.basename(loc.file)}:{loc.line}" if loc else "<unknown>"
