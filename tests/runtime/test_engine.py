"""The engine end to end: compiled examples, per-tick Python regions, errors, workers, TA-Lib."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qmtl
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.runtime.binding import bind
from qmtl.runtime.data import DataError
from qmtl.runtime.engine import run
from qmtl.runtime.reference import evaluate
from qmtl.runtime.results import NodeRuntimeError, assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars
from tests.codegen.modules import Builder, momentum

EXAMPLES = ["examples/momentum.py", "examples/indicators.py", "examples/multi_node.py",
            "examples/correlation.py"]


@pytest.mark.parametrize("path", EXAMPLES)
def test_compiled_examples_match_reference_at_every_batch_size(path):
    compiled = qmtl.compile(path)
    data = synthetic_bars(300, symbols=("A", "B", "C"), seed=5)
    if "correlation" in path:  # a tag query: bind the data under the tag it asks for
        data = {"ta-indicator": data}
    elif "indicators" in path:  # its input is tagged ["btc", "spot"]: bind all symbols under that tag
        data = {"btc": data}
    elif "multi_node" in path:  # inputs tagged "btc" and "eth" name symbols
        data = synthetic_bars(300, symbols=("BTC", "ETH"), seed=5)
    ref = compiled.run_reference(data)
    for bs in (1, 29, 10_000):
        assert_results_equal(compiled.run(data, batch_size=bs), ref)


def _last_close_minus_mean(view):
    (node_id,) = list(view)
    frame = view[node_id][60]
    return float(frame["close"].iloc[-1] - frame["close"].mean())


def _py_call_module(fn_hash: str = "h1"):
    b = Builder("opaque")
    src = b.source()
    opaque = b.out("dev", b.op("py_call", src, code_hash=fn_hash, period=6), 6)
    b.out("scaled", b.op("mul", b.op("column", b.op("make_frame", b.op("column", src, name="close"),
                                                     columns=("close",)), name="close"),
                          b.op("const", value=2.0)), 6)
    return b.module(), opaque


def test_py_call_runs_per_tick_with_a_cache_view_and_matches_reference():
    module, _ = _py_call_module()
    functions = {"h1": _last_close_minus_mean}
    data = synthetic_bars(50, symbols=("A", "B"), seed=1)
    ref = evaluate(module, functions, bind(module, data))
    compiled = CompiledStrategy(module.name, module, functions=functions)
    for bs in (1, 5, 6, 7, 100):
        assert_results_equal(run(compiled, data, batch_size=bs), ref)
    assert len(ref["dev"]) == 2 * (50 - 5)


def test_user_exception_in_opaque_node_names_node_ts_and_symbol():
    def explode(view):
        frame = view[list(view)[0]][60]
        if len(frame) and frame.index[-1] >= 1_700_000_000 + 60 * 20:
            raise ZeroDivisionError("boom")
        return 1.0
    module, _ = _py_call_module()
    compiled = CompiledStrategy(module.name, module, functions={"h1": explode})
    data = synthetic_bars(40, symbols=("A",), seed=1)
    with pytest.raises(NodeRuntimeError) as info:
        run(compiled, data, batch_size=8)
    msg = str(info.value)
    assert "'dev'" in msg and "ZeroDivisionError: boom" in msg and "ts=" in msg


def test_astype_of_nan_to_int_is_a_node_error_not_a_numba_crash():
    b = Builder("bad")
    src = b.source()
    b.out("node", b.op("astype", b.op("pct_change", b.op("column", src, name="close")), dtype="i64"), 3)
    module = b.module()
    data = synthetic_bars(20, symbols=("A",), seed=0)
    data.loc[5, ["low", "close"]] = 0.0  # pct_change of the next bar divides by zero → inf; and 0/0 at 5?
    data.loc[6, ["low", "close"]] = 0.0  # 0/0 → NaN at bar 6 (low with it: still a bar's prices)
    with pytest.raises(NodeRuntimeError) as info:
        run(CompiledStrategy(module.name, module), data, batch_size=4)
    assert "'node'" in str(info.value) and "NaN" in str(info.value)


def test_bad_data_is_a_data_error():
    data = synthetic_bars(20, symbols=("A",), seed=0)
    data.loc[3, "close"] = np.nan
    with pytest.raises(DataError):
        run(CompiledStrategy("m", momentum()), data)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_batch_size_is_rejected_with_a_clear_message(bad):
    with pytest.raises(ValueError, match="batch_size"):
        run(CompiledStrategy("m", momentum()), synthetic_bars(10), batch_size=bad)


def test_several_workers_give_the_same_result():
    compiled = CompiledStrategy("m", momentum())
    data = synthetic_bars(200, symbols=tuple("ABCD"), seed=9)
    assert_results_equal(run(compiled, data, batch_size=50, workers=2), run(compiled, data, batch_size=50))


def test_indicators_match_talib():
    talib = pytest.importorskip("talib")
    b = Builder("ta")
    src = b.source()
    h, l, c = (b.op("column", src, name=f) for f in ("high", "low", "close"))
    b.out("ema", b.op("ema", c, period=10), 1)
    b.out("rsi", b.op("rsi", c, period=14), 1)
    b.out("atr", b.op("atr", h, l, c, period=14), 1)
    b.out("macd", b.op("macd", c, fast=12, slow=26, signal=9), 1)
    mean = b.op("rolling_mean", c, window=20)
    sd = b.op("rolling_std", c, window=20, ddof=0)
    b.out("upper", b.op("add", mean, b.op("mul", sd, b.op("const", value=2.0))), 20)
    module = b.module()
    data = synthetic_bars(400, symbols=("A",), seed=4)
    out = run(CompiledStrategy(module.name, module), data, batch_size=37)
    hi, lo, cl = (data[f].to_numpy(float) for f in ("high", "low", "close"))
    np.testing.assert_allclose(out["ema"]["ema"].to_numpy(), talib.EMA(cl, 10), rtol=1e-9)
    np.testing.assert_allclose(out["rsi"]["rsi"].to_numpy(), talib.RSI(cl, 14), rtol=1e-9)
    np.testing.assert_allclose(out["atr"]["atr"].to_numpy(), talib.ATR(hi, lo, cl, 14), rtol=1e-9)
    m, s, hist = talib.MACD(cl, 12, 26, 9)
    np.testing.assert_allclose(out["macd"]["macd"].to_numpy(), m, rtol=1e-9)
    np.testing.assert_allclose(out["macd"]["macdsignal"].to_numpy(), s, rtol=1e-9)
    np.testing.assert_allclose(out["macd"]["macdhist"].to_numpy(), hist, rtol=1e-9, atol=1e-12)
    upper, _, _ = talib.BBANDS(cl, 20, 2.0, 2.0)
    np.testing.assert_allclose(out["upper"]["upper"].to_numpy(), upper[19:], rtol=1e-9)


# --- batch size, emitted rows, workers -----------------------------------------------------------------


def test_default_batch_size_gives_the_same_result_as_one_bar_batches():
    compiled = CompiledStrategy("m", momentum(period=8))
    data = synthetic_bars(150, symbols=("A", "B", "C"), seed=2)
    auto = run(compiled, data)
    assert_results_equal(auto, run(compiled, data, batch_size=1))
    assert_results_equal(auto, evaluate(compiled.module, {}, bind(compiled.module, data)))


def _timeline(n: int, interval: int):
    from qmtl.runtime.data import Stream
    from qmtl.runtime.key_runtime import key_timeline
    ts = 1_700_000_000 + interval * np.arange(n, dtype=np.int64)
    return key_timeline({"p": Stream({"ts": ts, "close": np.ones(n)}, None, ())}, {"p": interval})


def _batch(rows, lo: int, mask: list[bool]) -> None:
    x = np.arange(lo, lo + len(mask), dtype=float)
    rows.append(np.array(mask), lo, [x, x.astype(np.int64)])


@pytest.mark.parametrize("clock", [60, 300])  # on the source's clock (ts may be views) or not
def test_rows_append_only_masked_ticks_across_batches(clock):
    from qmtl.runtime.key_runtime import _Rows
    timeline = _timeline(9, 60)
    rows = _Rows(timeline, clock, {"x": "float64", "n": "int64"})
    _batch(rows, 0, [False, False, False])
    _batch(rows, 3, [False, True, True])
    _batch(rows, 6, [True, True, True])
    ts, values = rows.view()
    assert ts.tolist() == (timeline.close[4:9] - clock).tolist()
    assert values["x"].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0] and values["n"].tolist() == [4, 5, 6, 7, 8]
    # on the source's clock the rows' timestamps are the source's own, not a copy
    assert np.shares_memory(ts, timeline.streams["p"].ts) == (clock == 60)
    rows.clear(timeline)
    _batch(rows, 0, [True, True, False])
    _batch(rows, 3, [True, False, True])
    _batch(rows, 6, [False, True, True])
    ts, values = rows.view()
    kept = [0, 1, 3, 5, 7, 8]
    assert ts.tolist() == (timeline.close[kept] - clock).tolist() and values["n"].tolist() == kept


def test_rows_copy_the_run_of_ticks_when_a_later_batch_breaks_it():
    from qmtl.runtime.key_runtime import _Rows
    timeline = _timeline(9, 60)
    rows = _Rows(timeline, 60, {"x": "float64", "n": "int64"})
    _batch(rows, 0, [False, True, True])
    _batch(rows, 3, [True, True, True])
    _batch(rows, 6, [True, False, True])  # a gap: rows are no longer one run of ticks
    ts, values = rows.view()
    kept = [1, 2, 3, 4, 5, 6, 8]
    assert ts.tolist() == timeline.streams["p"].ts[kept].tolist() and values["n"].tolist() == kept
    assert not np.shares_memory(ts, timeline.streams["p"].ts)


def test_results_keep_no_view_of_the_callers_frame():
    compiled = CompiledStrategy("m", momentum(period=8))
    data = synthetic_bars(50, symbols=("A",), seed=2)
    out = run(compiled, data)
    before = out["momentum_signal"].index.to_numpy().copy()
    data.loc[data.index[-1], "ts"] += 30  # the caller edits its frame in place (an emitted bar)
    assert np.array_equal(out["momentum_signal"].index.to_numpy(), before)


def test_worker_threads_run_unpicklable_user_functions_and_report_their_errors():
    module, _ = _py_call_module()
    data = synthetic_bars(40, symbols=("A", "B", "C"), seed=1)
    offset = 0.25
    local = lambda view: _last_close_minus_mean(view) + offset  # noqa: E731 - a closure: not picklable
    compiled = CompiledStrategy(module.name, module, functions={"h1": local})
    ref = evaluate(module, {"h1": local}, bind(module, data))
    assert_results_equal(run(compiled, data, batch_size=9, workers=2), ref)

    def explode(view):
        if view[list(view)[0]][60].index[-1] >= 1_700_000_000 + 60 * 20:
            raise ZeroDivisionError("boom")
        return 1.0
    for workers in (1, 2):  # Bytewax's cluster loses the error; the run must not
        with pytest.raises(NodeRuntimeError) as info:
            run(CompiledStrategy(module.name, module, functions={"h1": explode}), data, workers=workers)
        assert "'dev'" in str(info.value) and "ZeroDivisionError: boom" in str(info.value)


def test_cleared_rows_grow_for_a_longer_batch_and_copies_outlive_the_clear():
    from qmtl.runtime.key_runtime import _Rows
    short, longer = _timeline(2, 60), _timeline(3, 60)
    rows = _Rows(short, 60, {"x": "float64"})
    rows.append(np.array([True, True]), 0, [np.array([0.5, 1.5])])
    kept = rows.copy()
    rows.clear(longer)
    rows.append(np.array([True, False, True]), 0, [np.array([7.0, 8.0, 9.0])])
    assert kept[0].tolist() == short.streams["p"].ts.tolist() and kept[1]["x"].tolist() == [0.5, 1.5]
    assert rows.view()[0].tolist() == longer.streams["p"].ts[[0, 2]].tolist()
    assert rows.view()[1]["x"].tolist() == [7.0, 9.0]
