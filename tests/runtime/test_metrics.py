"""Returns derivation and metrics: Sharpe/max drawdown against empyrical, the rest by hand."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.runtime.metrics import (compute_metrics, max_drawdown, periods_per_year, profit_factor,
                                  sharpe_ratio, total_return, win_rate)
from qmtl.runtime.returns import align_position, bucket_closes, count_trades, derive_returns

returns_lists = st.lists(
    st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_infinity=False),
    min_size=2, max_size=300)


@settings(deadline=None)
@given(returns_lists, st.sampled_from([60, 300, 3600, 86_400]))
def test_sharpe_matches_empyrical(values: list[float], interval: int) -> None:
    r = np.array(values)
    ann = periods_per_year(interval)
    expected = empyrical.sharpe_ratio(r, annualization=ann)
    ours = sharpe_ratio(r, ann)
    if ours is None:
        # undefined only when empyrical also has nothing meaningful (constant series)
        assert not np.isfinite(expected) or np.std(r, ddof=1) < 1e-12
    else:
        assert ours == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(deadline=None)
@given(returns_lists)
def test_max_drawdown_matches_empyrical(values: list[float]) -> None:
    r = np.array(values)
    ours = max_drawdown(r)
    assert ours is not None and ours <= 0.0
    assert ours == pytest.approx(empyrical.max_drawdown(r), rel=1e-9, abs=1e-12)


def test_daily_annualisation_is_252() -> None:
    assert periods_per_year(86_400) == 252
    assert periods_per_year(60) == 252 * 1440
    with pytest.raises(ValueError, match="positive"):
        periods_per_year(0)


def test_hand_computed_metrics() -> None:
    r = np.array([0.10, -0.05, 0.0, 0.02, -0.10])
    assert total_return(r) == pytest.approx(1.10 * 0.95 * 1.0 * 1.02 * 0.90 - 1)
    assert win_rate(r) == pytest.approx(2 / 4)  # the zero bar does not count
    assert profit_factor(r) == pytest.approx(0.12 / 0.15)
    # wealth 1, 1.1, 1.045, 1.045, 1.0659, 0.95931 → worst fall from the 1.1 peak
    assert max_drawdown(r) == pytest.approx(1.10 * 0.95 * 1.02 * 0.90 / 1.10 - 1)


def test_drawdown_counts_the_start_as_a_peak() -> None:
    assert max_drawdown(np.array([-0.2, 0.1])) == pytest.approx(-0.2)


def test_undefined_metrics_are_none_not_nan() -> None:
    m = compute_metrics(np.array([0.0, 0.0, 0.0]), 60)
    assert m.sharpe is None and m.win_rate is None and m.profit_factor is None
    assert m.total_return == 0.0 and m.max_drawdown == 0.0
    assert compute_metrics(np.array([0.01, 0.02]), 60).profit_factor is None  # no losing bar
    assert compute_metrics(np.array([]), 60).total_return is None
    assert "sharpe" not in m.policy_values() and m.policy_values()["total_return"] == 0.0


def _series(values, ts) -> pd.Series:
    return pd.Series(values, index=pd.Index(ts, name="ts"), dtype="float64")


def test_signal_earns_the_next_bar_return() -> None:
    ts = [0, 60, 120, 180, 240]
    close = _series([100, 110, 99, 99, 108.9], ts)
    # long from the close of bar 60 to the close of bar 180, then flat
    out = pd.DataFrame({"signal": [1.0, 1.0, 0.0]}, index=pd.Index([60, 120, 180], name="ts"))
    got = derive_returns({"sig": out}, {None: close}, {"sig": 60})
    assert got.source == "sig.signal x next-bar close return"
    # earned at 120: pos(60)=1 × (99/110-1); at 180: pos(120)=1 × 0; at 240: pos(180)=0
    assert list(got.returns.index) == [120, 180, 240]
    assert got.returns.tolist() == pytest.approx([99 / 110 - 1, 0.0, 0.0])
    assert got.trades == 2  # enter at 60, exit at 180


def test_a_peeking_signal_gets_no_credit() -> None:
    """A position decided from bar t's return cannot earn bar t's return: paid on bar t, a signal
    ``r[t] > 0`` would be a perfect oracle (every bar ≥ 0); held to t+1 on a random walk it is noise."""
    rng = np.random.default_rng(7)
    ts = np.arange(500) * 60
    close = _series(100 * np.cumprod(1 + rng.normal(0, 0.01, 500)), ts)
    bar_return = close.pct_change()
    peeking = pd.DataFrame({"signal": (bar_return > 0).astype(float).iloc[1:]})
    got = derive_returns({"s": peeking}, {None: close}, {"s": 60}).returns
    oracle = (peeking["signal"] * bar_return.iloc[1:])  # what a look-ahead bug would pay
    assert (oracle >= 0).all() and compute_metrics(oracle, 60).sharpe > 50
    assert (got < 0).sum() > 100
    assert abs(compute_metrics(got, 60).sharpe) < 0.2 * compute_metrics(oracle, 60).sharpe
    held = align_position(peeking["signal"], close.index)
    expected = (held.shift(1, fill_value=0) * bar_return.fillna(0)).loc[got.index]
    assert got.tolist() == pytest.approx(expected.tolist())


def test_returns_column_is_used_as_is_and_averaged_over_symbols() -> None:
    out = pd.DataFrame({"returns": [0.01, 0.03, -0.02, 0.0], "symbol": ["A", "B", "A", "B"]},
                       index=pd.Index([60, 60, 120, 120], name="ts"))
    got = derive_returns({"pnl": out}, {})
    assert got.source == "pnl.returns" and got.trades is None
    assert got.returns.tolist() == pytest.approx([0.02, -0.01])


def test_multi_symbol_signal_is_per_symbol_then_averaged() -> None:
    ts = [0, 60, 120]
    closes = {"A": _series([10, 11, 12.1], ts), "B": _series([20, 18, 18], ts)}
    out = pd.DataFrame({"signal": [1.0, -1.0, 1.0, -1.0], "symbol": ["A", "B", "A", "B"]},
                       index=pd.Index([0, 0, 60, 60], name="ts"))
    got = derive_returns({"s": out}, closes, {"s": 60})
    # A long earns +10 % then +10 %; B short earns +10 % then 0
    assert got.returns.tolist() == pytest.approx([0.10, 0.05])
    assert got.trades == 2


def test_closes_are_bucketed_to_the_output_interval() -> None:
    close = _series([1, 2, 3, 4, 5, 6], [0, 60, 120, 180, 240, 300])
    assert bucket_closes(close, 180).to_dict() == {0: 3.0, 180: 6.0}


def test_no_signal_output_gives_empty_returns() -> None:
    got = derive_returns({"x": pd.DataFrame({"foo": [1.0]})}, {None: _series([1.0], [0])})
    assert got.source is None and got.returns.empty
    assert compute_metrics(got.returns, 60).bars == 0


def test_unknown_symbol_names_the_output() -> None:
    out = pd.DataFrame({"signal": [1.0, 1.0], "symbol": ["A", "Z"]}, index=pd.Index([0, 0], name="ts"))
    with pytest.raises(KeyError, match="'s'.*'Z'"):
        derive_returns({"s": out}, {"A": _series([1.0], [0]), "B": _series([1.0], [0])})


def test_count_trades() -> None:
    assert count_trades(_series([0, 1, 1, -1, 0], range(5))) == 3
    assert count_trades(_series([1, 1], range(2))) == 1
    assert math.isclose(compute_metrics(np.array([0.1, -0.1]), 60, trades=4).trades, 4)


def test_closes_are_bucketed_like_the_runtime_buckets_bars() -> None:
    from qmtl.runtime.binding import bucket
    from qmtl.runtime.synthetic import synthetic_bars
    from qmtl.runtime.data import load
    stream = load(synthetic_bars(500, symbols=("SYM",), interval=60, seed=3)).streams[0]
    close = pd.Series(stream.columns["close"], index=pd.Index(stream.ts, name="ts"))
    for interval in (60, 300, 420):
        runtime = bucket(stream, interval)
        got = bucket_closes(close, interval)
        assert got.index.tolist() == runtime.ts.tolist()
        assert got.to_numpy().tolist() == runtime.columns["close"].tolist()
