"""canonicalize: defaults, number spelling, tags, commutative order, exact algebraic identities."""

from __future__ import annotations

import math

from pass_helpers import Builder, assert_same_values, evaluate, random_bars, run_pass

from qmtl.compiler.passes import canonicalize
from qmtl.ir.nodeid import node_ids


def _single(module, name):
    return module.op_map()[name]


def test_fills_registry_defaults_so_implicit_and_explicit_defaults_are_one_op():
    a, b = Builder(), Builder()
    for builder, attrs in ((a, {}), (b, {"periods": 1})):
        x = builder.close(builder.source())
        builder.output("out", builder.op("pct_change", x, result="pc", **attrs), period=5)
    ma, _ = run_pass(canonicalize.run, a.module())
    mb, _ = run_pass(canonicalize.run, b.module())
    assert _single(ma, "pc").attrs == (("periods", 1),)
    assert ma == mb
    assert node_ids(ma)["pc"] == node_ids(mb)["pc"]


def test_float_attrs_become_floats_and_int_attrs_stay_ints():
    b = Builder()
    x = b.close(b.source())
    e = b.op("ewm_mean", x, alpha=1, period=10, result="e")
    c = b.op("clip", e, lower=-1, upper=2, result="c")
    f = b.op("fillna", c, value=0, result="f")
    k = b.const(3, dtype="f64", result="k")
    z = b.const(-0.0, dtype="f64", result="z")
    i = b.const(2.0, dtype="i64", result="i")
    flag = b.const(1, dtype="bool", result="flag")
    s = b.op("add", f, k)
    s = b.op("add", s, z)
    s = b.op("add", s, i)
    b.output("o", b.op("where", flag, s, f), period=20)
    m, ctx = run_pass(canonicalize.run, b.module())
    assert ctx.diagnostics == []
    attrs = {op.result: op.attr_dict for op in m.ops}
    assert attrs["e"] == {"alpha": 1.0, "adjust": True, "period": 10}
    assert type(attrs["e"]["alpha"]) is float and type(attrs["e"]["period"]) is int
    assert attrs["c"] == {"lower": -1.0, "upper": 2.0} and type(attrs["c"]["lower"]) is float
    assert type(attrs["f"]["value"]) is float
    assert type(attrs["k"]["value"]) is float and attrs["k"]["value"] == 3.0
    assert math.copysign(1.0, attrs["z"]["value"]) == 1.0
    assert attrs["i"]["value"] == 2 and type(attrs["i"]["value"]) is int
    assert attrs["flag"]["value"] is True


def test_int_attr_given_as_integral_float_becomes_int():
    b = Builder()
    x = b.close(b.source())
    b.output("o", b.op("rolling_mean", x, window=5.0, result="r"), period=5)
    m, ctx = run_pass(canonicalize.run, b.module())
    assert _single(m, "r").attr("window") == 5 and type(_single(m, "r").attr("window")) is int
    assert ctx.diagnostics == []


def test_tags_sorted_and_deduplicated():
    a, b = Builder(), Builder()
    a.output("o", a.close(a.source(tags=("price", "BTC", "price"))), period=1)
    b.output("o", b.close(b.source(tags=("BTC", "price"))), period=1)
    ma, _ = run_pass(canonicalize.run, a.module())
    mb, _ = run_pass(canonicalize.run, b.module())
    assert _single(ma, "bars").attr("tags") == ("BTC", "price")
    assert ma == mb


def test_interval_duration_strings_convert_to_seconds():
    b = Builder()
    b.output("o", b.close(b.source(interval="1m")), period=1)
    m, ctx = run_pass(canonicalize.run, b.module())
    assert _single(m, "bars").attr("interval") == 60
    assert ctx.diagnostics == []


def test_bad_interval_is_reported_with_the_field_and_location():
    b = Builder()
    b.output("o", b.close(b.source(interval="soon", line=7)), period=1)
    m, ctx = run_pass(canonicalize.run, b.module())
    [diag] = ctx.diagnostics
    assert diag.code == "E107" and diag.severity == "error"
    assert "'interval'" in diag.message and "'soon'" in diag.message
    assert diag.loc.file == "momentum.py" and diag.loc.line == 7
    assert _single(m, "bars").attr("interval") == "soon"  # left for the verifier, not guessed


