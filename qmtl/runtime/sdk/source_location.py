"""Where in the user's code something happened.

Nodes and traced ops remember the user's source line so that diagnostics point at the strategy file,
not at qmtl.  "The user's code" is the innermost frame that is not inside the qmtl package (nor in
pandas/numpy, which a traced call may pass through).
"""

from __future__ import annotations

import os
import sys
from types import FrameType, TracebackType

import numpy
import pandas

from qmtl.ir.module import Loc

_QMTL_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__))
    for m in (pandas, numpy))


def is_library_file(filename: str) -> bool:
    """True for files that belong to qmtl itself (or the array libraries it wraps)."""
    path = os.path.abspath(filename)
    if path.startswith(_QMTL_DIR + os.sep):
        return True
    return filename.startswith("<frozen") or any(path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def frame_loc(frame: FrameType) -> Loc:
    """``Loc`` of the instruction a frame is executing, with a 1-based column when Python knows it."""
    code = frame.f_code
    col = 0
    try:
        positions = list(code.co_positions())
        pos = positions[frame.f_lasti // 2]
        if pos[2] is not None:
            col = pos[2] + 1
    except (AttributeError, IndexError, ValueError):
        pass
    return Loc(code.co_filename, frame.f_lineno or code.co_firstlineno, col)


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
        here = Loc(filename, tb.tb_lineno, 0)
        if prefer_file is not None and os.path.abspath(filename) == os.path.abspath(prefer_file):
            best = here
        if not is_library_file(filename):
            fallback = here
        tb = tb.tb_next
    return best or fallback


def short(loc: Loc | None) -> str:
    """``file.py:12`` — the form used inside human-readable reasons."""
    return f"{os.path.basename(loc.file)}:{loc.line}" if loc else "<unknown>"
