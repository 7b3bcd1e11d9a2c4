"""``qmtl.replay``: several strategies in one run.  Each strategy's outputs equal its own run from
scratch, bit for bit; a function shared by NodeID is called once for all of them; the report says
what each strategy computed and what it shared."""

from __future__ import annotations

import pandas as pd

import qmtl
from tests.sharing.test_shared_nodes import CALLS, FeatureA, FeatureB, Traced, _bars, compile_counted


def test_replay_runs_each_nodeid_once_and_hands_each_strategy_its_own_outputs(tmp_path):
    bars = _bars(5, 800)
    a, b, t = compile_counted(FeatureA), compile_counted(FeatureB), compile_counted(Traced)
    CALLS["n"] = 0
    alone = {c.name: c.run(bars) for c in (a, b, t)}
    separately = CALLS["n"]
    CALLS["n"] = 0
    together = qmtl.replay([a, b, t], bars)
    assert CALLS["n"] * 2 == separately  # FeatureA and FeatureB share the opaque feature
    for name, result in alone.items():
        assert list(together[name].outputs) == list(result.outputs)
        for node in result.outputs:
            pd.testing.assert_frame_equal(together[name][node], result[node], check_exact=True)
    fb = together.strategies["FeatureB"]
    source = next(o.name for o in a.module.outputs if o.kind == "source")
    # the bars, the feature, its smoothing (and the op reading the feature's rows): FeatureA's, once
    assert {a.node_ids[source], a.node_ids["z"], a.node_ids["zs"]} <= set(fb.shared)
    assert set(fb.shared) == set(a.module.op_map()[v].node_id for v in a.module.op_map())
    assert set(fb.shared.values()) == {"FeatureA"}
    assert b.node_ids["sig"] in fb.computed
    assert together.unique_nodes < together.total_nodes


def test_replay_with_a_store_reads_what_an_earlier_run_stored(tmp_path):
    store = qmtl.ArtifactStore(tmp_path)
    bars = _bars(6, 500)
    a, b = compile_counted(FeatureA), compile_counted(FeatureB)
    a.run(bars, store=store)
    CALLS["n"] = 0
    res = qmtl.replay([b, a], bars, store=store)
    assert CALLS["n"] == 0
    assert set(res.strategies["FeatureB"].from_store) == {"zz", "zz_s"}
    assert set(res.strategies["FeatureA"].from_store) == set()  # shared with FeatureB in this run


def test_two_strategies_with_one_name_stay_apart(tmp_path):
    bars = _bars(7, 300)
    a1, a2 = compile_counted(FeatureA), compile_counted(Traced)
    a2.name = "FeatureA"
    res = qmtl.replay([a1, a2], bars)
    assert set(res.strategies) == {"FeatureA", "FeatureA#2"}
    assert "ma" in res["FeatureA#2"].outputs


def test_a_node_emitting_a_shared_value_differently_keeps_its_own_emissions():
    """``m`` is one value in both strategies, but one emits it after 5 bars, the other after 50;
    ``down`` reads *its* strategy's ``m``: every order of the replay gives each its own rows."""
    import numpy as np

    from qmtl.runtime.sdk import Node, Strategy, StreamInput

    price = StreamInput(interval=60, period=5, name="p")

    def strategy(period: int, name: str):
        class S(Strategy):
            def setup(self):
                m = Node(input=price, compute_fn=lambda v: v[price][60]["close"].pct_change(), period=period,
                         name="m")
                down = Node(input=m, compute_fn=lambda v: v[m][60].cumsum(), period=3, name="down")
                self.add_nodes([price, m, down])
        S.__name__ = S.__qualname__ = name
        return qmtl.compile(S)

    rng = np.random.default_rng(0)
    close = 100 + rng.standard_normal(600).cumsum()
    bars = pd.DataFrame({"ts": np.arange(600) * 60, "open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0})
    a, b = strategy(5, "MinA"), strategy(50, "MinB")
    alone = {"MinA": a.run(bars), "MinB": b.run(bars)}
    for order in ([a, b], [b, a]):
        together = qmtl.replay(order, bars)
        for name, result in alone.items():
            for node in result.outputs:
                pd.testing.assert_frame_equal(together[name][node], result[node], check_exact=True)


def test_random_pairs_of_strategies_replay_as_they_run_alone():
    """Random multi-node modules (two clocks, gaps, opaque nodes), replayed in pairs: each member's
    outputs equal its own run, bit for bit."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from qmtl.compiler.compiled import CompiledStrategy
    from tests.codegen.test_dags_random_multi_node import _data, dags, window_mean

    @settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
              phases=[Phase.explicit, Phase.generate])
    @given(first=dags(), second=dags(), seed=st.integers(0, 500))
    def check(first, second, seed):
        data = _data(seed, 0.7)
        a = CompiledStrategy("A", first, functions={"mean": window_mean})
        b = CompiledStrategy("B", second, functions={"mean": window_mean})
        together = qmtl.replay([a, b], data)
        for c in (a, b):
            alone = c.run(data)
            for node in alone.outputs:
                pd.testing.assert_frame_equal(together[c.name][node], alone[node], check_exact=True)

    check()
