"""fold_constants: all-const element-wise ops become one const, computed by the registry reference."""

from __future__ import annotations

import math

import pytest

from pass_helpers import Builder, assert_same_values, evaluate, random_bars, run_pass

from qmtl.compiler.passes import fold
from qmtl.ir.types import scalar


def _folded(builder: Builder, value: str):
    m, ctx = run_pass(fold.run, builder.module())
    return m, m.op_map()[value], ctx


def test_arithmetic_of_constants_folds_and_drops_the_operands():
    b = Builder()
    x = b.close(b.source())
    k = b.op("mul", b.const(2.0, result="two"), b.const(0.5, result="half"), result="k")
    b.output("o", b.op("add", x, k, result="out"), period=1)
    m, op, ctx = _folded(b, "k")
    assert op.name == "const" and op.operands == () and op.attr_dict == {"value": 1.0, "dtype": "f64"}
    assert op.type == scalar("f64")
    assert "two" not in m.op_map() and "half" not in m.op_map()  # used, so dropped silently
    assert ctx.diagnostics == []


def test_chains_fold_and_keep_the_result_dtype():
    b = Builder()
    i = b.op("add", b.const(2, dtype="i64"), b.const(3, dtype="i64"), result="i")
    f = b.op("div", i, b.const(2, dtype="i64"), result="f")
    g = b.op("gt", f, b.const(2.0), result="g")
    c = b.op("astype", g, dtype="i64", result="c")
    for value in (i, f, g, c):
        b.output(value, value, period=1)
    m, _, _ = _folded(b, "c")
    ops = m.op_map()
    assert ops["i"].attr_dict == {"value": 5, "dtype": "i64"} and type(ops["i"].attr("value")) is int
    assert ops["f"].attr_dict == {"value": 2.5, "dtype": "f64"}
    assert ops["g"].attr_dict == {"value": True, "dtype": "bool"}
    assert ops["c"].attr_dict == {"value": 1, "dtype": "i64"}
    assert sorted(op.result for op in m.ops) == ["c", "f", "g", "i"]


def test_integer_arithmetic_wraps_like_the_arrays_do():
    b = Builder()
    big = b.op("add", b.const(2 ** 62, dtype="i64"), b.const(2 ** 62, dtype="i64"), result="big")
    b.output("o", big, period=1)
    _, op, _ = _folded(b, "big")
    assert op.attr("value") == -(2 ** 63)


def test_division_by_zero_folds_to_inf_and_nan_like_the_reference():
    b = Builder()
    inf = b.op("div", b.const(1.0), b.const(0.0), result="inf")
    nan = b.op("div", b.const(0.0), b.const(0.0), result="nan")
    b.output("a", inf, period=1)
    b.output("b", nan, period=1)
    m, _ = run_pass(fold.run, b.module())
    assert m.op_map()["inf"].attr("value") == math.inf
    assert math.isnan(m.op_map()["nan"].attr("value"))


def test_negative_zero_result_is_not_folded():
    b = Builder()
    z = b.op("neg", b.const(0.0), result="z")
    b.output("o", b.op("div", b.const(1.0), z, result="r"), period=1)
    m, _ = run_pass(fold.run, b.module())
    assert m.op_map()["z"].name == "neg"
    assert m.op_map()["r"].name == "div"


def test_astype_of_nan_to_int_is_left_for_the_runtime_error():
    b = Builder()
    nan = b.const(float("nan"), result="nan")
    b.output("o", b.op("astype", nan, dtype="i64", result="cast"), period=1)
    m, _ = run_pass(fold.run, b.module())
    assert m.op_map()["cast"].name == "astype"


@pytest.mark.parametrize("opname,attrs,args,expected", [
    ("clip", {"lower": 0.0, "upper": 1.0}, (5.0,), 1.0),
    ("fillna", {"value": 7.0}, (float("nan"),), 7.0),
    ("sqrt", {}, (9.0,), 3.0),
    ("maximum", {}, (1.0, 2.0), 2.0),
    ("pow", {}, (2.0, 10.0), 1024.0),
    ("sign", {}, (-3.0,), -1.0),
])
def test_unary_and_binary_ops_with_attrs_fold(opname, attrs, args, expected):
    b = Builder()
    consts = [b.const(a) for a in args]
    b.output("o", b.op(opname, *consts, result="r", **attrs), period=1)
    m, _ = run_pass(fold.run, b.module())
    assert m.op_map()["r"].attr_dict == {"value": expected, "dtype": "f64"}


def test_where_of_constants_folds():
    b = Builder()
    r = b.op("where", b.const(False, dtype="bool"), b.const(1, dtype="i64"), b.const(2, dtype="i64"),
             result="r")
    b.output("o", r, period=1)
    m, _ = run_pass(fold.run, b.module())
    assert m.op_map()["r"].attr_dict == {"value": 2, "dtype": "i64"}


def test_nothing_that_reads_a_series_is_folded():
    b = Builder()
    x = b.close(b.source())
    r = b.op("add", x, b.const(1.0), result="r")
    s = b.op("rolling_mean", r, window=3, result="s")
    b.output("o", s, period=3)
    before = b.module()
    m, _ = run_pass(fold.run, before)
    assert m == before


def test_folding_does_not_change_values():
    b = Builder()
    x = b.close(b.source())
    k = b.op("sub", b.const(3.0), b.op("mul", b.const(0.1), b.const(3.0)))
    scaled = b.op("mul", b.op("sub", x, k), b.op("exp", b.const(0.5)))
    flag = b.op("and", b.op("gt", scaled, b.const(0.0)), b.op("not", b.const(False, dtype="bool")))
    b.output("o", b.op("where", flag, scaled, b.op("neg", b.const(1, dtype="i64"))), period=1)
    before = b.module()
    m, _ = run_pass(fold.run, before)
    assert sum(op.name == "const" for op in m.ops) < sum(op.name == "const" for op in before.ops)
    assert not any(op.name in ("exp", "not") for op in m.ops)
    bars = random_bars(40, seed=3)
    assert_same_values(evaluate(before, bars), evaluate(m, bars))


def test_fold_is_idempotent():
    b = Builder()
    x = b.close(b.source())
    b.output("o", b.op("add", x, b.op("add", b.const(1.0), b.const(2.0))), period=1)
    once, _ = run_pass(fold.run, b.module())
    twice, _ = run_pass(fold.run, once)
    assert once == twice


def test_a_const_still_read_by_dead_user_code_is_kept_for_dce_to_report():
    b = Builder()
    x = b.close(b.source())
    k = b.const(0, dtype="i64", result="k")
    b.output("o", b.op("abs", k, result="folded"), period=1)
    b.op("add", x, k, result="unused", line=12)
    m, _ = run_pass(fold.run, b.module())
    assert "k" in m.op_map() and m.op_map()["unused"].operands == (x, "k")
    assert m.op_map()["folded"].attr_dict == {"value": 0, "dtype": "i64"}
