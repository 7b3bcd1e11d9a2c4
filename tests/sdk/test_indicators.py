"""Indicator helpers on concrete data compute the registry's reference (checked against TA-Lib)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from qmtl.runtime.sdk import SDKArgumentError, atr, bollinger, ema, macd, rsi, sma, zscore


@pytest.fixture
def prices() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 200))
    high = close + rng.uniform(0, 1, 200)
    low = close - rng.uniform(0, 1, 200)
    return pd.DataFrame({"high": high, "low": low, "close": close}, index=np.arange(200) * 60)


def test_sma_ema_rsi_match_talib(prices) -> None:
    c = prices["close"]
    np.testing.assert_allclose(sma(c, 10), talib.SMA(c.to_numpy(), 10), equal_nan=True)
    np.testing.assert_allclose(ema(c, 10), talib.EMA(c.to_numpy(), 10), equal_nan=True)
    np.testing.assert_allclose(rsi(c, 14), talib.RSI(c.to_numpy(), 14), equal_nan=True)
    assert sma(c, 10).index.equals(c.index)


def test_macd_bollinger_atr_match_talib(prices) -> None:
    c = prices["close"].to_numpy()
    for ours, theirs in zip(macd(prices["close"]), talib.MACD(c, 12, 26, 9)):
        np.testing.assert_allclose(ours, theirs, equal_nan=True)
    for ours, theirs in zip(bollinger(prices["close"], 20, 2.0), talib.BBANDS(c, 20, 2.0, 2.0)):
        np.testing.assert_allclose(ours, theirs, equal_nan=True, rtol=1e-9)
    expected = talib.ATR(prices["high"].to_numpy(), prices["low"].to_numpy(), c, 14)
    np.testing.assert_allclose(atr(prices, n=14), expected, equal_nan=True)
    np.testing.assert_allclose(atr(prices["high"], prices["low"], prices["close"], n=14), expected,
                               equal_nan=True)


def test_zscore_is_sample_std(prices) -> None:
    c = prices["close"]
    expected = (c - c.rolling(20).mean()) / c.rolling(20).std(ddof=1)
    pd.testing.assert_series_equal(zscore(c, 20), expected, check_names=False)


def test_bad_lengths_are_clear_errors(prices) -> None:
    with pytest.raises(SDKArgumentError, match="n=0"):
        sma(prices["close"], 0)
    with pytest.raises(SDKArgumentError, match="high, low and close"):
        atr(prices["high"], prices["low"])


def test_zscore_matches_talib_sma_and_stddev(prices) -> None:
    # TA-Lib has no z-score; build it from TA-Lib's SMA and STDDEV (population std, so rescale to the
    # sample std qmtl uses: sqrt(n / (n - 1)))
    c = prices["close"].to_numpy()
    n = 20
    expected = (c - talib.SMA(c, n)) / (talib.STDDEV(c, n, 1.0) * np.sqrt(n / (n - 1)))
    np.testing.assert_allclose(zscore(prices["close"], n), expected, equal_nan=True, rtol=1e-9)
