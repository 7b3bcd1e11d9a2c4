"""The verifier: one test per diagnostic code, asserting the code and where it points."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qmtl.ir.clocks import clocks
from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.ir.module import Loc, Module, Op, Output
from qmtl.ir.nodeid import with_node_ids
from qmtl.ir.parser import parse_module, parse_module_with_locs
from qmtl.ir.verifier import check, verify
from tests.ir.gen import attr_values, modules, names, types

SRC = "s.py"


def ir(*lines: str, outputs: tuple[str, ...] = ()) -> Module:
    """A module whose i-th op (1-based) carries ``loc("s.py":i:1)``, so tests can name where."""
    body = [f'  {line} loc("{SRC}":{i}:1)' for i, line in enumerate(lines, start=1)]
    return parse_module("module @t {\n" + "\n".join(body + ["  " + o for o in outputs]) + "\n}\n")


def at(line: int) -> Loc:
    return Loc(SRC, line, 1)


def only(diags: list[Diagnostic], code: str) -> list[Diagnostic]:
    return [d for d in diags if d.code == code]


PRICE = "%p = stream_input() {interval = 60} : bars"
CLOSE = '%c = column(%p) {name = "close"} : series<f64>'


def test_a_valid_module_has_no_findings():
    module = ir(PRICE, CLOSE, "%m = pct_change(%c) {periods = 5} : series<f64>",
                '%z = const() {value = 0.0} : scalar<f64>', "%up = gt(%m, %z) : series<bool>",
                outputs=('output @sig = %up {interval = 60, kind = "traced", period = 6}',))
    assert verify(module) == []
    assert verify(with_node_ids(module)) == []
    assert check(module) == []


@given(modules(with_ids=True))
def test_random_valid_modules_verify_clean(module):
    assert verify(module) == []


def test_E101_value_defined_twice_points_at_the_second_definition():
    diags = verify(ir(PRICE, "%p = stream_input() {interval = 60} : bars"))
    assert [(d.code, d.loc) for d in diags] == [("E101", at(2))]
    assert "first definition at s.py:1:1" in diags[0].message


def test_E102_undefined_operand():
    diags = verify(ir(PRICE, "%n = neg(%ghost) : series<f64>"))
    assert [(d.code, d.loc) for d in diags] == [("E102", at(2))]
    assert "%ghost" in diags[0].message


def test_E102_use_before_definition_without_a_cycle():
    diags = verify(ir(PRICE, "%n = neg(%c) : series<f64>", CLOSE))
    assert [(d.code, d.loc) for d in diags] == [("E102", at(2))]
    assert "before its definition (defined at s.py:3:1)" in diags[0].message


def test_E103_cycle_is_reported_once_and_named():
    diags = verify(ir(PRICE, "%a = add(%b, %c) : series<f64>", CLOSE, "%b = neg(%a) : series<f64>"))
    # %c is also read before its definition, but it does not lead back to %a: that is E102, not a cycle
    assert [(d.code, d.loc) for d in diags] == [("E103", at(2)), ("E102", at(2))]
    assert "%a -> %b -> %a" in diags[0].message
    assert "%c before its definition" in diags[1].message


def test_E103_an_op_reading_itself():
    diags = verify(ir(PRICE, "%a = neg(%a) : series<f64>"))
    assert [(d.code, d.loc) for d in diags] == [("E103", at(2))]
    assert "%a -> %a" in diags[0].message


def test_E104_unknown_op():
    diags = verify(ir(PRICE, "%x = frobnicate(%p) : opaque"))
    assert [(d.code, d.loc) for d in diags] == [("E104", at(2))]
    assert "'frobnicate'" in diags[0].message


@pytest.mark.parametrize("line, words", [
    ("%x = add(%c) : series<f64>", "add takes 2 operand(s), got 1"),
    ("%x = where(%c, %c, %c, %c) : series<f64>", "where takes 3 operand(s), got 4"),
    ("%x = make_frame() {columns = []} : frame<>", "at least 1"),
    ('%x = make_frame(%c, %c) {columns = ["a"]} : frame<a: f64>', "1 column name(s) for 2 operand(s)"),
])
def test_E105_operand_count(line, words):
    diags = verify(ir(PRICE, CLOSE, line))
    assert [(d.code, d.loc) for d in diags] == [("E105", at(3))]
    assert words in diags[0].message


def test_E106_operand_kind():
    diags = verify(ir(PRICE, "%r = rolling_mean(%p) {window = 3} : series<f64>"))
    assert [(d.code, d.loc) for d in diags] == [("E106", at(2))]
    assert "operand 1 of rolling_mean must be series, got %p : bars" in diags[0].message


def test_E106_column_missing_from_a_frame():
    diags = verify(ir(PRICE, CLOSE, '%f = make_frame(%c) {columns = ["a"]} : frame<a: f64>',
                      '%x = column(%f) {name = "b"} : series<f64>'))
    assert [(d.code, d.loc) for d in diags] == [("E106", at(4))]
    assert "'b'" in diags[0].message


@pytest.mark.parametrize("attrs, words", [
    ("{}", "missing required attribute 'window'"),
    ("{window = 3, colour = 1}", "unknown attribute 'colour'"),
    ('{window = "3"}', "attribute 'window' must be int, got str"),
    ("{window = true}", "attribute 'window' must be int, got bool"),
    ("{window = 3.0}", "must be int, got float"),
    ("{window = 0}", "attribute 'window' must be at least 1, got 0"),
])
def test_E107_attribute_schema(attrs, words):
    diags = verify(ir(PRICE, CLOSE, f"%r = rolling_mean(%c) {attrs} : series<f64>"))
    assert [(d.code, d.loc) for d in diags] == [("E107", at(3))]
    assert words in diags[0].message


def test_E107_bad_choice_and_repeated_key():
    diags = verify(ir(PRICE, CLOSE, '%x = astype(%c) {dtype = "f32"} : series<f64>'))
    assert [(d.code, d.loc) for d in diags] == [("E107", at(3))]
    assert "must be one of 'f64', 'i64', 'bool', got 'f32'" in diags[0].message
    twice = Op("x", "shift", ("c",), (("periods", 1), ("periods", 2)), ir(CLOSE).ops[0].type, at(9))
    diags = verify(ir(PRICE, CLOSE).with_(ops=ir(PRICE, CLOSE).ops + (twice,)))
    assert [(d.code, d.loc) for d in diags] == [("E107", at(9))]
    assert "'periods' given twice" in diags[0].message


def test_E108_printed_id_differs_from_the_recomputed_one():
    module = with_node_ids(ir(PRICE, CLOSE, "%n = neg(%c) : series<f64>"))
    wrong = module.ops[1].with_(node_id="blake3:" + "0" * 64)
    broken = module.with_(ops=(module.ops[0], wrong, module.ops[2]))
    diags = verify(broken)
    assert [(d.code, d.loc) for d in diags] == [("E108", at(2))]
    assert module.ops[1].node_id in diags[0].message
    assert verify(broken, check_ids=False) == []


def test_E108_is_not_checked_downstream_of_a_broken_op():
    module = with_node_ids(ir(PRICE, CLOSE, "%n = neg(%c) : series<f64>"))
    ops = list(module.ops)
    ops[1] = ops[1].with_(attrs=())  # column without its name: E107, and nothing to hash
    diags = verify(module.with_(ops=tuple(ops)))
    assert [(d.code, d.loc) for d in diags] == [("E107", at(2))]


def test_E109_output_period_shorter_than_look_back():
    module = ir(PRICE, CLOSE, "%m = pct_change(%c) {periods = 1} : series<f64>",
                "%r = rolling_mean(%m) {window = 5} : series<f64>",
                outputs=('output @sig = %r {interval = 60, kind = "traced", period = 5}',))
    diags = verify(module)
    assert [(d.code, d.loc) for d in diags] == [("E109", at(4))]
    assert "declares period 5 but needs 6 bars" in diags[0].message
    assert "%p -> %c -> %m -> %r" in diags[0].message


def test_mixing_clocks_is_legal_and_ticks_on_the_fastest():
    """docs/design.md "Clocks and joins": a slower operand is read as of its last closed bar."""
    module = ir(PRICE, CLOSE, "%q = stream_input() {interval = 300} : bars",
                '%d = column(%q) {name = "close"} : series<f64>', "%s = sub(%c, %d) : series<f64>")
    assert verify(module) == []
    assert clocks(module)["s"] == 60


def test_E111_non_deterministic_opaque_function():
    diags = verify(ir(PRICE, '%o = py_call(%p) {code_hash = "h", deterministic = false, fn = "signal", '
                             'period = 3, reason = "reads random.random"} : opaque'))
    assert [(d.code, d.loc) for d in diags] == [("E111", at(2))]
    assert "'signal' is not deterministic: reads random.random" in diags[0].message


def test_E112_bad_outputs_point_at_the_output_line_in_text():
    text = ("module @t {\n  %p = stream_input() {interval = 60} : bars\n"
            '  output @a = %nowhere {interval = 60, kind = "traced", period = 1}\n'
            '  output @b = %p {interval = 60, kind = "traced", period = 1}\n'
            '  output @b = %p {interval = 60, kind = "traced", period = 1}\n'
            '  output @c = %p {interval = 60, kind = "magic", period = 1}\n}\n')
    module, text_locs = parse_module_with_locs(text, "t.qir")
    diags = verify(module, text_locs=text_locs)
    assert [(d.code, d.loc) for d in diags] == [("E112", Loc("t.qir", 3, 3)), ("E112", Loc("t.qir", 5, 3)),
                                                ("E112", Loc("t.qir", 6, 3))]
    assert "undefined value %nowhere" in diags[0].message
    assert "@b is declared twice" in diags[1].message
    assert "kind 'magic'" in diags[2].message


def test_E113_printed_type_differs_from_the_inferred_one():
    diags = verify(ir(PRICE, CLOSE, "%g = gt(%c, %c) : series<f64>"))
    assert [(d.code, d.loc) for d in diags] == [("E113", at(3))]
    assert "printed as series<f64> but gt gives series<bool>" in diags[0].message


def test_check_raises_with_every_error():
    with pytest.raises(CompileError) as err:
        check(ir(PRICE, "%x = frobnicate() : bars", "%y = neg(%ghost) : series<f64>"))
    assert [d.code for d in err.value.diagnostics] == ["E104", "E102"]


# --- the verifier never raises -------------------------------------------------------------------------

@st.composite
def damaged_modules(draw) -> Module:
    """A valid module with one to three random breakages at the data-structure level."""
    module = draw(modules(with_ids=draw(st.booleans())))
    ops = list(module.ops)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(ops) - 1))
        how = draw(st.sampled_from(("drop", "rename", "attrs", "type", "move", "operands", "name")))
        if how == "drop" and len(ops) > 1:
            ops.pop(i)
        elif how == "rename":
            ops[i] = ops[i].with_(result=draw(st.sampled_from([op.result for op in ops])))
        elif how == "attrs":
            key = draw(st.one_of(st.sampled_from([k for k, _ in ops[i].attrs] or ["x"]), names))
            ops[i] = ops[i].with_(attrs=ops[i].attrs + ((key, draw(attr_values())),))
        elif how == "type":
            ops[i] = ops[i].with_(type=draw(types()))
        elif how == "move":
            ops.insert(draw(st.integers(0, len(ops) - 1)), ops.pop(i))
        elif how == "operands":
            pool = [op.result for op in ops] + ["ghost"]
            ops[i] = ops[i].with_(operands=tuple(draw(st.lists(st.sampled_from(pool), max_size=4))))
        else:
            ops[i] = ops[i].with_(name=draw(st.sampled_from(["add", "column", "py_call", "nope", "macd"])))
    return module.with_(ops=tuple(ops))


@given(damaged_modules())
def test_verifier_never_raises_on_damaged_modules(module):
    diags = verify(module)
    assert all(isinstance(d, Diagnostic) and d.code.startswith("E") for d in diags)
