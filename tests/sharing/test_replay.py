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
