"""RiskControl's portfolio-total cap (``max_total_notional``, op ``total_cap``, docs/design.md
"Execution nodes"): the engine's two passes around the jitted step against the reference interpreter
bit for bit at awkward batch sizes, the reference against an independent pandas computation of the
rule written here, the bound it promises, NodeIDs (unchanged without the cap), the errors, and the
cluster run's cap step equal to the in-memory run, and the live kernels' instant-by-instant cap
against the backtest.

The pandas computation works on a wide frame (one column per instrument, one row per close instant
of any of them): prices carried with ``ffill``, the book held carried row to row; the reference
merges the instruments' entries into one sorted list and steps through it.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qmtl
from qmtl.codegen.plan import Kernel, plan
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.ir.diagnostics import CompileError
from qmtl.ir.parser import parse_module as parse
from qmtl.ir.printer import print_module
from qmtl.ir.verifier import verify
from qmtl.live.kernels import LiveKernels
from qmtl.runtime import cross
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.binding import bind
from qmtl.runtime.cluster import cluster_flow
from qmtl.runtime.engine import run
from qmtl.runtime.reference import evaluate
from qmtl.runtime.synthetic import synthetic_bars
from tests.runtime.execution_support import exec_module, live_instants, pandas_risk, signal_bars

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the rule, written independently with pandas ------------------------------------------------------

def pandas_total_cap(targets: pd.DataFrame, closes: pd.DataFrame, cap: float) -> pd.DataFrame:
    """``targets``/``closes``: index = close instants (the union), one column per instrument, NaN
    where the instrument has no bar.  Returns the capped targets (NaN where the target was)."""
    marks = closes.where(closes > 0).ffill()
    held = pd.Series(0.0, index=targets.columns)
    out = pd.DataFrame(np.nan, index=targets.index, columns=targets.columns)
    for instant in targets.index:
        row, mark = targets.loc[instant], marks.loc[instant]
        deciding = row.notna()
        wanted = (row[deciding].abs() * mark[deciding]).fillna(0.0).sum()
        kept = (held[~deciding].abs() * mark[~deciding]).fillna(0.0).sum()
        scale = 1.0
        if wanted > 0 and wanted + kept > cap:
            scale = max(cap - kept, 0.0) / wanted
        out.loc[instant] = row * scale
        held[deciding] = out.loc[instant, deciding]
    return out


# --- data and modules ---------------------------------------------------------------------------------

def book(spans: list[tuple[int, list[int]]], seed: int, nan_share: float = 0.15) -> pd.DataFrame:
    """One instrument per (start minute, gaps): its own start, gaps and end, prices of its own
    level, a ``signal`` column with NaNs."""
    rng = np.random.default_rng(seed)
    frames = [signal_bars(1_599_999_960 + 60 * (start + np.cumsum(np.asarray(gaps, dtype=np.int64))), rng,
                          level=50 + 40 * i, vol=0.02, nan_share=nan_share, symbol=f"S{i}")
              for i, (start, gaps) in enumerate(spans)]
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "symbol"], ignore_index=True)


def module(risk: dict, cap: float, execution: dict):
    return exec_module("Book", risk, execution, cap=cap, orders_period=2)


def wide(df: pd.DataFrame, column: str) -> pd.DataFrame:
    return df.assign(c=df.ts + 60).pivot(index="c", columns="symbol", values=column).sort_index()


RISKS = ({"max_position": 5.0, "max_notional": 300.0}, {"max_position": 3.0})
CAPS = (150.0, 400.0, 1e9)
SPANS = st.lists(st.tuples(st.integers(0, 40), st.lists(st.one_of(st.integers(1, 2), st.integers(3, 30)),
                                                        min_size=1, max_size=60)), min_size=1, max_size=4)


@PROPERTY
@given(spans=SPANS, seed=st.integers(0, 2**16), risk=st.sampled_from(RISKS), cap=st.sampled_from(CAPS))
def test_engine_equals_reference_equals_pandas(spans, seed, risk, cap):
    df = book(spans, seed)
    m = module(risk, cap, {"initial_cash": 1000.0, "fee_bps": 1.0, "slippage_bps": 2.0})
    ref = evaluate(m, {}, bind(m, df)).outputs
    # the rule, by pandas, on the per-instrument targets pandas computes too
    targets = df.assign(t=pandas_risk(df.signal, df.close, risk["max_position"], risk.get("max_notional")))
    want = pandas_total_cap(wide(targets, "t"), wide(df, "close"), cap)
    got = ref["risk"]
    multi = "symbol" in got.columns
    for sym in sorted(df.symbol.unique()):
        mine = got[got.symbol == sym]["risk"] if multi else got["risk"]
        theirs = want[sym].loc[wide(df, "close")[sym].notna()]  # rows: the instrument's bars
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-12, atol=1e-12, err_msg=sym)
    compiled = CompiledStrategy(m.name, m)
    for bs in (1, 7, 10_000):
        kernel = run(compiled, df, batch_size=bs).outputs
        for name in ("risk", "timing", "orders"):
            pd.testing.assert_frame_equal(kernel[name], ref[name], check_exact=True,
                                          obj=f"{name} at batch size {bs}")


@PROPERTY
@given(spans=SPANS, seed=st.integers(0, 2**16), cap=st.sampled_from(CAPS[:2]))
def test_the_book_the_targets_hold_stays_within_the_cap(spans, seed, cap):
    """After every instant, the targets held (each instrument's latest number) marked at the latest
    closes sum to at most the cap, unless the positions carried from earlier instants alone exceed it
    (then every instrument deciding there is taken flat)."""
    df = book(spans, seed)
    m = module({"max_position": 3.0}, cap, {"initial_cash": 1000.0})
    got = evaluate(m, {}, bind(m, df)).outputs["risk"]
    got = got.assign(symbol=got["symbol"] if "symbol" in got.columns else "S0")
    capped = df.assign(c=df.ts + 60).merge(got.reset_index().assign(c=lambda f: f.ts + 60)[["c", "symbol", "risk"]],
                                           on=["c", "symbol"])
    targets = capped.pivot(index="c", columns="symbol", values="risk").sort_index()
    marks = capped.pivot(index="c", columns="symbol", values="close").sort_index().ffill()
    held = targets.ffill().fillna(0.0)
    before = held.shift(1).fillna(0.0)
    carried = (before.abs() * marks).where(targets.isna(), 0.0).sum(axis=1)
    gross = (held.abs() * marks.fillna(0.0)).sum(axis=1)
    ok = (gross <= cap * (1 + 1e-9)) | (carried >= cap * (1 - 1e-9))
    assert ok.all(), gross[~ok]


def test_by_hand_two_instruments_and_a_gap():
    """A at 100, B at 50; cap 600.  Instant 1: both want 5 units: 500 + 250 = 750 > 600, scale 0.8.
    Instant 2: only A has a bar (B holds 4 units at 50 = 200): A wants 5 at 100 = 500, 700 > 600,
    so A gets (600 - 200) / 500 of it: 4 units.  Instant 3: B wants 1 at 50 (50), A holds 4 at 100
    (400): 450 fits, unscaled."""
    df = pd.DataFrame({"ts": [0, 0, 60, 120], "symbol": ["A", "B", "A", "B"], "open": [100.0, 50.0, 100.0, 50.0],
                       "high": [100.0, 50.0, 100.0, 50.0], "low": [100.0, 50.0, 100.0, 50.0],
                       "close": [100.0, 50.0, 100.0, 50.0], "volume": 1.0, "signal": [1.0, 1.0, 1.0, 0.2]})
    m = module({"max_position": 5.0}, 600.0, {"initial_cash": 1000.0})
    for out in (evaluate(m, {}, bind(m, df)).outputs, run(CompiledStrategy(m.name, m), df, batch_size=1).outputs):
        risk = out["risk"]
        assert risk[risk.symbol == "A"]["risk"].tolist() == pytest.approx([4.0, 4.0])
        assert risk[risk.symbol == "B"]["risk"].tolist() == pytest.approx([4.0, 1.0])


def test_plan_keeps_the_cap_out_of_the_kernels_and_the_rest_in():
    m = module({"max_position": 5.0}, 600.0, {"initial_cash": 1000.0})
    caps = cross.cross_ops(m)
    assert [op.name for op in caps] == ["total_cap"]
    second = cross.capped_module(m, caps, {})
    in_kernels = {op.name for step in plan(second).steps if isinstance(step, Kernel) for op in step.ops}
    assert {"timing_gate", "execution"} <= in_kernels and "risk_control" not in in_kernels
    first = cross.operands_module(m, caps)
    in_first = {op.name for step in plan(first).steps if isinstance(step, Kernel) for op in step.ops}
    assert "risk_control" in in_first and not {"timing_gate", "execution"} & in_first


# --- through the SDK --------------------------------------------------------------------------------

STRATEGY = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution


class Book(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=5)
        signal = Node(expr={{"signal": (price.close.pct_change().rolling(3).mean() > 0).astype(float) * 2 - 1}},
                      name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=800{cap})
        timing = TimingGate(risk)
        orders = Execution(timing, fee_bps=1, slippage_bps=1)
        self.add_nodes([price, signal, risk, timing, orders])
'''

#: NodeIDs of STRATEGY without the cap, computed by the code before ``total_cap`` existed (main at
#: 3900c88): adding the op must not move any
NODE_IDS_BEFORE = {
    "price": "blake3:f5722d8ff4fcd8e20fdea163e5d84c7e0d4de9de5c4649c36e51ae2a00beaf1b",
    "signal": "blake3:69ce531e33ed671b86a86d8c84f4533dddb81d8c60b955a8010cff11127c212e",
    "risk": "blake3:3c8cf360964ee2fa8298463524101db1d73d60a3af793ea0f8e8d6b1cdb09efd",
    "timing": "blake3:55fd3581bcf702b09cfc4f655ac37c1bd3ffebba974c00d1b2f471e9663d5ffd",
    "orders": "blake3:390e049e00011346917339da13b2ce16982a2b2d9b348d6afce3984bb7800991",
}


def compile_book(tmp_path, cap: str = ""):
    path = tmp_path / f"book{abs(hash(cap))}.py"
    path.write_text(STRATEGY.format(cap=cap))
    return qmtl.compile(str(path))


def test_node_ids_without_the_cap_are_unchanged_and_the_cap_is_identity(tmp_path):
    plain = compile_book(tmp_path)
    assert plain.node_ids == NODE_IDS_BEFORE
    capped = compile_book(tmp_path, ", max_total_notional=1500")
    other = compile_book(tmp_path, ", max_total_notional=2500")
    for c in (capped, other):
        assert c.node_ids["signal"] == plain.node_ids["signal"]
        assert all(c.node_ids[n] != plain.node_ids[n] for n in ("risk", "timing", "orders"))
    assert all(capped.node_ids[n] != other.node_ids[n] for n in ("risk", "timing", "orders"))
    # the per-instrument target inside the capped node is the uncapped node's value (one NodeID)
    inner = [op for op in capped.module.ops if op.name == "risk_control"]
    assert [op.node_id for op in inner] == [plain.node_ids["risk"]]


def test_a_cap_that_never_binds_changes_no_value(tmp_path):
    data = synthetic_bars(400, symbols=("AAA", "BBB", "CCC"), seed=11)
    plain = compile_book(tmp_path).run(data, batch_size=37).outputs
    loose = compile_book(tmp_path, ", max_total_notional=1e12").run(data, batch_size=37).outputs
    for name in ("risk", "timing", "orders"):
        pd.testing.assert_frame_equal(loose[name], plain[name], check_exact=True)
    tight = compile_book(tmp_path, ", max_total_notional=1000").run(data).outputs
    assert (tight["risk"]["risk"].abs() < plain["risk"]["risk"].abs() - 1e-9).any()


def test_stored_values_give_the_same_capped_run(tmp_path):
    data = synthetic_bars(300, symbols=("AAA", "BBB"), seed=4)
    compiled = compile_book(tmp_path, ", max_total_notional=1200")
    plain = compiled.run(data).outputs
    store = ArtifactStore(tmp_path / "store")
    first = run(compiled, data, store=store, batch_size=50)
    second = run(compiled, data, store=store, batch_size=13)
    assert second.sharing.reused, "the second run reads stored values"
    # another strategy stored the signal: the capped run reads it in both of its passes
    other = ArtifactStore(tmp_path / "other")
    run(compile_book(tmp_path), data, store=other)
    third = run(compiled, data, store=other, batch_size=29)
    assert "signal" in third.sharing.reused and "risk" not in third.sharing.reused
    for result in (first, second, third):
        for name in ("risk", "timing", "orders"):
            pd.testing.assert_frame_equal(result.outputs[name], plain[name], check_exact=True)


def test_ir_text_round_trips_and_the_verifier_checks_the_cap(tmp_path):
    compiled = compile_book(tmp_path, ", max_total_notional=1500")
    text = print_module(compiled.module)
    again = parse(text)
    assert print_module(again) == text and verify(again) == []
    found = verify(parse(text.replace("max_total_notional = 1500.0", "max_total_notional = 0.0")),
                   check_ids=False)
    assert any(d.code == "E107" and "max_total_notional" in d.message for d in found), found


@pytest.mark.parametrize("value,message", [("0", "max_total_notional=0 must be greater than 0"),
                                           ("float('nan')", "max_total_notional=nan must be a finite number"),
                                           ("'1e6'", "must be a finite number")])
def test_bad_cap_is_E304_at_the_strategy_line(tmp_path, value, message):
    path = tmp_path / "bad.py"
    path.write_text(textwrap.dedent(f'''
        from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl
        class S(Strategy):
            def setup(self):
                price = StreamInput(interval="60s", period=5)
                signal = Node(expr=price.close.diff(), name="signal")
                risk = RiskControl(signal, max_position=1, max_total_notional={value})
                self.add_nodes([price, signal, risk])
    '''))
    with pytest.raises(CompileError) as err:
        qmtl.compile(str(path))
    (d,) = [d for d in err.value.diagnostics if d.severity == "error"]
    assert d.code == "E304" and message in d.message and d.loc.line == 7, d


def test_cluster_run_applies_the_cap_as_the_in_memory_run(tmp_path):
    """Once refused (E508), now run: the cap's step inside the cluster dataflow (the cap binding,
    three instruments, gaps) gives the in-memory run's frames bit for bit.  (More cluster cases:
    tests/runtime/test_cluster_cap.py.)"""
    from qmtl.runtime.cluster import run_process
    from qmtl.runtime.row_sink import read_outputs
    data = tmp_path / "bars.parquet"
    bars = synthetic_bars(120, symbols=("AAA", "BBB", "CCC"), seed=1)
    bars[np.random.default_rng(3).random(len(bars)) > 0.25].to_parquet(data)
    compiled = compile_book(tmp_path, ", max_total_notional=700")
    expected = compiled.run(str(data)).outputs
    plain = compile_book(tmp_path).run(str(data)).outputs
    assert (expected["risk"]["risk"].abs() < plain["risk"]["risk"].abs() - 1e-9).any(), "the cap binds"
    run_process(cluster_flow(compiled, str(data), tmp_path / "out", batch_size=9).flow, workers=2)
    written = read_outputs(tmp_path / "out")
    assert list(written) == list(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(written[name], frame, check_exact=True, obj=name)


def test_live_kernels_cap_instant_by_instant_as_the_backtest_does(tmp_path):
    """The live kernels warm up on history and then take one instant's bars at a time (some
    instruments missing at some instants: gaps); every output equals the backtest over the same bars
    bit for bit, the cap binds, and the held book ends at each instrument's last capped target and
    last close.  (On the real NATS server: tests/live/test_total_cap_live.py.)"""
    compiled = compile_book(tmp_path, ", max_total_notional=700")
    data = synthetic_bars(80, symbols=("AAA", "BBB", "CCC"), seed=5)
    rng = np.random.default_rng(2)
    data = data[(data.ts < data.ts.iloc[0] + 60 * 50) | (rng.random(len(data)) > 0.2)]  # live gaps
    instants = sorted(data.ts.unique())
    history, live = data[data.ts < instants[50]], data[data.ts >= instants[50]]
    kernels = LiveKernels(compiled, history)
    assert kernels.capped
    seen = live_instants(kernels, live)
    backtest = compiled.run(data).outputs
    plain = compile_book(tmp_path).run(data).outputs
    assert (backtest["risk"]["risk"].abs() < plain["risk"]["risk"].abs() - 1e-9).any(), "the cap binds"
    for key, chunks in seen.items():
        for name, whole in backtest.items():
            mine = whole[whole.symbol == key].drop(columns="symbol")
            ts = np.concatenate([c[name][0] for c in chunks])
            assert ts.tolist() == mine.index.tolist(), (key, name)
            for col in mine.columns:
                got = np.concatenate([c[name][1][col] for c in chunks])
                np.testing.assert_array_equal(got, mine[col].to_numpy(), err_msg=f"{key} {name}.{col}")
    (value,) = kernels.book.books
    for key in seen:
        risk = backtest["risk"][backtest["risk"].symbol == key]["risk"].dropna()
        held, mark = kernels.book.held(value, key)
        assert held == risk.iloc[-1] and mark == data[data.symbol == key].close.iloc[-1]


def test_submit_backtests_with_the_cap(tmp_path):
    """Runner.submit's returns and trades come from the capped Execution: the same fills a run shows,
    and not those of the same strategy without the cap."""
    from qmtl.runner.runner import Runner
    from tests.submit_support import closed_port_url
    data = synthetic_bars(600, symbols=("AAA", "BBB", "CCC"), seed=8)
    results = {}
    for label, cap in (("plain", ""), ("capped", ", max_total_notional=900")):
        path = tmp_path / f"{label}.py"
        path.write_text(STRATEGY.format(cap=cap))
        pre = Runner.submit(path, world="w", data=data, gateway_url=closed_port_url(), timeout=2.0).precheck
        out = qmtl.compile(str(path)).run(data).outputs["orders"]
        assert pre.returns_source.startswith("orders.")
        assert pre.metrics.trades == int((out["fill_qty"] != 0).sum()) > 0
        results[label] = (pre.metrics.total_return, out)
    plain, capped = results["plain"][1], results["capped"][1]
    assert (capped["position"].abs() <= plain["position"].abs() + 1e-9).all()
    assert (capped["position"].abs() < plain["position"].abs() - 1e-9).any()
    assert results["plain"][0] != results["capped"][0]
