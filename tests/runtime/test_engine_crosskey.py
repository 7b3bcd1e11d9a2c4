"""Cross-instrument nodes per node, not per module: broadcast single streams, fan-outs over different
keys, and tag queries, against the reference interpreter at batch sizes 1, 7 and 10_000.

The whole-module interpreter (``reference.evaluate``) is patched to raise in every differential test,
so the generated flow — plus, for nodes downstream of a tag query, the interpreter running just those
nodes (``reference.evaluate_nodes``, spied on to check which nodes it ran) — is what produced the
results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmtl import codegen
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.ir.module import Output
from qmtl.runtime import engine, reference
from qmtl.runtime.binding import bind, node_keys
from qmtl.runtime.reference import evaluate
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars
from tests.codegen.modules import Builder

BATCHES = (1, 7, 10_000)


def _refuse(*_a, **_k):
    raise AssertionError("engine.run fell back to the reference interpreter for the whole module")


def _gappy(df: pd.DataFrame, seed: int, keep: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return df[rng.random(len(df)) < keep].reset_index(drop=True)


def _check(module, data, monkeypatch, functions=None, batches=BATCHES) -> dict:
    """Flow == reference at every batch size, with the whole-module fallback refused; returns the
    reference result's frames (for further assertions) and which nodes the interpreter ran."""
    functions = functions or {}
    ref = evaluate(module, functions, bind(module, data))
    interpreted: list[set[str]] = []
    real = reference.evaluate_nodes

    def spy(mod, fns, bindings, names, known):
        interpreted.append(set(names))
        return real(mod, fns, bindings, names, known)

    monkeypatch.setattr(reference, "evaluate", _refuse)
    monkeypatch.setattr(reference, "evaluate_nodes", spy)
    compiled = CompiledStrategy(module.name, module, functions=functions)
    for bs in batches:
        assert_results_equal(engine.run(compiled, data, batch_size=bs), ref)
    monkeypatch.undo()
    return {"ref": ref, "interpreted": interpreted}


# --- (b) a broadcast single stream next to per-symbol streams ------------------------------------------


def _benchmark_module():
    """Per-symbol momentum, a single SPY benchmark input, and nodes reading both."""
    b = Builder("Bench", interval=60)
    px = b.source()                 # every symbol of the dataset: fans out
    spy = b.source(tags=("SPY",))   # one stream: runs once, broadcast to the per-symbol nodes
    mom = b.out("mom", b.op("rolling_mean", b.op("pct_change", b.op("column", px, name="close")),
                            window=3), 4)
    bench = b.out("bench", b.op("rolling_mean", b.op("column", spy, name="close"), window=5), 5)
    b.out("bench_ema", b.op("ema", b.op("column", spy, name="close"), period=4), 4)
    b.out("rel", b.op("sub", mom, b.op("div", bench, b.op("const", value=1000.0))), 2)
    b.out("raw_spread", b.op("sub", b.op("column", px, name="close"), b.op("column", spy, name="close")), 1)
    # a window over values of the two timelines: per tick on unaligned keys (the reference's pairing)
    b.out("spread_mean", b.op("rolling_mean", b.op("sub", b.op("column", px, name="close"),
                                                   b.op("column", spy, name="close")), window=3), 3)
    b.out("rel_ema", b.op("ema", b.op("sub", mom, bench), period=3), 3)
    return b.module()


def test_broadcast_benchmark_aligned_symbols(monkeypatch):
    data = synthetic_bars(150, symbols=("A", "B", "SPY"), seed=5)
    out = _check(_benchmark_module(), data, monkeypatch)
    ref = out["ref"]
    assert "symbol" not in ref["bench"].columns and len(ref["bench"]) > 100  # ran once
    assert set(ref["rel"]["symbol"]) == {"A", "B", "SPY"}
    assert not out["interpreted"]  # no tag query: the flow ran every node


def test_broadcast_benchmark_gappy_symbols(monkeypatch):
    data = _gappy(synthetic_bars(200, symbols=("A", "B", "C", "SPY"), seed=6), seed=3, keep=0.7)
    out = _check(_benchmark_module(), data, monkeypatch)
    assert len(out["ref"]["spread_mean"]) > 0 and len(out["ref"]["rel_ema"]) > 0


