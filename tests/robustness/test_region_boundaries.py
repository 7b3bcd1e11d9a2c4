"""A node's results depend only on the inputs it declared, never on which other nodes the strategy
has: CSE may merge an op of node A with node B's output; because a NodeID determines its values
(docs/design.md "Identity") the merged op is computed once, in a kernel, and both nodes read it."""

from __future__ import annotations

import pandas as pd
import pytest

import qmtl
from qmtl.codegen import plan
from qmtl.ir.regions import node_regions
from qmtl.runtime.reference import per_tick_python
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.sdk import Node, Strategy, StreamInput

BATCH_SIZES = (1, 7, 10_000)


def _frame(view):
    c = view["price"][60]["close"]
    return pd.DataFrame({"d": c.diff(), "p": c.pct_change()})


class WithDiffNode(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=10, name="price")
        self.add_nodes([price,
                        Node(input=price, compute_fn=lambda v: v[price][60]["close"].diff(), name="diff"),
                        Node(input=price, compute_fn=_frame, name="frame")])


class WithoutDiffNode(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=10, name="price")
        self.add_nodes([price, Node(input=price, compute_fn=_frame, name="frame")])


class ChainedAndDirect(Strategy):
    """``ratio`` declares ``chg`` as input; ``direct`` recomputes chg's expression from ``price``:
    the merged ``diff`` op is read as chg's emitted values by one and computed over price by the other."""

    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")
        chg = Node(input=price, compute_fn=lambda v: v[price][60]["close"].diff(), name="chg")
        ratio = Node(input=chg, compute_fn=lambda v: v[chg][60].rolling(3).mean(), name="ratio", period=3)
        direct = Node(input=price, compute_fn=lambda v: v[price][60]["close"].diff().rolling(3).mean(),
                      name="direct")
        self.add_nodes([price, chg, ratio, direct])


@pytest.fixture(scope="module")
def data(datasets):
    return datasets["single"]


def test_an_unrelated_node_does_not_change_a_nodes_rows(data) -> None:
    with_diff = qmtl.compile(WithDiffNode)
    without = qmtl.compile(WithoutDiffNode)
    frame = with_diff.module.output("frame")
    assert frame.inputs == (with_diff.module.output("price").value,)
    # CSE merged frame's close.diff() with node diff's output, yet frame's region does not read it
    assert with_diff.module.output("diff").value in {op.result for op in node_regions(with_diff.module)["frame"].ops}
    expected = without.run_reference(data)["frame"]
    assert len(expected) == len(data) - 9  # warm-up is frame's own period (10), nothing added
    reference = with_diff.run_reference(data)
    pd.testing.assert_frame_equal(reference["frame"], expected)
    assert_results_equal(reference, per_tick_python(with_diff, data))
    for batch_size in BATCH_SIZES:
        assert_results_equal(with_diff.run(data, batch_size=batch_size), reference)


def test_a_merged_op_read_by_nodes_with_different_inputs_runs_once_in_a_kernel(data) -> None:
    program = qmtl.compile(ChainedAndDirect)
    regions = node_regions(program.module)
    chg = program.module.output("chg").value
    assert regions["ratio"].inputs == (chg,)
    assert chg in {op.result for op in regions["direct"].ops}
    p = plan(program.module)
    assert not p.py_steps
    kernel_ops = [op.result for k in p.kernels for op in k.ops]
    assert kernel_ops.count(chg) == 1  # computed once, read by both nodes
    reference = program.run_reference(data)
    assert_results_equal(reference, per_tick_python(program, data))
    # both nodes average the same diffs; only their warm-ups differ
    ratio, direct = reference["ratio"], reference["direct"]
    common = direct.index.intersection(ratio.index)
    assert len(common) > 200
    pd.testing.assert_series_equal(ratio.loc[common].iloc[:, 0], direct.loc[common].iloc[:, 0],
                                   check_names=False)
    for batch_size in BATCH_SIZES:
        assert_results_equal(program.run(data, batch_size=batch_size), reference)
