"""required_periods: longest look-back path + 1, counted inside each output's window."""

from __future__ import annotations

from hypothesis import given

from qmtl.ir.lookback import longest_path, op_lookback, required_periods
from qmtl.ir.module import Op
from qmtl.ir.ops import REGISTRY
from qmtl.ir.parser import parse_module
from tests.ir.gen import BUILDERS, SOURCES, modules


def module(*lines: str, outputs: tuple[str, ...] = ()):
    outs = [f"output @{name} = %{value} {{interval = 60, period = 1}}" for name, value in
            (o.split("=") for o in outputs)]
    return parse_module("module @t {\n" + "\n".join(list(lines) + outs) + "\n}")


PRICE = "%p = stream_input() {interval = 60} : bars"
CLOSE = '%c = column(%p) {name = "close"} : series<f64>'


def test_sources_need_one_bar_and_a_chain_sums_its_look_backs():
    m = module(PRICE, CLOSE, "%m = pct_change(%c) {periods = 1} : series<f64>",
               "%r = rolling_mean(%m) {window = 5} : series<f64>")
    assert required_periods(m) == {"p": 1, "c": 1, "m": 2, "r": 6}
    assert longest_path(m, "r") == ["p", "c", "m", "r"]


def test_a_diamond_takes_its_longest_branch():
    m = module(PRICE, CLOSE, "%a = rolling_max(%c) {window = 10} : series<f64>",
               "%b = shift(%c) {periods = 3} : series<f64>", "%d = sub(%a, %b) : series<f64>",
               "%e = ema(%d) {period = 4} : series<f64>")
    assert required_periods(m)["e"] == 10 + 3
    assert longest_path(m, "e") == ["p", "c", "a", "d", "e"]


def test_a_path_stops_at_another_outputs_value():
    lines = (PRICE, CLOSE, "%a = rolling_mean(%c) {window = 20} : series<f64>",
             "%b = diff(%a) {periods = 2} : series<f64>")
    alone = module(*lines, outputs=("sig=b",))
    split = module(*lines, outputs=("sig=b", "avg=a"))
    assert required_periods(alone)["b"] == 22
    # %b's node reads %a's node's values: only its own diff(2) counts inside its window
    assert required_periods(split)["b"] == 3
    assert required_periods(split)["a"] == 20
    assert longest_path(split, "b") == ["a", "b"]


def test_defaults_and_registry_look_backs():
    assert op_lookback(Op("x", "macd", ("c",))) == 26 + 9 - 2
    assert op_lookback(Op("x", "py_call", ("c",), (("code_hash", "h"), ("period", 7)))) == 6
    assert op_lookback(Op("x", "rolling_sum", ("c",))) == 0  # missing window: the verifier reports it
    assert op_lookback(Op("x", "no_such_op")) == 0


def test_broken_modules_do_not_crash_it():
    m = module("%a = neg(%b) : series<f64>", "%b = rolling_mean(%a) {window = 3} : series<f64>")
    assert required_periods(m) == {"a": 1, "b": 3}


@given(modules())
def test_every_value_needs_at_least_its_own_look_back(m):
    need = required_periods(m)
    assert set(need) == {op.result for op in m.ops}
    for op in m.ops:
        assert need[op.result] >= op_lookback(op) + 1


def test_the_generator_covers_every_registered_op():
    # "stored" is made by runs only; a cross-instrument op ("total_cap") needs every instrument of a run
    # at once, which single-key random DAGs cannot hold: tests/runtime/test_total_cap.py covers it
    user_ops = {name for name, d in REGISTRY.items() if not d.internal and d.kind != "cross"}
    assert user_ops == set(BUILDERS) | set(SOURCES)
