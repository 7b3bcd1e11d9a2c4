"""The recursive ops' reference implementations are TA-Lib's definitions (qmtl/ir/ops.py)."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.ir import ops as opreg


def _same(a: np.ndarray, b: np.ndarray) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg="NaN positions differ")
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-9, atol=1e-12)


def _prices(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high = close * (1 + rng.random(n) * 0.01)
    low = close * (1 - rng.random(n) * 0.01)
    return high, low, close


def ref(name: str):
    return opreg.get(name).reference


sizes = st.integers(min_value=0, max_value=120)
periods = st.integers(min_value=2, max_value=30)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(seeds, sizes, periods)
def test_ema_is_talib_ema(seed, n, period):
    _, _, x = _prices(seed, n)
    _same(ref("ema")(x, period=period), talib.EMA(x, period))


@settings(max_examples=60, deadline=None)
@given(seeds, sizes, periods)
def test_rsi_is_talib_rsi(seed, n, period):
    _, _, x = _prices(seed, n)
    _same(ref("rsi")(x, period=period), talib.RSI(x, period))


@settings(max_examples=60, deadline=None)
@given(seeds, sizes, periods)
def test_atr_is_talib_atr(seed, n, period):
    h, lo, c = _prices(seed, n)
    _same(ref("atr")(h, lo, c, period=period), talib.ATR(h, lo, c, period))


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(min_value=0, max_value=150), st.integers(2, 12), st.integers(1, 20), st.integers(2, 12))
def test_macd_is_talib_macd(seed, n, fast, extra, signal):
    slow = fast + extra
    _, _, x = _prices(seed, n)
    got = ref("macd")(x, fast=fast, slow=slow, signal=signal)
    want = talib.MACD(x, fast, slow, signal)
    for i, col in enumerate(("macd", "macdsignal", "macdhist")):
        _same(got[col], want[i])


@pytest.mark.parametrize("window", [2, 5, 20])
def test_rolling_mean_is_talib_sma_and_bbands(window):
    _, _, x = _prices(1, 200)
    mean = ref("rolling_mean")(x, window=window)
    _same(mean, talib.SMA(x, window))
    std = ref("rolling_std")(x, window=window, ddof=0)  # BBANDS uses the population deviation
    upper, middle, lower = talib.BBANDS(x, window, 2.0, 2.0)
    _same(middle, mean)
    _same(upper, mean + 2 * std)
    _same(lower, mean - 2 * std)


@pytest.mark.parametrize("lead", [1, 3, 17])
def test_leading_nans_are_skipped_like_talib(lead):
    """An indicator of a series that starts with NaN (e.g. of ``pct_change()``) starts later, as in
    TA-Lib, instead of being NaN for ever."""
    h, lo, c = _prices(2, 150)
    c = c.copy()
    c[:lead] = np.nan
    _same(ref("ema")(c, period=10), talib.EMA(c, 10))
    _same(ref("rsi")(c, period=14), talib.RSI(c, 14))
    _same(ref("atr")(h, lo, c, period=14), talib.ATR(h, lo, c, 14))
    got, want = ref("macd")(c, fast=12, slow=26, signal=9), talib.MACD(c, 12, 26, 9)
    for i, col in enumerate(("macd", "macdsignal", "macdhist")):
        _same(got[col], want[i])


def test_nan_after_the_start_propagates_like_talib():
    _, _, c = _prices(4, 80)
    c = c.copy()
    c[40] = np.nan
    _same(ref("ema")(c, period=5), talib.EMA(c, 5))


def test_all_nan_input_gives_all_nan():
    x = np.full(30, np.nan)
    assert np.isnan(ref("ema")(x, period=5)).all()
    assert all(np.isnan(v).all() for v in ref("macd")(x, fast=3, slow=6, signal=2).values())


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(min_value=1, max_value=80))
def test_recursive_references_are_causal(seed, cut):
    """The interpreter evaluates a recursive op once over the full history and indexes it at t; that
    equals evaluating over the history up to t only because these references are causal."""
    h, lo, c = _prices(seed, 80)
    for name, args, attrs in [("ema", (c,), {"period": 7}), ("rsi", (c,), {"period": 5}),
                              ("atr", (h, lo, c), {"period": 5})]:
        full = ref(name)(*args, **attrs)
        prefix = ref(name)(*(a[:cut] for a in args), **attrs)
        _same(prefix, full[:cut])
    full = ref("macd")(c, fast=3, slow=8, signal=4)
    prefix = ref("macd")(c[:cut], fast=3, slow=8, signal=4)
    for col in full:
        _same(prefix[col], full[col][:cut])
