"""Regions/CSE bug: a node's results depend on which *other* nodes the strategy has.

Run: ``.venv/bin/python tests/robustness/codegen_repros/repro_cse_moves_region_boundary.py``

Not a codegen bug (``run`` and ``run_reference`` agree): CSE merges an op computed inside node B with
the *output value* of node A (same NodeID), and ``qmtl.ir.regions`` then treats that value as a
boundary of B's region, i.e. B reads A's output as an input although the user declared only ``price``.
Consequences (data: synthetic_bars(300, seed=3), one symbol):

* warm-up adds up: ``frame`` (period 10, input ``price``) emits 282 rows instead of 291 when a
  second node ``diff`` computes ``close.diff()`` too (remove that node and ``frame`` has 291 rows);
* window-dependent ops give other numbers: ``trend`` = ``ewm(span=10).mean()`` then ``rolling(5)``
  is evaluated over node ``smooth``'s outputs (ewm over each earlier tick's own 30-bar window) rather
  than over the ewm of ``trend``'s own window — the per-tick definition
  (``qmtl.runtime.reference.per_tick_python``) even fails with KeyError, because ``trend``'s view no
  longer holds ``price``.

The CSE pass cannot simply keep the two apart: the gateway rejects a DAG with a duplicate NodeID.
The fix belongs where regions are drawn: an output should record the SDK node inputs it declared, and
``node_regions`` should stop only at those (and at sources), evaluating a merged op inside the region.
"""

import pandas as pd

import qmtl
from qmtl.runtime.reference import per_tick_python
from qmtl.runtime.sdk import Node, Strategy, StreamInput
from qmtl.runtime.synthetic import synthetic_bars


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


class SharedEwm(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=30, name="price")

        def smooth(view):
            return view[price][60]["close"].ewm(span=10).mean()

        def trend(view):
            e = view[price][60]["close"].ewm(span=10).mean()
            return e.rolling(5).mean() - e

        self.add_nodes([price, Node(input=price, compute_fn=smooth, name="smooth"),
                        Node(input=price, compute_fn=trend, name="trend")])


if __name__ == "__main__":
    data = synthetic_bars(300, seed=3)
    with_diff = qmtl.compile(WithDiffNode).run_reference(data)["frame"]
    without = qmtl.compile(WithoutDiffNode).run_reference(data)["frame"]
    print(f"frame rows: {len(with_diff)} with a 'diff' node, {len(without)} without (expected equal)")
    compiled = qmtl.compile(SharedEwm)
    print(compiled.ir_text)
    try:
        per_tick_python(compiled, data)
        print("per_tick_python ran")
    except Exception as err:  # noqa: BLE001 - the point is to show it
        print(f"per_tick_python: {type(err).__name__}: {err}")
    assert len(with_diff) == len(without), "results depend on an unrelated node"
