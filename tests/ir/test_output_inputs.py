"""Outputs record the inputs their SDK node declared; regions and look-back follow them."""

from __future__ import annotations

import pytest

from qmtl.ir.dag import from_dag, to_dag
from qmtl.ir.lookback import output_required_period
from qmtl.ir.parser import IRSyntaxError, parse_module
from qmtl.ir.printer import print_module
from qmtl.ir.regions import node_regions
from qmtl.ir.verifier import verify

# node @b outputs %d; node @a computes the same diff inside (merged by CSE) and declared only %price
TEXT = """module @m {
  %price = stream_input() {interval = 60, tags = []} : bars
  %c = column(%price) {name = "close"} : series<f64>
  %d = diff(%c) {periods = 1} : series<f64>
  %r = rolling_mean(%d) {window = 5} : series<f64>
  output @price = %price {interval = 60, kind = "source", period = 1}
  output @b = %d {inputs = [%price], interval = 60, kind = "traced", period = 2}
  output @a = %r {inputs = [%price], interval = 60, kind = "traced", period = 6}
}
"""


def test_inputs_print_parse_and_survive_the_dag_round_trip():
    m = parse_module(TEXT)
    assert m.output("a").inputs == ("price",) and m.output("price").inputs == ()
    assert print_module(m) == TEXT
    assert from_dag(to_dag(m)).output("a").inputs == ("price",)
    assert to_dag(m)["outputs"][2]["inputs"] == [to_dag(m)["nodes"][0]["node_id"]]


def test_region_walks_through_another_nodes_output_it_did_not_declare():
    m = parse_module(TEXT)
    a = node_regions(m)["a"]
    assert a.inputs == ("price",)
    assert [op.result for op in a.ops] == ["c", "d", "r"]
    assert output_required_period(m, m.output("a")) == 6  # diff(1) + rolling(5) inside a's window
    short = parse_module(TEXT.replace("period = 6}", "period = 5}"))
    assert [d.code for d in verify(short)] == ["E109"]


def test_declaring_the_node_makes_it_a_boundary():
    m = parse_module(TEXT.replace("%r {inputs = [%price]", "%r {inputs = [%d]").replace("period = 6}", "period = 5}"))
    a = node_regions(m)["a"]
    assert a.inputs == ("d",) and [op.result for op in a.ops] == ["r"]
    assert output_required_period(m, m.output("a")) == 5
    assert verify(m) == []


def test_undefined_input_is_e112_and_bad_syntax_is_e001():
    m = parse_module(TEXT.replace("inputs = [%price], interval = 60, kind = \"traced\", period = 6",
                                  "inputs = [%nope], interval = 60, kind = \"traced\", period = 6"))
    assert any(d.code == "E112" and "%nope" in d.message for d in verify(m))
    with pytest.raises(IRSyntaxError, match="inputs must be a list of value names"):
        parse_module(TEXT.replace("inputs = [%price]", "inputs = [1]", 1))


def test_output_name_names_the_node_of_a_value_or_falls_back_to_the_value():
    m = parse_module(TEXT)
    assert m.output_name("d") == "b" and m.output_name("r") == "a" and m.output_name("price") == "price"
    assert m.output_name("c") == "c"  # inside a node: no output of its own
