"""Two strategies sharing an expensive opaque feature: the second one, on the same bars, reads the
feature (and its traced successors) from the artifact store and never calls the function; on other
bars it computes everything.  Outputs equal a run from scratch, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmtl.compiler.pipeline import compile as qmtl_compile
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.sdk import Node, Strategy, StreamInput

CALLS = {"n": 0}


def _counted(compiled):
    """Count every call of the strategy's opaque functions (outside them: a counter the function
    itself read would be part of its code hash)."""
    def wrap(fn):
        def counted(view):
            CALLS["n"] += 1
            return fn(view)
        return counted
    compiled.functions = {k: wrap(f) for k, f in compiled.functions.items()}
    return compiled


def compile_counted(cls):
    return _counted(qmtl_compile(cls))


def zscore(view):
    """Opaque on purpose (positional access)."""
    window = view[PRICE][60]["close"]
    return float((window.iloc[-1] - window.mean()) / (window.std() or 1.0)) + 0 * window.iloc[0]


PRICE = StreamInput(interval="60s", period=20)


class FeatureA(Strategy):
    def setup(self):
        feat = Node(input=PRICE, compute_fn=zscore, period=20, name="z")
        smooth = Node(input=feat, compute_fn=lambda v: v[feat][60].rolling(10).mean(), period=10, name="zs")
        self.add_nodes([PRICE, feat, smooth])


class FeatureB(Strategy):
    def setup(self):
        feat = Node(input=PRICE, compute_fn=zscore, period=20, name="zz")
        smooth = Node(input=feat, compute_fn=lambda v: v[feat][60].rolling(10).mean(), period=10, name="zz_s")
        sig = Node(input=smooth, compute_fn=lambda v: (v[smooth][60] > 0).astype(float), period=1, name="sig")
        self.add_nodes([PRICE, feat, smooth, sig])


def _bars(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + rng.standard_normal(n).cumsum()
    return pd.DataFrame({"ts": np.arange(n, dtype=np.int64) * 60, "open": close, "high": close + 1,
                         "low": close - 1, "close": close, "volume": 1.0})


def _same(a, b) -> None:
    for name in a.outputs:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


def test_the_second_strategy_never_calls_the_shared_function(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    a, b = compile_counted(FeatureA), compile_counted(FeatureB)
    assert a.node_ids["z"] == b.node_ids["zz"]  # the same feature under another name
    bars = _bars(1)
    scratch_b = b.run(bars)

    CALLS["n"] = 0
    a.run(bars, store=store)
    assert CALLS["n"] > 0
    CALLS["n"] = 0
    shared = b.run(bars, store=store)
    assert CALLS["n"] == 0
    assert set(shared.sharing.reused) == {"zz", "zz_s"}
    assert set(shared.sharing.written) == {"sig"}
    _same(scratch_b, shared)

    CALLS["n"] = 0
    other = _bars(2)
    fresh = b.run(other, store=store)
    assert CALLS["n"] == len(other) - 19  # every bar with a full window: nothing reused
    assert not fresh.sharing.reused
    _same(b.run(other), fresh)


class Traced(Strategy):
    def setup(self):
        ma = Node(input=PRICE, compute_fn=lambda v: v[PRICE][60]["close"].rolling(50).mean(), period=50,
                  name="ma")
        self.add_nodes([PRICE, ma])


def test_the_fingerprint_covers_exactly_the_data_a_value_reads(tmp_path):
    """A traced node reading ``close`` is reused when another column is added; an opaque function
    sees whole bars, so a new column is new data for it; one changed close reuses nothing."""
    store = ArtifactStore(tmp_path)
    traced, b = compile_counted(Traced), compile_counted(FeatureB)
    bars = _bars(3)
    traced.run(bars, store=store)
    b.run(bars, store=store)
    wider = bars.assign(extra=7.0)
    assert set(traced.run(wider, store=store).sharing.reused) == {"ma"}
    CALLS["n"] = 0
    assert not b.run(wider, store=store).sharing.reused
    assert CALLS["n"] > 0
    changed = bars.copy()
    changed.loc[300, "close"] += 1e-9
    assert not traced.run(changed, store=store).sharing.reused
    CALLS["n"] = 0
    assert set(b.run(bars, store=store).sharing.reused) == {"zz", "zz_s", "sig"} and CALLS["n"] == 0


def test_unstorable_rows_are_computed_and_said_so(tmp_path):
    class Rows(Strategy):
        def setup(self):
            node = Node(input=PRICE, compute_fn=lambda v: {"t": (v[PRICE][60]["close"].iloc[0], 1)},
                        period=2, name="tuple_rows")
            self.add_nodes([PRICE, node])

    store = ArtifactStore(tmp_path)
    res = qmtl_compile(Rows).run(_bars(4, 50), store=store)
    assert "tuple_rows" in res.sharing.not_stored
    assert not list(store.ls())


def test_an_artifact_that_does_not_fit_the_data_is_recomputed_and_replaced(tmp_path):
    """An artifact under the right key whose entries are not ticks of this run (written by a broken
    or older writer) is never read into the flow: the run computes everything and stores it again."""
    from qmtl.runtime.artifacts import Series

    store = ArtifactStore(tmp_path)
    traced = compile_counted(Traced)
    bars = _bars(8, 300)
    scratch = traced.run(bars)
    first = traced.run(bars, store=store)
    [info] = list(store.ls())
    good = store.read(info.node_id, info.fingerprint)
    store.write(info.node_id, info.fingerprint, Series(good.keys, good.ts + 1, good.columns), kind="series",
                type_=info.type, interval=info.interval, name=info.name, extent=info.extent)
    again = traced.run(bars, store=store)
    _same(scratch, again)
    assert not again.sharing.reused and set(again.sharing.written) == {"ma"}
    repaired = store.read(info.node_id, info.fingerprint)
    assert repaired.ts.tobytes() == good.ts.tobytes()
    assert set(traced.run(bars, store=store).sharing.reused) == {"ma"}
    assert first.sharing.written


def test_a_stored_frame_read_by_a_traced_column_is_read_by_the_kernels(tmp_path):
    """A frame-valued node stored by one strategy and read through a column by another's traced node
    (a RiskControl reading a ``{"signal": ...}`` node): the column is a kernel read of the stored
    frame's buffers, not a column of Python rows (which raised KeyError 'b_signal')."""
    from qmtl.runtime.engine import run
    from qmtl.runtime.synthetic import synthetic_bars
    head = ("from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl\n"
            "class S(Strategy):\n"
            "    def setup(self):\n"
            "        price = StreamInput(interval='60s', period=5)\n"
            "        signal = Node(expr={'signal': price.close.pct_change().rolling(3).mean() * 100}, name='signal')\n")
    (tmp_path / "a.py").write_text(head + "        self.add_nodes([price, signal])\n")
    (tmp_path / "b.py").write_text(head + "        risk = RiskControl(signal, max_position=2)\n"
                                          "        self.add_nodes([price, signal, risk])\n")
    data = synthetic_bars(200, symbols=("AAA", "BBB"), seed=2)
    store = ArtifactStore(tmp_path / "store")
    run(qmtl_compile(str(tmp_path / "a.py")), data, store=store)
    reader = qmtl_compile(str(tmp_path / "b.py"))
    shared = run(reader, data, store=store)
    assert "signal" in shared.sharing.reused
    pd.testing.assert_frame_equal(shared.outputs["risk"], reader.run(data).outputs["risk"], check_exact=True)