def test_commutative_operands_are_ordered_by_structure_not_by_name():
    def build(first: str, names: tuple[str, str]):
        b = Builder()
        x = b.close(b.source())
        fast = b.op("rolling_mean", x, window=3, result=names[0])
        slow = b.op("rolling_mean", x, window=10, result=names[1])
        pair = (fast, slow) if first == "fast" else (slow, fast)
        b.output("o", b.op("add", *pair, result="sum"), period=20)
        b.output("p", b.op("sub", *pair, result="diff"), period=20)
        return run_pass(canonicalize.run, b.module())[0]

    m1, m2 = build("fast", ("a", "b")), build("slow", ("a", "b"))
    m3 = build("slow", ("zz", "aa"))  # renamed values: same structural order
    key = {"a": 3, "b": 10, "zz": 3, "aa": 10}
    assert [key[s] for s in _single(m1, "sum").operands] == [key[s] for s in _single(m2, "sum").operands]
    assert [key[s] for s in _single(m3, "sum").operands] == [key[s] for s in _single(m1, "sum").operands]
    # operand order of non-commutative ops is semantic and kept
    assert [key[s] for s in _single(m1, "diff").operands] == [3, 10]
    assert [key[s] for s in _single(m2, "diff").operands] == [10, 3]


def test_column_of_make_frame_is_the_column_operand():
    b = Builder()
    x = b.close(b.source())
    fast = b.op("rolling_mean", x, window=3, result="fast")
    slow = b.op("rolling_mean", x, window=10, result="slow")
    frame = b.op("make_frame", fast, slow, columns=("f", "s"), result="frame")
    picked = b.op("column", frame, name="s", result="picked")
    b.output("o", b.op("neg", picked, result="out"), period=20)
    before = b.module()
    m, ctx = run_pass(canonicalize.run, before)
    assert _single(m, "out").operands == ("slow",)
    # the frame and the column were used, so they go silently (no W201 later): they are not in m
    assert "frame" not in m.op_map() and "picked" not in m.op_map() and "fast" not in m.op_map()
    assert ctx.diagnostics == []
    bars = random_bars(50, seed=1)
    assert_same_values(evaluate(before, bars), evaluate(m, bars))


def test_identities_do_not_cross_an_output_boundary():
    b = Builder()
    x = b.close(b.source())
    frame = b.op("make_frame", x, columns=("c",), result="frame")
    b.output("upstream", frame, period=1)
    b.output("downstream", b.op("column", frame, name="c", result="col"), period=1)
    m, _ = run_pass(canonicalize.run, b.module())
    assert _single(m, "col").operands == ("frame",)


def test_exact_unary_identities():
    b = Builder()
    x = b.close(b.source())
    n2 = b.op("neg", b.op("neg", x), result="n2")
    a2 = b.op("abs", b.op("abs", n2, result="a1"), result="a2")
    same = b.op("astype", a2, dtype="f64", result="same")
    flag = b.op("gt", same, b.const(100.0))
    nn = b.op("not", b.op("not", flag), result="nn")
    b.output("o", b.op("where", nn, same, x, result="out"), period=1)
    before = b.module()
    m, _ = run_pass(canonicalize.run, before)
    out = _single(m, "out")
    assert out.operands[1] == "a1"  # astype(f64) of f64 → a1, abs(abs) → a1
    assert _single(m, out.operands[0]).name == "gt"
    assert _single(m, "a1").operands == (x,)  # neg(neg(x)) → x
    bars = random_bars(60, seed=2)
    assert_same_values(evaluate(before, bars), evaluate(m, bars))


def test_sub_of_const_and_astype_changing_dtype_are_kept():
    b = Builder()
    x = b.close(b.source())
    d = b.op("sub", x, b.const(1.0), result="d")
    b.output("o", b.op("astype", d, dtype="i64", result="cast"), period=1)
    m, _ = run_pass(canonicalize.run, b.module())
    assert _single(m, "d").name == "sub" and _single(m, "cast").name == "astype"


def test_canonicalize_is_idempotent_on_these_modules():
    b = Builder()
    x = b.close(b.source(tags=("b", "a", "a")))
    y = b.op("add", b.const(2, dtype="f64"), x)
    b.output("o", b.op("pct_change", y), period=3)
    once, _ = run_pass(canonicalize.run, b.module())
    twice, _ = run_pass(canonicalize.run, once)
    assert once == twice


def test_unknown_op_passes_through_untouched():
    from qmtl.ir.module import Op
    b = Builder()
    x = b.close(b.source())
    module = b.module()
    weird = Op("w", "frobnicate", (x,), (("k", 1),))
    module = module.with_(ops=module.ops + (weird,), outputs=(module.outputs + ()))
    m, ctx = run_pass(canonicalize.run, module)
    assert m.op_map()["w"] == weird
