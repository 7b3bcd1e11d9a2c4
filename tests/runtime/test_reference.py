"""The reference interpreter on hand-built modules, checked against direct pandas/TA-Lib computation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import talib

from qmtl.ir import types as T
from qmtl.ir.module import Output
from qmtl.runtime.binding import bind
from qmtl.runtime.reference import evaluate, per_tick_python, run
from qmtl.runtime.results import NodeRuntimeError, assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars

from runtime_modules import module, momentum, op, src


def _run(m, data, functions=None):
    return evaluate(m, functions or {}, bind(m, data))


def _expected_momentum(close: pd.Series) -> np.ndarray:
    """Whole-series pandas: equals the per-window value once the window holds ≥ 6 bars."""
    return (close.pct_change().rolling(5).mean() > 0).astype(int).to_numpy()


def test_momentum_matches_pandas_and_gates_warm_up():
    df = synthetic_bars(200, seed=11).drop(columns="symbol")
    out = _run(momentum(period=30), df).outputs["momentum_signal"]
    assert list(out.columns) == ["signal"] and out.index.name == "ts" and out.index.dtype == np.int64
    np.testing.assert_array_equal(out.index.to_numpy(), df["ts"].to_numpy()[29:])  # warm-up: 30 bars
    np.testing.assert_array_equal(out["signal"].to_numpy(), _expected_momentum(df["close"])[29:])
    assert "price" not in _run(momentum(), df).outputs  # sources are not results


def test_multi_symbol_runs_per_symbol_with_a_symbol_column():
    df = synthetic_bars(80, symbols=("AAA", "BBB"), seed=2)
    out = _run(momentum(period=10), df).outputs["momentum_signal"]
    assert list(out.columns) == ["symbol", "signal"]
    for sym in ("AAA", "BBB"):
        part = df[df["symbol"] == sym]
        got = out[out["symbol"] == sym]
        np.testing.assert_array_equal(got.index.to_numpy(), part["ts"].to_numpy()[9:])
        np.testing.assert_array_equal(got["signal"].to_numpy(), _expected_momentum(part["close"])[9:])
    assert (np.diff(out.index.to_numpy()) >= 0).all()  # ordered by ts, then symbol


def test_ewm_runs_over_the_whole_history_whatever_the_period():
    """A traced ewm is pandas' ewm of the whole history; the node's period only delays emission."""
    period, alpha = 8, 0.3
    m = module([src(), op("close", "column", ("src",), name="close"),
                op("e", "ewm_mean", ("close",), alpha=alpha, adjust=True)],
               [Output("price", "src", period, 60, "source"), Output("smooth", "e", period, 60)])
    df = synthetic_bars(40, seed=3).drop(columns="symbol")
    out = _run(m, df).outputs["smooth"]
    close = df["close"]
    want = close.ewm(alpha=alpha).mean().to_numpy()[period - 1:]
    np.testing.assert_allclose(out["smooth"].to_numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(out.index.to_numpy(), df["ts"].to_numpy()[period - 1:])


@pytest.mark.parametrize("period", [10, 25])
def test_recursive_op_carries_state_from_the_start(period):
    m = module([src(), op("close", "column", ("src",), name="close"), op("e", "ema", ("close",), period=10)],
               [Output("price", "src", 1, 60, "source"), Output("ema", "e", period, 60)])
    df = synthetic_bars(60, seed=4).drop(columns="symbol")
    out = _run(m, df).outputs["ema"]
    want = talib.EMA(df["close"].to_numpy(), 10)[period - 1:]
    np.testing.assert_allclose(out["ema"].to_numpy(), want, rtol=1e-12)


def test_recursive_of_a_windowed_op_and_windowed_of_a_recursive_op():
    m = module([
        src(), op("close", "column", ("src",), name="close"),
        op("ret", "pct_change", ("close",)),
        op("rsi", "rsi", ("ret",), period=5),
        op("e", "ema", ("close",), period=6),
        op("slope", "diff", ("e",)),
    ], [Output("price", "src", 1, 60, "source"), Output("rsi_ret", "rsi", 12, 60), Output("slope", "slope", 12, 60)])
    df = synthetic_bars(70, seed=5).drop(columns="symbol")
    res = _run(m, df).outputs
    close = df["close"].to_numpy()
    want_rsi = talib.RSI(pd.Series(close).pct_change().to_numpy(), 5)[11:]
    np.testing.assert_allclose(res["rsi_ret"]["rsi_ret"].to_numpy(), want_rsi, rtol=1e-10, equal_nan=True)
    want_slope = np.diff(talib.EMA(close, 6), prepend=np.nan)[11:]
    np.testing.assert_allclose(res["slope"]["slope"].to_numpy(), want_slope, rtol=1e-10, equal_nan=True)


def test_macd_frame_output_has_its_columns():
    m = module([src(), op("close", "column", ("src",), name="close"),
                op("m", "macd", ("close",), T.frame({"macd": "f64", "macdsignal": "f64", "macdhist": "f64"}),
                   fast=3, slow=6, signal=2)],
               [Output("price", "src", 1, 60, "source"), Output("macd", "m", 1, 60)])
    df = synthetic_bars(30, seed=6).drop(columns="symbol")
    out = _run(m, df).outputs["macd"]
    want = talib.MACD(df["close"].to_numpy(), 3, 6, 2)
    assert list(out.columns) == ["macd", "macdsignal", "macdhist"]
    for i, col in enumerate(out.columns):
        np.testing.assert_allclose(out[col].to_numpy(), want[i], rtol=1e-10, equal_nan=True)


def _spread_module(period: int = 3):
    return module([
        src("a", tags=("A",)), src("b", tags=("B",)),
        op("ca", "column", ("a",), name="close"), op("cb", "column", ("b",), name="close"),
        op("spread", "sub", ("ca", "cb")),
        op("ma", "rolling_mean", ("spread",), window=3),
        op("dev", "sub", ("spread", "ma")),
    ], [Output("A", "a", 1, 60, "source"), Output("B", "b", 1, 60, "source"),
        Output("spread", "spread", period, 60), Output("dev", "dev", 3, 60)])


def test_multi_input_node_fires_on_common_timestamps():
    a = synthetic_bars(30, seed=7).drop(columns="symbol")
    b = synthetic_bars(30, seed=8).drop(columns="symbol").drop(index=[4, 10, 11, 20])
    res = _run(_spread_module(period=3), {"A": a, "B": b}).outputs
    common = np.intersect1d(a["ts"], b["ts"])
    ca = a.set_index("ts")["close"].loc[common].to_numpy()
    cb = b.set_index("ts")["close"].loc[common].to_numpy()
    spread = res["spread"]
    np.testing.assert_array_equal(spread.index.to_numpy(), common[2:])  # both inputs hold ≥ 3 bars
    np.testing.assert_allclose(spread["spread"].to_numpy(), (ca - cb)[2:], rtol=1e-12)
    # dev is pandas over the ts-indexed history: the spread is NaN where B has no bar, and a rolling
    # window holding that NaN is NaN; it emits from the spread node's third emitted row
    full = a.set_index("ts")["close"] - b.set_index("ts")["close"]
    want = (full - full.rolling(3).mean()).reindex(spread.index[2:]).to_numpy()
    np.testing.assert_allclose(res["dev"]["dev"].to_numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(res["dev"].index.to_numpy(), spread.index.to_numpy()[2:])


def test_period_one_emits_from_the_first_bar_and_values_are_the_full_history_ones():
    m = module([src(), op("close", "column", ("src",), name="close"),
                op("rm", "rolling_mean", ("close",), window=4)],
               [Output("price", "src", 1, 60, "source"), Output("rm", "rm", 1, 60)])
    df = synthetic_bars(10, seed=9).drop(columns="symbol")
    out = _run(m, df).outputs["rm"]["rm"].to_numpy()
    assert len(out) == 10 and np.isnan(out[:3]).all()
    # the period is warm-up only: the rolling mean is pandas' over the whole history
    np.testing.assert_allclose(out[3:], df["close"].rolling(4).mean().to_numpy()[3:], rtol=1e-12)


# --- opaque nodes ------------------------------------------------------------------------------------


def _opaque_module(period: int = 5, code_hash: str = "h1"):
    return module([src(), op("o", "py_call", ("src",), T.OPAQUE, code_hash=code_hash, period=period)],
                  [Output("price", "src", period, 60, "source"), Output("zs", "o", period, 60, "opaque")])


def test_opaque_node_gets_a_cacheview_of_its_window_and_keeps_the_last_row():
    m = _opaque_module(5)
    src_id = m.op_map()["src"].node_id
    seen = []

    def zscore(view):
        bars = view[src_id][60]
        seen.append((list(view), len(bars), list(bars.columns)))
        c = bars["close"]
        return pd.DataFrame({"z": (c - c.mean()) / c.std(), "n": float(len(c))})

    df = synthetic_bars(20, seed=10).drop(columns="symbol")
    out = _run(m, df, {"h1": zscore}).outputs["zs"]
    assert seen[0] == ([src_id], 5, ["open", "high", "low", "close", "volume"])
    assert list(out.columns) == ["z", "n"] and (out["n"] == 5).all()
    c = df["close"]
    want = ((c - c.rolling(5).mean()) / c.rolling(5).std()).to_numpy()[4:]
    np.testing.assert_allclose(out["z"].to_numpy(), want, rtol=1e-10)
    np.testing.assert_array_equal(out.index.to_numpy(), df["ts"].to_numpy()[4:])


def test_opaque_scalar_result_is_one_column_named_after_the_node_and_empty_frames_emit_nothing():
    m = _opaque_module(3)
    src_id = m.op_map()["src"].node_id

    def last_close_when_up(view):
        c = view[src_id][60]["close"]
        return c.iloc[-1] if c.iloc[-1] > c.iloc[0] else pd.DataFrame()

    df = synthetic_bars(40, seed=12).drop(columns="symbol")
    out = _run(m, df, {"h1": last_close_when_up}).outputs["zs"]
    c = df["close"].to_numpy()
    up = np.array([c[i] > c[i - 2] for i in range(2, 40)])
    assert 0 < up.sum() < len(up)
    np.testing.assert_array_equal(out.index.to_numpy(), df["ts"].to_numpy()[2:][up])
    np.testing.assert_allclose(out["zs"].to_numpy(), c[2:][up])


def test_user_error_names_node_ts_and_symbol():
    m = _opaque_module(3)
    df = synthetic_bars(10, symbols=("AAA", "BBB"), seed=1)
    bad_ts = int(df["ts"].iloc[10])

    def explode(view):
        bars = next(iter(view.values()))[60]
        if bars.index[-1] == bad_ts:
            raise ZeroDivisionError("boom")
        return 1.0

    with pytest.raises(NodeRuntimeError) as info:
        _run(m, df, {"h1": explode})
    err = info.value
    assert (err.node, err.ts, err.symbol) == ("zs", bad_ts, "AAA")
    assert "'zs'" in str(err) and str(bad_ts) in str(err) and "'AAA'" in str(err) and "boom" in str(err)
    assert isinstance(err.__cause__, ZeroDivisionError)


def test_op_rejecting_data_is_reported_like_user_code():
    m = module([src(), op("close", "column", ("src",), name="close"),
                op("ret", "pct_change", ("close",)), op("i", "astype", ("ret",), T.I64, dtype="i64")],
               [Output("price", "src", 2, 60, "source"), Output("as_int", "i", 2, 60)])
    with pytest.raises(NodeRuntimeError) as info:
        _run(m, synthetic_bars(5).drop(columns="symbol"))
    assert info.value.node == "as_int" and "NaN" in str(info.value)


def test_tag_query_node_sees_every_matched_stream():
    m = module([op("q", "tag_query", (), T.OPAQUE, tags=("ta-indicator",), interval=60, match_mode="any"),
                op("corr", "py_call", ("q",), T.OPAQUE, code_hash="c", period=6)],
               [Output("indicators", "q", 6, 60, "source"), Output("corr", "corr", 6, 60, "opaque")])

    def calc_corr(view):
        aligned = view.align_frames([(k, 60) for k in view], window=6)
        closes = pd.concat([f.frame["close"].rename(k) for k, f in zip(view, aligned)], axis=1)
        return {"n": float(len(view)), "rho": float(closes.corr().iloc[0, 1])}

    data = {"ta-indicator": synthetic_bars(20, symbols=("RSI", "MFI"), seed=3)}
    out = _run(m, data, {"c": calc_corr}).outputs["corr"]
    assert len(out) == 15 and (out["n"] == 2).all()
    df = data["ta-indicator"]
    x = df[df.symbol == "RSI"]["close"].reset_index(drop=True)
    y = df[df.symbol == "MFI"]["close"].reset_index(drop=True)
    np.testing.assert_allclose(out["rho"].to_numpy(), x.rolling(6).corr(y).to_numpy()[5:], rtol=1e-9)


# --- per-tick python == IR ---------------------------------------------------------------------------


def _fake_compiled(m, fn):
    return SimpleNamespace(module=m, functions={}, sdk_nodes={
        "price": SimpleNamespace(compute_fn=None), "momentum_signal": SimpleNamespace(compute_fn=fn)})


def test_per_tick_python_equals_the_ir_interpreter_for_momentum():
    m = momentum(period=30)
    src_id = m.op_map()["src"].node_id

    def generate_signal(view):
        price = view.as_frame(src_id, 60, columns=["close"]).validate_columns(["close"])
        momentum_ = price.frame["close"].pct_change().rolling(5).mean()
        return pd.DataFrame({"signal": (momentum_ > 0).astype(int)})

    df = synthetic_bars(120, symbols=("A", "B"), seed=21)
    compiled = _fake_compiled(m, generate_signal)
    assert_results_equal(run(compiled, df), per_tick_python(compiled, df))


def test_assert_results_equal_reports_differences():
    m = momentum(period=10)
    df = synthetic_bars(40, seed=1)
    a = _run(m, df)
    b = _run(m, df)
    assert_results_equal(a, b)
    b.outputs["momentum_signal"].iloc[5, 0] = 1 - b.outputs["momentum_signal"].iloc[5, 0]
    with pytest.raises(AssertionError, match="momentum_signal"):
        assert_results_equal(a, b)


def test_single_symbol_input_is_broadcast_against_a_fanned_out_input():
    """close of every symbol minus the benchmark's close: the benchmark input selects one symbol and
    is shared by each per-symbol run."""
    m = module([
        src("all", tags=()), src("spy", tags=("SPY",)),
        op("c", "column", ("all",), name="close"), op("b", "column", ("spy",), name="close"),
        op("rel", "sub", ("c", "b")),
    ], [Output("all", "all", 1, 60, "source"), Output("spy", "spy", 1, 60, "source"),
        Output("rel", "rel", 2, 60)])
    df = synthetic_bars(15, symbols=("SPY", "AAA", "BBB"), seed=4)
    out = _run(m, df).outputs["rel"]
    spy = df[df.symbol == "SPY"].set_index("ts")["close"]
    assert sorted(out["symbol"].unique()) == ["AAA", "BBB", "SPY"]
    for sym in ("AAA", "BBB"):
        part = df[df.symbol == sym].set_index("ts")["close"]
        got = out[out["symbol"] == sym]["rel"]
        np.testing.assert_allclose(got.to_numpy(), (part - spy).to_numpy()[1:], rtol=1e-12)
