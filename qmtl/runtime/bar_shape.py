"""The shape of a bar's prices: ``low <= open <= high`` and ``low <= close <= high`` (so ``low <= high``).

One rule for both doors market data comes through: the backtest's loader (``qmtl.runtime.data``,
error E503 naming the file's row) and the live feed (``qmtl.live.bars``, a bar dropped as
``malformed``).  A bar whose high is below its low, or whose open or close lies outside its range, is
a broken record; a strategy reading ranges (ATR, high-low spreads) would trade on it, and a backtest
that accepted what a live run refuses would not be the live run's backtest.  Prices must already be
finite (each door checks that first); comparisons are exact.
"""

from __future__ import annotations

import numba
import numpy as np


def ohlc_problem(open_: float | None, high: float, low: float, close: float | None) -> str | None:
    """What is wrong with one bar's prices, naming the field, or None when they form a bar.
    ``open_``/``close`` may be None when the data has no such column."""
    if high < low:
        return f"high={high!r} is below low={low!r}"
    for name, value in (("open", open_), ("close", close)):
        if value is not None and not (low <= value <= high):
            return f"{name}={value!r} is outside [low, high] = [{low!r}, {high!r}]"
    return None


@numba.njit(cache=True, nogil=True)
def _first_outside_range(values: np.ndarray, high: np.ndarray, low: np.ndarray) -> int:
    for i in range(len(values)):
        if not (low[i] <= values[i] <= high[i]):
            return i
    return -1


def first_misshapen(high: np.ndarray, low: np.ndarray, open_: np.ndarray | None = None,
                    close: np.ndarray | None = None) -> int:
    """The first row whose prices are not a bar's (``ohlc_problem`` says why), −1 when none is: one
    jitted pass per column, allocating nothing (these columns can hold millions of bars)."""
    hi, lo = np.asarray(high, dtype=np.float64), np.asarray(low, dtype=np.float64)
    rows = [_first_outside_range(lo, hi, lo)]  # low <= high
    for col in (open_, close):
        if col is not None:
            rows.append(_first_outside_range(np.asarray(col, dtype=np.float64), hi, lo))
    found = [r for r in rows if r >= 0]
    return min(found) if found else -1
