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
def first_not_increasing(ts: np.ndarray) -> int:
    """The first index ``i`` with ``ts[i] <= ts[i - 1]``; −1 when ``ts`` strictly increases."""
    for i in range(1, len(ts)):
        if ts[i] <= ts[i - 1]:
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def first_not_finite(values: np.ndarray) -> int:
    """The first index holding NaN or ±inf; −1 when every value is finite."""
    for i in range(len(values)):
        if not np.isfinite(values[i]):
            return i
    return -1
