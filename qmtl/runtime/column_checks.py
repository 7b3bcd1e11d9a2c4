"""Whole-column checks of bound data, each one jitted pass that allocates nothing.

Validating a file of millions of bars with numpy expressions (``(ts < lo) | (ts > hi)``,
``ts[1:] > ts[:-1]``, ``~np.isfinite(col)``) builds a temporary array per comparison, and on a
simple strategy those temporaries cost as much as its kernels.  Each function answers where the first
offending row is (−1 when there is none); ``qmtl.runtime.data`` turns that row into the error.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def first_outside(values: np.ndarray, lo: float, hi: float) -> int:
    """The first index whose value is below ``lo``, above ``hi`` or NaN; −1 when none is."""
    for i in range(len(values)):
        v = values[i]
        if not (lo <= v <= hi):
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def first_not_finite(values: np.ndarray) -> int:
    """The first index holding NaN or ±inf; −1 when every value is finite."""
    for i in range(len(values)):
        if not np.isfinite(values[i]):
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def scan_times(ts: np.ndarray, lo: int, hi: int) -> tuple[int, int, int]:
    """One pass over a stream's int64 timestamps answering the three questions loading and binding
    ask of them, which would otherwise be three passes over the same millions of values:

    - the first index outside ``[lo, hi]`` (−1: none) — the scan stops there, since that error wins;
    - the first index ``i`` with ``ts[i] <= ts[i - 1]`` (−1: strictly increasing);
    - the grid: the greatest common divisor of ``ts[0]`` and every step between bars, so the bars lie
      on the grid of an interval ``I`` exactly when ``I`` divides it (meaningless unless increasing).
    """
    n = len(ts)
    if n == 0:
        return -1, -1, 0
    if not (lo <= ts[0] <= hi):
        return 0, -1, 0
    unsorted = -1
    grid = abs(ts[0])
    last_step = 0
    for i in range(1, n):
        v = ts[i]
        if not (lo <= v <= hi):
            return i, unsorted, grid
        step = v - ts[i - 1]
        if step <= 0:
            if unsorted < 0:
                unsorted = i
        elif step != last_step:  # an equal step leaves the gcd as it is: the common case costs nothing
            last_step = step
            a, b = grid, step
            while b:
                a, b = b, a % b
            grid = a
    return -1, unsorted, grid