def test_broadcast_benchmark_single_symbol_of_the_fanned_source(monkeypatch):
    """Only SPY in the data: the fanned input selects one stream, so nothing fans out."""
    data = synthetic_bars(60, symbols=("SPY",), seed=2)
    _check(_benchmark_module(), data, monkeypatch)


# --- (b) fan-outs over different sets of keys ----------------------------------------------------------


def _key_sets_module():
    b = Builder("KeySets", interval=60)
    px = b.source()                   # A, B, C
    ab = b.source(tags=("A", "B"))    # fans out over A, B only
    bc = b.source(tags=("B", "C"))    # over B, C
    c_only = b.source(tags=("C",))    # one stream
    close = lambda s: b.op("column", s, name="close")  # noqa: E731 - each node its own column op
    b.out("px_mom", b.op("rolling_mean", b.op("diff", close(px)), window=3), 4)
    b.out("ab_ema", b.op("ema", close(ab), period=3), 3)
    b.out("px_minus_ab", b.op("sub", close(px), b.op("rolling_mean", close(ab), window=2)), 2)
    b.out("ab_minus_bc", b.op("sub", close(ab), close(bc)), 1)        # only key B: no symbol column
    b.out("bc_over_c", b.op("div", close(bc), close(c_only)), 1)
    b.out("c_sma", b.op("rolling_mean", close(c_only), window=4), 4)
    return b.module()


def test_sources_fanning_out_over_different_keys(monkeypatch):
    data = _gappy(synthetic_bars(160, symbols=("A", "B", "C"), seed=8), seed=4, keep=0.8)
    module = _key_sets_module()
    _, names = node_keys(module, bind(module, data))
    assert names["ab_minus_bc"] == ("B",) and set(names["px_minus_ab"]) == {"A", "B"} and names["c_sma"] is None
    ref = _check(module, data, monkeypatch)["ref"]
    assert "symbol" not in ref["ab_minus_bc"].columns and len(ref["ab_minus_bc"]) > 0
    assert set(ref["px_minus_ab"]["symbol"]) == {"A", "B"}


# --- (a) tag queries: only the query's region and what reads it run per tick ---------------------------


def _tag_query_module(traced: int = 3, period: int = 6):
    """``traced`` per-symbol traced nodes, a correlation over a tag query (py_call), and a py_call
    reading both the correlation and a per-symbol node (broadcast of the query's result)."""
    b = Builder("TagQuery", interval=60)
    px = b.source(tags=("px",))
    q = b.op("tag_query", tags=("ta-indicator",), interval=60, match_mode="any")
    b.outputs.append(Output("indicators", q, period, 60, "source"))
    moms = [b.out(f"mom{i}", b.op("rolling_mean", b.op("pct_change", b.op("column", px, name="close")),
                                  window=2 + i), 3 + i) for i in range(traced)]
    corr = b.out("corr", b.op("py_call", q, code_hash="corr", period=period), period, "opaque")
    b.out("scaled", b.op("py_call", moms[0], corr, code_hash="scale", period=2), 2, "opaque")
    b.out("corr_level", b.op("py_call", corr, code_hash="level", period=3), 3, "opaque")
    return b.module()


def _corr(view) -> dict:
    keys = sorted(view)
    aligned = view.align_frames([(k, 60) for k in keys], window=6)
    closes = pd.concat([f.frame["close"].rename(k) for k, f in zip(keys, aligned)], axis=1)
    return {"rho": float(closes.corr().iloc[0, 1])}


def _scale(view) -> float:
    return float(view["mom0"][60].iloc[-1]) * float(view["corr"][60]["rho"].iloc[-1])


def _level(view) -> float:
    return float(view["corr"][60]["rho"].mean())


FUNCTIONS = {"corr": _corr, "scale": _scale, "level": _level}


def _tag_data(n: int, symbols=("A", "B", "C"), seed: int = 1) -> dict:
    return {"px": synthetic_bars(n, symbols=symbols, seed=seed),
            "ta-indicator": synthetic_bars(n, symbols=("RSI", "MFI"), seed=seed + 1)}


