"""Seeded synthetic bars for tests, examples and benchmarks (no market data needed)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def synthetic_bars(n: int, symbols: Sequence[str] = ("SYM",), interval: int = 60, seed: int = 0,
                   start: int = 1_700_000_000) -> pd.DataFrame:
    """``n`` bars per symbol of a geometric random walk, as a DataFrame ``ts symbol open high low
    close volume`` ordered by ts then symbol.

    Each bar opens at the previous close; intrabar extremes sit outside both open and close, so
    ``high ≥ max(open, close) ≥ min(open, close) ≥ low > 0`` holds on every bar.  The same seed gives
    the same bars; each symbol gets its own independent path.
    """
    if n < 0:
        raise ValueError(f"n must be ≥ 0, got {n}")
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    rng = np.random.default_rng(seed)
    ts = start + (-start) % interval + interval * np.arange(n, dtype=np.int64)  # first bar on the grid
    frames = [_one_symbol(rng, n, ts, sym, 20.0 + 180.0 * rng.random()) for sym in symbols]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    order = np.lexsort((np.arange(len(df)), df["ts"].to_numpy())) if len(df) else np.arange(0)
    return df.iloc[order].reset_index(drop=True)


def _one_symbol(rng: np.random.Generator, n: int, ts: np.ndarray, symbol: str, price0: float) -> pd.DataFrame:
    log_ret = rng.normal(0.0, 0.002, n)
    close = price0 * np.exp(np.cumsum(log_ret))
    open_ = np.r_[price0, close[:-1]][:n]  # n = 0 gives an empty path, not one stray open
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * (1.0 + np.abs(rng.normal(0.0, 0.001, n)))
    low = bottom * (1.0 - np.abs(rng.normal(0.0, 0.001, n)))
    volume = np.round(rng.lognormal(8.0, 0.5, n))
    return pd.DataFrame({"ts": ts, "symbol": symbol, "open": open_, "high": high, "low": low,
                         "close": close, "volume": volume})
