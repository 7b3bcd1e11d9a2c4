"""The jitted whole-column checks agree with the numpy expressions they replace."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.runtime.column_checks import scan_times


def _first(indices: np.ndarray) -> int:
    return int(indices[0]) if len(indices) else -1


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-10**6, 10**6), max_size=40), lo=st.integers(-10**6, 0),
       hi=st.integers(0, 10**6), sort=st.booleans())
def test_scan_times_finds_what_three_numpy_passes_find(values, lo, hi, sort):
    ts = np.array(sorted(set(values)) if sort else values, dtype=np.int64)
    outside, unsorted, grid = scan_times(ts, lo, hi)
    assert outside == _first(np.flatnonzero((ts < lo) | (ts > hi)))
    head = ts[:outside] if outside >= 0 else ts  # the scan stops at the first value out of range
    assert unsorted == _first(np.flatnonzero(head[1:] <= head[:-1]) + 1)
    if outside < 0 and unsorted < 0 and len(ts):
        assert grid == np.gcd.reduce(np.r_[abs(ts[0]), np.diff(ts)])
        for interval in (1, 2, 3, 60):
            assert (grid % interval == 0) == (not np.any(ts % interval))


def test_scan_times_of_nothing():
    assert scan_times(np.array([], np.int64), 0, 10) == (-1, -1, 0)
