"""The IR interpreter equals the user's own compute functions on the shipped examples: called once on
the full history (what a traced node means, docs/design.md "Values") and, for these window-independent
examples, called once per tick on the node's window."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import qmtl

from qmtl.runtime.reference import full_history_python, per_tick_python, run
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _compile(name: str):
    return qmtl.compile(EXAMPLES / name)


# multi_node's inputs are tagged "btc" and "eth": in multi-symbol data those tags name the symbols
@pytest.mark.parametrize("example, symbols", [
    ("momentum.py", ("SYM",)), ("momentum.py", ("AAA", "BBB")),
    ("multi_node.py", ("SYM",)), ("multi_node.py", ("BTC", "ETH")),
])
def test_ir_interpreter_equals_per_tick_python(example, symbols):
    compiled = _compile(example)
    data = synthetic_bars(300, symbols=symbols, seed=17)
    ir, python = run(compiled, data), per_tick_python(compiled, data)
    assert ir.outputs, "the example has no non-source outputs"
    assert any(len(df) for df in ir.outputs.values()), "nothing was emitted: data too short for warm-up?"
    assert_results_equal(ir, python)
    assert_results_equal(ir, full_history_python(compiled, data))


def test_correlation_example_reads_every_tagged_stream():
    compiled = _compile("correlation.py")
    data = {"ta-indicator": synthetic_bars(80, symbols=("RSI", "MFI"), interval=3600, seed=5)}
    ir = run(compiled, data)
    # the tag query's node sees both streams: the whole correlation matrix at each tick (2 streams x
    # 5 fields: 10 x 10, duplicate labels and all), emitted once 24 bars are in — not its last row
    corr = ir.outputs["indicators"]
    assert corr.index.names == ["ts", "row"]
    ticks = corr.index.get_level_values("ts").unique()
    assert len(ticks) == 80 - 23 and corr.shape == ((80 - 23) * 10, 10)
    first = corr.xs(ticks[0], level="ts")
    assert list(first.index) == list(first.columns) == ["open", "high", "low", "close", "volume"] * 2
    bars = data["ta-indicator"]
    window = bars[bars["ts"] <= ticks[0]].groupby("symbol").tail(24)
    rsi, mfi = (window[window["symbol"] == s]["close"].to_numpy() for s in ("RSI", "MFI"))
    assert first.iloc[3, 8] == pytest.approx(float(pd.Series(rsi).corr(pd.Series(mfi))))  # RSI.close x MFI.close
    assert_results_equal(ir, per_tick_python(compiled, data))