def test_tag_query_region_per_tick_rest_in_kernels(monkeypatch):
    module = _tag_query_module()
    parts = codegen.split(module)
    assert set(parts.per_tick) == {"corr", "scaled", "corr_level"}
    assert "tag query" in parts.per_tick["corr"] and "'corr'" in parts.per_tick["scaled"]
    assert {o.name for o in parts.flow.outputs} == {"src0", "mom0", "mom1", "mom2"}
    assert all(op.name != "tag_query" for op in parts.flow.ops)
    out = _check(module, _tag_data(80), monkeypatch, FUNCTIONS)
    assert out["interpreted"] and all(s == {"corr", "scaled", "corr_level"} for s in out["interpreted"])
    ref = out["ref"]
    assert len(ref["corr"]) == 75 and set(ref["scaled"]["symbol"]) == {"A", "B", "C"}


def test_tag_query_with_gappy_per_symbol_data(monkeypatch):
    data = _tag_data(90, seed=4)
    data["px"] = _gappy(data["px"], seed=9, keep=0.75)
    _check(_tag_query_module(), data, monkeypatch, FUNCTIONS)


def test_module_of_only_a_tag_query_node_runs_on_the_interpreter():
    module = _tag_query_module(traced=1)
    module = module.with_(outputs=tuple(o for o in module.outputs if o.name in ("indicators", "corr", "src0")))
    assert codegen.split(module).flow is None
    data = _tag_data(30)
    ref = evaluate(module, FUNCTIONS, bind(module, data))
    assert_results_equal(engine.run(CompiledStrategy("T", module, functions=FUNCTIONS), data), ref)


def test_split_keeps_a_module_without_tag_queries_as_is():
    module = _benchmark_module()
    parts = codegen.split(module)
    assert parts.flow is module and parts.per_tick == {}


# --- properties -----------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), keep=st.floats(0.3, 1.0), keep_spy=st.floats(0.3, 1.0),
       n=st.integers(1, 80), bs=st.sampled_from(BATCHES))
def test_property_broadcast_gappy_equal_reference(seed, keep, keep_spy, n, bs):
    df = synthetic_bars(n, symbols=("A", "B", "SPY"), seed=seed)
    rest = _gappy(df[df.symbol != "SPY"], seed, keep)
    spy = _gappy(df[df.symbol == "SPY"], seed + 1, keep_spy)
    if rest.empty or spy.empty:
        return
    data = pd.concat([rest, spy]).sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    module = _benchmark_module()
    ref = evaluate(module, {}, bind(module, data))
    assert_results_equal(engine.run(CompiledStrategy("B", module, functions={}), data, batch_size=bs), ref)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), keep=st.floats(0.4, 1.0), n=st.integers(8, 60),
       bs=st.sampled_from(BATCHES))
def test_property_tag_query_gappy_equal_reference(seed, keep, n, bs):
    data = _tag_data(n, seed=seed)
    data["px"] = _gappy(data["px"], seed, keep)
    if data["px"].empty:
        return
    module = _tag_query_module(traced=2)
    ref = evaluate(module, FUNCTIONS, bind(module, data))
    got = engine.run(CompiledStrategy("Q", module, functions=FUNCTIONS), data, batch_size=bs)
    assert_results_equal(got, ref)


def test_broadcast_in_a_cluster_run_with_gappy_instruments(tmp_path):
    """A single-stream input broadcast onto every instrument's timeline, instruments with gaps: a
    cluster run (each instrument's partition reading its bars and the broadcast stream's) equals the
    reference."""
    from qmtl.runtime.cluster import cluster_flow, run_process
    from qmtl.runtime.row_sink import read_outputs
    data = _gappy(synthetic_bars(120, symbols=("A", "B", "SPY"), seed=11), seed=5, keep=0.8)
    path = tmp_path / "bars.parquet"
    (data if "ts" in data.columns else data.reset_index()).to_parquet(path, index=False)
    module = _benchmark_module()
    ref = evaluate(module, {}, bind(module, data))
    job = cluster_flow(CompiledStrategy("B", module, functions={}), str(path), tmp_path / "out", batch_size=16)
    run_process(job.flow, workers=2)
    got = read_outputs(tmp_path / "out")
    assert list(got) == list(ref.outputs)
    for name, frame in ref.outputs.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


def test_generated_text_is_the_flow_and_names_the_interpreted_nodes():
    module = _tag_query_module()
    text = codegen.generate(module)
    assert "Nodes not in this flow" in text and "corr: reads the tag query" in text
    assert "tag_query" not in text and 'OUTPUTS = {' in text and '"mom2"' in text
    assert '"corr"' not in text.split("OUTPUTS = {")[1]
    plain = codegen.generate(_benchmark_module())
    assert "Nodes not in this flow" not in plain
