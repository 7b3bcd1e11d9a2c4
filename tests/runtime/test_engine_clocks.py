"""Multi-clock and unaligned multi-source strategies in the generated flow, against the reference.

Every key runs on the union timeline of its sources (every clock); nodes fire where all their
inputs are present.  These tests compare the flow with the per-tick reference interpreter at batch
sizes 1, 7 and 10_000 on 1m+5m data and on gappy per-symbol data, single and multi-symbol, and check
that the flow — not the module-wide interpreter fallback — is what ran.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmtl import codegen
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.runtime import engine, reference
from qmtl.runtime.binding import bind
from qmtl.runtime.reference import evaluate
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars
from tests.codegen.modules import Builder

BATCHES = (1, 7, 10_000)


def _two_clock_module(mixed: bool = True):
    """A 1m momentum, a 5m mean, and a node reading both (fires on 5m ticks present in 1m data);
    ``mixed`` adds a node windowing 1m and 5m values together (per tick on unaligned keys)."""
    b = Builder("TwoClock", interval=60)
    fast = b.source()
    b.interval = 300
    slow = b.source()
    b.interval = 60
    f_close = b.op("column", fast, name="close")
    fast_mom = b.out("fast_mom", b.op("rolling_mean", b.op("pct_change", f_close), window=5), 6)
    b.interval = 300
    s_close = b.op("column", slow, name="close")
    slow_mean = b.out("slow_mean", b.op("rolling_mean", s_close, window=3), 3)
    slow_ema = b.out("slow_ema", b.op("ema", s_close, period=4), 4)
    both = b.op("sub", fast_mom, b.op("div", slow_mean, b.op("const", value=1000.0)))
    b.out("both", both, 2)
    # a window over values of two timelines: the reference pairs them entry by entry
    # one window per clock inside a node reading both: each pushes where its own input is present
    f2, s2 = b.op("column", fast, name="close"), b.op("column", slow, name="close")
    b.out("fast_sma_over_slow", b.op("div", b.op("rolling_mean", f2, window=4),
                                     b.op("rolling_max", s2, window=2)), 4)
    if mixed:
        own_f, own_s = b.op("column", fast, name="close"), b.op("column", slow, name="close")
        b.out("mixed", b.op("rolling_sum", b.op("sub", own_f, own_s), window=2), 2)
    return b.module()


def _pairs_module():
    """Two single-symbol inputs on one clock (a pairs strategy): spread, its z-ish score, an RSI."""
    b = Builder("Pairs", interval=60)
    a = b.source(tags=("A",))
    c = b.source(tags=("B",))

    def closes():  # each node its own column ops (a shared op would make nodes run per tick apart)
        return b.op("column", a, name="close"), b.op("column", c, name="close")

    a_close, b_close = closes()
    spread = b.out("spread", b.op("sub", b.op("log", a_close), b.op("log", b_close)), 1)
    a_close, _ = closes()
    b.out("a_vol", b.op("rolling_std", b.op("pct_change", a_close), window=4), 5)
    a_close, b_close = closes()
    b.out("a_minus_bmean", b.op("sub", a_close, b.op("rolling_mean", b_close, window=3)), 3)
    b.out("spread_mean", b.op("rolling_mean", spread, window=4), 4)
    b.out("spread_rsi", b.op("rsi", spread, period=3), 4)
    a_close, b_close = closes()
    b.out("raw_mixed", b.op("rolling_mean", b.op("sub", a_close, b_close), window=3), 3)
    # a recursive op over both inputs runs on the node's common ticks; a window over it too
    a2, b2 = b.op("column", a, name="close"), b.op("column", c, name="close")
    ema = b.op("ema", b.op("sub", a2, b2), period=3)
    b.out("ema_diff", b.op("diff", ema), 4)
    return b.module()


def _one_source_two_symbols_module():
    """One input fanning out over every symbol, plus one pinned to symbol B: per-key timelines."""
    b = Builder("Fan", interval=60)
    src = b.source()
    close = b.op("column", src, name="close")
    b.out("mom", b.op("rolling_mean", b.op("diff", close), window=3), 4)
    b.out("ema", b.op("ema", close, period=3), 3)
    return b.module()


def _gappy(df: pd.DataFrame, seed: int, keep: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return df[rng.random(len(df)) < keep].reset_index(drop=True)


def _compiled(module):
    return CompiledStrategy(module.name, module, functions={})


def _run_flow_only(module, data, bs):
    return engine.run(_compiled(module), data, batch_size=bs)


def test_two_clocks_single_symbol_match_reference(monkeypatch):
    module = _two_clock_module()
    data = synthetic_bars(400, seed=3)
    ref = evaluate(module, {}, bind(module, data))
    assert len(ref["slow_mean"]) > 0 and len(ref["both"]) > 0 and len(ref["fast_mom"]) > 300
    monkeypatch.setattr(reference, "evaluate", _refuse)
    for bs in BATCHES:
        assert_results_equal(_run_flow_only(module, data, bs), ref)


def _refuse(*_a, **_k):
    raise AssertionError("engine.run fell back to the reference interpreter for the whole module")


def test_two_clocks_multi_symbol_gappy_match_reference(monkeypatch):
    module = _two_clock_module()
    data = _gappy(synthetic_bars(500, symbols=("A", "B", "C"), seed=4), seed=1, keep=0.8)
    ref = evaluate(module, {}, bind(module, data))
    monkeypatch.setattr(reference, "evaluate", _refuse)
    for bs in BATCHES:
        assert_results_equal(_run_flow_only(module, data, bs), ref)


def test_pairs_on_gappy_symbols_match_reference(monkeypatch):
    module = _pairs_module()
    data = _gappy(synthetic_bars(300, symbols=("A", "B"), seed=7), seed=2, keep=0.7)
    ref = evaluate(module, {}, bind(module, data))
    # the data really is unaligned: the spread fires only where both are present
    a_ts = set(data.loc[data.symbol == "A", "ts"])
    b_ts = set(data.loc[data.symbol == "B", "ts"])
    assert a_ts != b_ts and set(ref["spread"].index) == a_ts & b_ts
    monkeypatch.setattr(reference, "evaluate", _refuse)
    for bs in BATCHES:
        assert_results_equal(_run_flow_only(module, data, bs), ref)


def test_pairs_on_aligned_symbols_use_kernels_only(monkeypatch):
    module = _pairs_module()
    data = synthetic_bars(200, symbols=("A", "B"), seed=8)
    ref = evaluate(module, {}, bind(module, data))
    assert not codegen.plan(module).py_steps  # no opaque function: nothing runs per tick
    monkeypatch.setattr(reference, "evaluate", _refuse)
    for bs in BATCHES:
        assert_results_equal(_run_flow_only(module, data, bs), ref)


def test_fan_out_per_symbol_gaps_match_reference(monkeypatch):
    module = _one_source_two_symbols_module()
    data = _gappy(synthetic_bars(300, symbols=("A", "B"), seed=9), seed=3, keep=0.6)
    ref = evaluate(module, {}, bind(module, data))
    monkeypatch.setattr(reference, "evaluate", _refuse)
    for bs in BATCHES:
        assert_results_equal(_run_flow_only(module, data, bs), ref)


def test_multi_clock_and_mixed_timeline_nodes_all_run_in_kernels():
    """Windows over values of different timelines, slower inputs read as of their last close: every
    traced op is in a kernel, whatever the data's alignment (docs/design.md "Clocks and joins")."""
    for module in (_two_clock_module(), _pairs_module()):
        p = codegen.plan(module)
        assert not p.py_steps
        in_kernels = {op.result for k in p.kernels for op in k.ops}
        computed = {op.result for op in module.ops if op.name not in ("stream_input", "const")}
        assert computed <= in_kernels
        assert "rt.py_call(" not in codegen.generate(module)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), keep=st.floats(0.3, 1.0), n=st.integers(1, 120),
       bs=st.sampled_from(BATCHES), symbols=st.sampled_from([("A",), ("A", "B")]))
def test_property_two_clocks_gappy_equal_reference(seed, keep, n, bs, symbols):
    module = _two_clock_module()
    data = _gappy(synthetic_bars(n, symbols=symbols, seed=seed), seed=seed + 1, keep=keep)
    if data.empty:
        return
    ref = evaluate(module, {}, bind(module, data))
    assert_results_equal(engine.run(_compiled(module), data, batch_size=bs), ref)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), keep_a=st.floats(0.3, 1.0), keep_b=st.floats(0.3, 1.0),
       n=st.integers(1, 100), bs=st.sampled_from(BATCHES))
def test_property_pairs_gappy_equal_reference(seed, keep_a, keep_b, n, bs):
    module = _pairs_module()
    df = synthetic_bars(n, symbols=("A", "B"), seed=seed)
    a = _gappy(df[df.symbol == "A"], seed, keep_a)
    b = _gappy(df[df.symbol == "B"], seed + 1, keep_b)
    data = pd.concat([a, b]).sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    if a.empty or b.empty:
        return
    ref = evaluate(module, {}, bind(module, data))
    assert_results_equal(engine.run(_compiled(module), data, batch_size=bs), ref)
