"""The IR text form: exact printed spelling, parse(print(m)) == m, print(parse(t)) == t, E001 errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qmtl.ir.module import Loc, Module, Op, Output, make_attrs
from qmtl.ir.parser import IRSyntaxError, parse_module, parse_module_with_locs, parse_type
from qmtl.ir.printer import print_module, print_type, print_value
from qmtl.ir.types import BARS, BOOL, F64, Type, frame, scalar
from tests.ir.gen import attr_values, locs, modules, names, types

HASH = "blake3:" + "4f0c" * 16

MOMENTUM = f"""\
module @Momentum {{
  %price = stream_input() {{interval = 60, tags = ["BTC", "price"]}} : bars loc("examples/momentum.py":9:8) id {HASH}
  %close = column(%price) {{name = "close"}} : series<f64> loc("examples/momentum.py":12:16)
  %mom = pct_change(%close) {{periods = 5}} : series<f64>
  %c0 = const() {{dtype = "f64", value = 0.0}} : scalar<f64>
  %up = gt(%mom, %c0) : series<bool> loc("examples/momentum.py":14:17)
  output @momentum_signal = %up {{interval = 60, kind = "traced", period = 30}}
}}
"""


def momentum_module() -> Module:
    src = "examples/momentum.py"
    ops = (
        Op("price", "stream_input", (), make_attrs({"interval": 60, "tags": ["BTC", "price"]}), BARS,
           Loc(src, 9, 8), HASH),
        Op("close", "column", ("price",), make_attrs({"name": "close"}), F64, Loc(src, 12, 16)),
        Op("mom", "pct_change", ("close",), make_attrs({"periods": 5}), F64),
        Op("c0", "const", (), make_attrs({"value": 0.0, "dtype": "f64"}), scalar("f64")),
        Op("up", "gt", ("mom", "c0"), (), BOOL, Loc(src, 14, 17)),
    )
    return Module("Momentum", ops, (Output("momentum_signal", "up", 30, 60),))


# --- printing ---------------------------------------------------------------------------------------

def test_prints_the_documented_form_exactly():
    assert print_module(momentum_module()) == MOMENTUM


def test_parses_the_documented_form_into_the_same_module():
    assert parse_module(MOMENTUM) == momentum_module()


@pytest.mark.parametrize("value, text", [
    (5, "5"), (-3, "-3"), (0.0, "0.0"), (1e-08, "1e-08"), (2.5e20, "2.5e+20"), (float("inf"), "inf"),
    (float("-inf"), "-inf"), (float("nan"), "nan"), (True, "true"), (False, "false"), (None, "none"),
    ("a\"b\n", '"a\\"b\\n"'), ((), "[]"), ((1, (2.0, "x")), '[1, [2.0, "x"]]'),
])
def test_attr_value_spelling(value, text):
    assert print_value(value) == text


def test_int_and_float_stay_distinct_through_the_text():
    module = Module("m", (Op("c", "const", (), make_attrs({"value": 1}), scalar("f64")),
                          Op("d", "const", (), make_attrs({"value": 1.0}), scalar("f64"))))
    back = parse_module(print_module(module))
    assert [type(op.attr("value")) for op in back.ops] == [int, float]


def test_nan_survives_the_round_trip():
    module = Module("m", (Op("c", "const", (), make_attrs({"value": float("nan")}), scalar("f64")),))
    text = print_module(module)
    assert "value = nan" in text
    assert math.isnan(parse_module(text).ops[0].attr("value"))
    assert print_module(parse_module(text)) == text


def test_non_identifier_names_are_quoted():
    module = Module("my strategy", (Op("0", "odd op", (), make_attrs({"a key": 1}), frame({"a b": "f64"})),),
                    (Output("my node", "0", 1, 60, "opaque", "it iterates"),))
    text = print_module(module)
    assert text.splitlines() == [
        'module @"my strategy" {',
        '  %"0" = "odd op"() {"a key" = 1} : frame<"a b": f64>',
        '  output @"my node" = %"0" {interval = 60, kind = "opaque", period = 1, reason = "it iterates"}',
        "}",
    ]
    assert parse_module(text) == module


def test_broken_modules_print_and_parse_back():
    # undefined operand, unknown op, wrong type, duplicate value: lint must be able to read all of it
    ops = (Op("a", "no_such_op", ("ghost",), (), BOOL), Op("a", "add", ("a", "a", "a"), (), BARS))
    module = Module("broken", ops, (Output("o", "missing", 0, 0), Output("o", "a", 1, 1)))
    assert parse_module(print_module(module)) == module


def test_unprintable_attr_value_is_a_clear_error():
    module = Module("m", (Op("c", "const", (), (("value", object()),), scalar("f64")),))
    with pytest.raises(TypeError, match="no IR spelling"):
        print_module(module)


# --- round trips --------------------------------------------------------------------------------------

@given(modules())
def test_parse_inverts_print(module):
    assert parse_module(print_module(module)) == module


@given(modules(with_ids=True, with_locs=True))
def test_parse_inverts_print_with_ids_and_locs(module):
    assert parse_module(print_module(module)) == module


@given(modules(with_ids=True))
def test_print_inverts_parse_on_canonical_text(module):
    text = print_module(module)
    assert print_module(parse_module(text)) == text


op_strategy = st.builds(
    Op, names, names, st.lists(names, max_size=3).map(tuple),
    st.dictionaries(names, attr_values(), max_size=4).map(make_attrs), types(),
    st.one_of(st.none(), locs()), st.one_of(st.none(), st.just(HASH), st.text(max_size=10)))
output_strategy = st.builds(Output, names, names, st.integers(-5, 500), st.integers(0, 10 ** 6),
                            st.sampled_from(("traced", "opaque")), st.text(max_size=10))


@given(st.builds(Module, names, st.lists(op_strategy, max_size=5).map(tuple),
                 st.lists(output_strategy, max_size=3).map(tuple)))
def test_round_trip_of_arbitrary_even_invalid_modules(module):
    assert parse_module(print_module(module)) == module


@given(types())
def test_type_spelling_round_trips(t):
    assert parse_type(print_type(t)) == t


def test_parse_type_examples():
    assert parse_type("bars") == BARS
    assert parse_type("scalar<bool>") == Type("scalar", "bool")
    assert parse_type("frame<a: f64, b: i64>") == frame({"a": "f64", "b": "i64"})
    with pytest.raises(IRSyntaxError) as err:
        parse_type("series<f32>", "t.ir")
    assert err.value.loc == Loc("t.ir", 1, 8)


# --- leniency: comments, whitespace, keywords used as names -----------------------------------------

def test_comments_and_layout_are_ignored():
    noisy = MOMENTUM.replace("{\n", "{ // header\n", 1).replace("  %mom", "// a full-line comment\n  %mom")
    squashed = " ".join(MOMENTUM.split())
    assert parse_module(noisy) == parse_module(squashed) == momentum_module()


def test_url_inside_a_string_is_not_a_comment():
    module = parse_module('module @m { %a = stream_input() {interval = 1, tags = ["http://x"]} : bars }')
    assert module.ops[0].attr("tags") == ("http://x",)


def test_keywords_can_be_names():
    text = ('module @module {\n  %id = loc() {id = 1, loc = 2, none = 3, true = 4} : bars\n'
            '  %output = output(%id) : opaque\n  output @output = %output {interval = 1, kind = "traced",'
            ' period = 1}\n}\n')
    module = parse_module(text)
    assert [op.name for op in module.ops] == ["loc", "output"]
    assert module.ops[0].attrs == (("id", 1), ("loc", 2), ("none", 3), ("true", 4))
    assert print_module(module) == text


def test_attrs_are_stored_sorted_and_output_kind_defaults_to_traced():
    module = parse_module("module @m { %a = f() {z = 1, a = 2} : bars output @o = %a {period = 3, interval = 9} }")
    assert module.ops[0].attrs == (("a", 2), ("z", 1))
    assert module.outputs == (Output("o", "a", 3, 9, "traced", ""),)


def test_text_locs_point_at_each_definition():
    module, at = parse_module_with_locs(MOMENTUM, "m.qir")
    assert at.ops[0] == Loc("m.qir", 2, 3) and at.ops[4] == Loc("m.qir", 6, 3)
    assert at.outputs == (Loc("m.qir", 7, 3),)
    assert len(at.ops) == len(module.ops)


# --- syntax errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, col, words", [
    ("module @m {\n  %a = add(%b :", 2, 15, ["expected one of ')', ','", "%a = add(%b", "got ':'"]),
    ("", 1, 1, ["expected 'module'", "end of input"]),
    ("module @m { %a = f() : bars } trailing", 1, 31, ["end of input", "got 'trailing'"]),
    ("module @m {\n %a = f() : bars $\n}", 2, 18, ["got '$'"]),
    ("module @m {\n %a = f() : series<f32>\n}", 2, 20, ["series needs a dtype", "'f32'"]),
    ("module @m {\n %a = f() {k = 1, k = 2} : bars\n}", 2, 19, ["attribute 'k' given twice"]),
    ('module @m {\n %a = f() {k = "\\q"} : bars\n}', 2, 16, ["bad string"]),
    ("module @m {\n output @o = %a {period = 1}\n}", 2, 9, ["output @o", "missing attribute 'interval'"]),
    ("module @m {\n output @o = %a {period = 1, interval = 1, colour = 2}\n}", 2, 9, ["unknown attribute 'colour'"]),
    ("module @m {\n output @o = %a {period = 1.5, interval = 1}\n}", 2, 9, ["'period' must be int"]),
    ("module @m {\n %a = f() : bars loc(\"x\":1:2:3)\n}", 2, 29, ["expected ')'"]),
    ("module @m {\n %a = f(%b,) : bars\n}", 2, 12, ["a value name like %x", "got ')'"]),
    ('module @m {\n %a = f() : bars\n', 3, 1, ["after '%a = f() : bars', got end of input"]),
    ("module @m { %a = f() {k = " + "9" * 5000 + "} : bars }", 1, 27, ["bad integer"]),
])
def test_syntax_errors_say_where_and_what(text, line, col, words):
    with pytest.raises(IRSyntaxError) as err:
        parse_module(text, "bad.qir")
    diag = err.value.diagnostic
    assert diag.code == "E001"
    assert (diag.loc.file, diag.loc.line, diag.loc.col) == ("bad.qir", line, col)
    for word in words:
        assert word in diag.message, diag.message
    assert err.value.diagnostics == [diag]
