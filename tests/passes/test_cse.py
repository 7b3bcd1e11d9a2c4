"""cse: structurally identical ops (NodeID identity) become one; everything else stays apart."""

from __future__ import annotations

from pass_helpers import Builder, assert_same_values, evaluate, random_bars, run_pass

from qmtl.compiler.passes import cse
from qmtl.ir.nodeid import node_ids
from qmtl.ir.verifier import verify


def test_same_rolling_mean_in_two_sdk_nodes_merges_and_uses_are_renamed():
    b = Builder()
    x = b.close(b.source())
    m1 = b.op("rolling_mean", x, window=5, result="mom.4", line=14)
    b.output("a", b.op("gt", m1, b.const(0.0, result="zero_a"), result="sig_a"), period=5)
    m2 = b.op("rolling_mean", x, window=5, result="trend.2", line=30)
    b.output("b", b.op("lt", m2, b.const(0.0, result="zero_b"), result="sig_b"), period=5)
    before = b.module()
    m, ctx = run_pass(cse.run, before)
    ops = m.op_map()
    assert "trend.2" not in ops and "zero_b" not in ops
    assert ops["sig_b"].operands == ("mom.4", "zero_a")
    assert ops["mom.4"].loc.line == 14  # the first definition (and its location) is kept
    assert ctx.diagnostics == []
    assert verify(m) == []
    assert node_ids(m)["sig_b"] == node_ids(before)["sig_b"]
    bars = random_bars(30, seed=4)
    assert_same_values(evaluate(before, bars), evaluate(m, bars))


def test_commutative_ops_merge_across_operand_order():
    b = Builder()
    x = b.close(b.source())
    y = b.close("bars", field="open")
    b.output("a", b.op("mul", x, y, result="xy"), period=1)
    b.output("b", b.op("mul", y, x, result="yx"), period=1)
    m, _ = run_pass(cse.run, b.module())
    assert "yx" not in m.op_map()
    assert [o.value for o in m.outputs] == ["xy", "xy"]  # outputs re-pointed


def test_non_commutative_ops_with_swapped_operands_stay_apart():
    b = Builder()
    x = b.close(b.source())
    y = b.close("bars", field="open")
    b.output("a", b.op("sub", x, y, result="xy"), period=1)
    b.output("b", b.op("sub", y, x, result="yx"), period=1)
    before = b.module()
    m, _ = run_pass(cse.run, before)
    assert m == before


def test_different_attrs_or_clocks_or_tags_never_merge():
    b = Builder()
    x = b.close(b.source())
    b.output("w5", b.op("rolling_mean", x, window=5), period=5)
    b.output("w6", b.op("rolling_mean", x, window=6), period=6)
    b.output("std", b.op("rolling_std", x, window=5), period=5)
    other_clock = b.close(b.source(result="bars5m", interval=300))
    b.output("clock", b.op("rolling_mean", other_clock, window=5), period=5)
    other_tags = b.close(b.source(result="eth", tags=("ETH", "price")))
    b.output("tags", b.op("rolling_mean", other_tags, window=5), period=5)
    before = b.module()
    m, _ = run_pass(cse.run, before)
    assert m == before


def test_identical_sources_merge_and_chains_above_them_follow():
    b = Builder()
    b1 = b.source(result="s1")
    b2 = b.source(result="s2")
    r1 = b.op("pct_change", b.close(b1, result="c1"), result="r1")
    r2 = b.op("pct_change", b.close(b2, result="c2"), result="r2")
    b.output("o", b.op("sub", r1, r2, result="d"), period=2)
    m, _ = run_pass(cse.run, b.module())
    assert [op.result for op in m.ops] == ["s1", "c1", "r1", "d"]
    assert m.op_map()["d"].operands == ("r1", "r1")


def test_opaque_calls_merge_by_code_hash_not_by_display_name():
    b = Builder()
    src = b.source()
    b.output("a", b.op("py_call", src, code_hash="h1", period=10, fn="f", result="p1"), period=10)
    b.output("b", b.op("py_call", src, code_hash="h1", period=10, fn="g", result="p2"), period=10)
    b.output("c", b.op("py_call", src, code_hash="h2", period=10, fn="f", result="p3"), period=10)
    b.output("d", b.op("py_call", src, code_hash="h1", period=20, fn="f", result="p4"), period=20)
    m, _ = run_pass(cse.run, b.module())
    assert [o.value for o in m.outputs] == ["p1", "p1", "p3", "p4"]


def test_cse_is_idempotent():
    b = Builder()
    x = b.close(b.source())
    b.output("a", b.op("rolling_mean", x, window=5), period=5)
    b.output("b", b.op("rolling_mean", x, window=5), period=5)
    once, _ = run_pass(cse.run, b.module())
    twice, _ = run_pass(cse.run, once)
    assert once == twice and len(once.ops) == 3
