"""Long chains of traced nodes: no recursion on graph depth, every node in a kernel, right values.

A 2,000-node chain (``benchmarks/strategies/chain.py``: each node adds 1 to the previous one's
frame) compiles and runs end to end; kernels with the same code share one jitted function, so the
cold compile stays short.  The same chain declared to ``add_nodes`` in reverse order compiles too
(the node collector walks the graph with an explicit stack).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qmtl
from qmtl import codegen
from qmtl.runtime.synthetic import synthetic_bars

CHAIN = Path(__file__).resolve().parents[2] / "benchmarks" / "strategies" / "chain.py"

REVERSED = '''
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class Reversed(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=2)
        nodes = [price]
        for i in range(1200):
            prev = nodes[-1]
            if i == 0:
                fn = lambda view, prev=prev: view.as_frame(prev, 60).frame[["close"]] * 2.0
            else:
                fn = lambda view, prev=prev: view.as_frame(prev, 60).frame - 1.0
            nodes.append(Node(input=prev, compute_fn=fn, name=f"n{i}", period=2))
        self.add_nodes(list(reversed(nodes)))
'''


@pytest.fixture()
def chain_of(monkeypatch):
    def compile_with(n: int):
        monkeypatch.setenv("QMTL_CHAIN_N", str(n))
        return qmtl.compile(CHAIN)
    return compile_with


def test_a_2000_node_chain_runs_in_kernels_with_the_right_values(chain_of):
    compiled = chain_of(2000)
    p = codegen.plan(compiled.module)
    assert not p.py_steps and len(p.kernels) > 10
    assert "def kernel_" in codegen.generate(compiled.module)
    assert codegen.generate(compiled.module).count("\ndef kernel_") < 10  # shared, not 2,000 functions
    data = synthetic_bars(2100, seed=4).drop(columns="symbol")
    out = compiled.run(data).outputs
    assert len(out) == 2000
    last = out["n1999"]
    want = data.set_index("ts")["close"].loc[last.index].to_numpy() + 2000.0
    np.testing.assert_allclose(last["close"].to_numpy(), want, rtol=1e-12)
    # node k waits for 2 emitted bars of node k-1: it emits from bar k+1, so the last from bar 2,000
    assert len(last) == 100 and last.index[0] == data["ts"].iloc[2000]


def test_a_chain_declared_in_reverse_order_compiles_without_recursion(tmp_path):
    path = tmp_path / "reversed.py"
    path.write_text(REVERSED)
    compiled = qmtl.compile(path)
    assert len([o for o in compiled.module.outputs if o.kind == "traced"]) == 1200
    data = synthetic_bars(40, seed=5).drop(columns="symbol")
    first = compiled.run(data).outputs["n0"]
    np.testing.assert_allclose(first["close"].to_numpy(),
                               data.set_index("ts")["close"].loc[first.index].to_numpy() * 2.0)
