"""The physical limit for the momentum strategy: one whole-array Numba loop, written by hand.

signal[t] = int(mean(pct_change(close)[t-4..t]) > 0), emitted from bar `period` on (warm-up).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy", nogil=True)
def momentum_signal(close: np.ndarray, window: int, period: int, out: np.ndarray) -> int:
    """Writes signals for bars period-1 .. n-1 into ``out``; returns how many."""
    n = len(close)
    k = 0
    for t in range(period - 1, n):
        s = 0.0
        for j in range(t - window + 1, t + 1):
            s += close[j] / close[j - 1] - 1.0
        out[k] = 1 if s / window > 0 else 0
        k += 1
    return k


def run(close: np.ndarray, window: int = 5, period: int = 30) -> np.ndarray:
    out = np.empty(max(len(close) - period + 1, 0), dtype=np.int64)
    k = momentum_signal(close, window, period, out)
    return out[:k]


def run_with_times(table, window: int = 5, period: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """The signals with their bar times (what qmtl returns), from a table of ``ts`` and ``close``."""
    ts = table.column("ts").to_numpy()
    return ts[period - 1:], run(table.column("close").to_numpy(), window, period)
