"""dce: unreachable ops go; the ones the user wrote are reported as W201 with their location."""

from __future__ import annotations

from pass_helpers import Builder, run_pass

from qmtl.compiler.passes import dce
from qmtl.ir.verifier import verify


def test_unused_user_value_is_removed_with_a_warning_naming_it():
    b = Builder()
    x = b.close(b.source())
    b.op("rolling_mean", x, window=5, result="mom.4", line=14)
    b.output("o", b.op("pct_change", x, result="r"), period=2)
    m, ctx = run_pass(dce.run, b.module())
    assert "mom.4" not in m.op_map()
    [diag] = ctx.diagnostics
    assert diag.code == "W201" and diag.severity == "warning"
    assert diag.message == ("value %mom.4 = rolling_mean(%v1) at momentum.py:14 is never used; "
                            "removed")
    assert diag.loc.file == "momentum.py" and diag.loc.line == 14
    assert diag.format().startswith("momentum.py:14:0: warning[W201]: value %mom.4")
    assert verify(m) == []


def test_compiler_made_ops_without_location_go_silently():
    b = Builder()
    x = b.close(b.source())
    b.op("neg", x, result="tmp")
    b.output("o", x, period=1)
    m, ctx = run_pass(dce.run, b.module())
    assert "tmp" not in m.op_map() and ctx.diagnostics == []


def test_everything_reachable_stays_including_shared_and_deep_chains():
    b = Builder()
    src = b.source()
    x = b.close(src)
    h = b.close(src, field="high")
    lo = b.close(src, field="low")
    a = b.op("atr", h, lo, x, period=3)
    m1 = b.op("rolling_mean", x, window=3)
    b.output("o", b.op("div", a, m1), period=10)
    before = b.module()
    m, ctx = run_pass(dce.run, before)
    assert m == before and ctx.diagnostics == []


def test_dead_chain_reports_every_user_op_in_module_order():
    b = Builder()
    x = b.close(b.source())
    d1 = b.op("diff", x, result="d1", line=3)
    b.op("abs", d1, result="d2", line=4)
    b.output("o", x, period=1)
    m, ctx = run_pass(dce.run, b.module())
    assert [d.message.split(" = ")[0] for d in ctx.diagnostics] == ["value %d1", "value %d2"]
    assert [op.result for op in m.ops] == ["bars", "v1"]


def test_dce_is_idempotent():
    b = Builder()
    x = b.close(b.source())
    b.op("neg", x, line=2)
    b.output("o", x, period=1)
    once, ctx1 = run_pass(dce.run, b.module())
    twice, ctx2 = run_pass(dce.run, once)
    assert once == twice and len(ctx1.diagnostics) == 1 and ctx2.diagnostics == []
