"""Values a traced compute function builds but never returns are emitted, so DCE can warn (W201).

The frontend records every series the traced call builds and emits the ones the result does not read
after the node's value; the DCE pass then removes them and warns at the line that built them.  The
live ops — their NodeIDs and their value names — do not move.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import qmtl
from qmtl.ir.diagnostics import errors

from .helpers import one_node

STRATEGY = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Momentum(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval=60, period=30)

        def signal(view):
            x = view[price][60]["close"]
            {unused}
            return (x.pct_change().rolling(5).mean() > 0).astype(float)

        self.add_nodes([price, Node(input=price, compute_fn=signal, name="signal")])
'''
UNUSED_LINE = 11  # the line of ``{unused}`` in the dedented file


def _compile(tmp_path: Path, unused: str, name: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(STRATEGY.format(unused=unused)))
    return qmtl.compile(path), path


def test_unused_rolling_mean_is_removed_with_a_warning_at_its_line(tmp_path):
    compiled, path = _compile(tmp_path, "unused = x.rolling(3).mean()", "with_unused.py")
    [warning] = [d for d in compiled.diagnostics if d.code == "W201"]
    assert warning.severity == "warning"
    assert warning.loc.file == str(path) and warning.loc.line == UNUSED_LINE
    assert "rolling_mean" in warning.message and "never used" in warning.message
    assert not [op for op in compiled.module.ops if op.name == "rolling_mean" and op.attr("window") == 3]


def test_unused_value_does_not_move_the_used_ops(tmp_path):
    with_unused, _ = _compile(tmp_path, "unused = x.rolling(3).mean()", "with_unused.py")
    without, _ = _compile(tmp_path, "pass", "without.py")
    assert with_unused.node_ids == without.node_ids
    assert sorted(n["node_id"] for n in with_unused.dag["nodes"]) == \
        sorted(n["node_id"] for n in without.dag["nodes"])
    assert [op.result for op in with_unused.module.ops] == [op.result for op in without.module.ops]
    assert not [d for d in without.diagnostics if d.code == "W201"]


def test_a_chain_of_unused_values_warns_for_each_computation(tmp_path):
    compiled, _ = _compile(tmp_path, "unused = (x.diff(2) * 3).abs()", "chain.py")
    warned = sorted(d.message.split(" = ")[1].split("(")[0] for d in compiled.diagnostics
                    if d.code == "W201")
    assert warned == ["abs", "const", "diff", "mul"]
    assert all(d.loc.line == UNUSED_LINE for d in compiled.diagnostics if d.code == "W201")


def test_frontend_emits_the_unused_value_after_the_nodes_value():
    def fn(view):
        x = view["price"][60]["close"]
        x.shift(2)
        return x.rolling(5).mean()

    result = one_node(fn)
    names = [op.name for op in result.module.ops]
    assert names == ["stream_input", "column", "rolling_mean", "shift"]
    assert result.module.output("sig").value == result.module.ops[2].result


def test_an_unused_value_that_does_not_type_check_is_skipped_not_an_error():
    def fn(view):
        x = view["price"][60]["close"]
        ~x  # not() of a f64 series: never run, so never wrong
        return x.rolling(5).mean()

    result = one_node(fn)
    assert not errors(result.diagnostics)
    assert [op.name for op in result.module.ops] == ["stream_input", "column", "rolling_mean"]
    assert result.module.outputs[-1].kind == "traced"
