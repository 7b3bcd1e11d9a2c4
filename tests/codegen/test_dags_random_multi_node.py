"""Random multi-node DAGs against the reference: several sources on two clocks with gaps, nodes with
declared inputs sharing constants and sub-expressions, opaque nodes in the middle with traced nodes
after them.  The generated flow equals the reference interpreter at batch sizes 1, 7 and 10,000, and
only the opaque nodes run per tick (asserted from the plan)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qmtl import codegen
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.ir import ops as opreg
from qmtl.ir.clocks import clocks
from qmtl.ir.module import Module, Op, Output, make_attrs
from qmtl.ir.nodeid import with_node_ids
from qmtl.runtime.binding import bind
from qmtl.runtime.engine import run
from qmtl.runtime.reference import evaluate
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars

_UNARY = [("pct_change", {}), ("diff", {"periods": 2}), ("rolling_mean", {"window": 3}),
          ("rolling_std", {"window": 4}), ("rolling_max", {"window": 5}), ("ewm_mean", {"alpha": 0.4}),
          ("cumsum", {}), ("expanding_mean", {}), ("ffill", {}), ("ema", {"period": 3}), ("abs", {}),
          ("shift", {"periods": 1}), ("tanh", {})]
_BINARY = ["add", "sub", "mul", "div", "maximum", "gt"]


def window_mean(view):
    """An opaque function: the mean close (or value) over every input window."""
    parts = []
    for key in view:
        for window in view[key].values():
            col = window["close"] if isinstance(window, pd.DataFrame) and "close" in window else window
            if isinstance(col, pd.DataFrame):
                col = col.iloc[:, 0]
            parts.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
    flat = np.concatenate(parts) if parts else np.array([np.nan])
    return {"m": float(np.nanmean(flat)) if np.isfinite(flat).any() else float("nan")}


class _Builder:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.types: dict[str, object] = {}
        self.outputs: list[Output] = []

    def op(self, opname: str, /, *operands: str, **attrs) -> str:
        """Append an op; one the type rules reject (``bool - bool``) is replaced by its first operand."""
        result = f"v{len(self.ops)}"
        opdef = opreg.REGISTRY[opname]
        try:
            typ = opdef.result(tuple(self.types[o] for o in operands), {**opdef.defaults(), **attrs})
        except TypeError:
            return operands[0]
        self.ops.append(Op(result, opname, tuple(operands), make_attrs(attrs), typ))
        self.types[result] = typ
        return result


@st.composite
def dags(draw):
    b = _Builder()
    fast = b.op("stream_input", tags=("A",), interval=60)
    slow = b.op("stream_input", tags=("B",), interval=300)
    b.outputs += [Output("A", fast, 1, 60, "source"), Output("B", slow, 1, 300, "source")]
    one = b.op("const", value=1.0)
    nodes: list[tuple[str, str]] = []  # (value, its node's clock source)
    for i in range(draw(st.integers(2, 6))):
        inputs = draw(st.sampled_from([(fast,), (slow,), (fast, slow)])) if not nodes or draw(st.booleans()) \
            else (draw(st.sampled_from([v for v, _ in nodes])),)
        period = draw(st.integers(1, 8))
        if draw(st.integers(0, 4)) == 0:  # an opaque node, read by later traced nodes
            call = b.op("py_call", *inputs, code_hash="mean", period=period)
            value = b.op("column", call, name="m")
        else:
            pool = [b.op("column", v, name=draw(st.sampled_from(["close", "open"])))
                    if b.types[v].kind == "bars" else v for v in inputs]
            for _ in range(draw(st.integers(1, 4))):
                if draw(st.booleans()) and len(pool) > 1:
                    x, y = draw(st.sampled_from(pool)), draw(st.sampled_from(pool + [one]))
                    pool.append(b.op(draw(st.sampled_from(_BINARY)), x, y))
                else:
                    name, attrs = draw(st.sampled_from(_UNARY))
                    pool.append(b.op(name, draw(st.sampled_from(pool)), **attrs))
            value = pool[-1]
            if b.types[value].dtype == "bool":
                value = b.op("astype", value, dtype="f64")
        b.outputs.append(Output(f"n{i}", value, period, 60, "traced", inputs=tuple(inputs)))
        nodes.append((value, fast))
    # each node's declared interval is its clock: the fastest of its inputs' clocks
    clock = clocks(Module("rand", tuple(b.ops), ()))
    outputs = [replace(o, interval=min(clock[v] for v in o.inputs)) if o.inputs else o for o in b.outputs]
    return with_node_ids(Module("rand", tuple(b.ops), tuple(outputs)))


def _data(seed: int, keep: float) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    a = synthetic_bars(240, seed=seed).drop(columns="symbol")
    a = a[rng.random(len(a)) < keep].reset_index(drop=True)
    b = synthetic_bars(48, interval=300, seed=seed + 1).drop(columns="symbol")
    return {"A": a, "B": b}


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.generate])  # no shrinking: each step compiles a new module
@given(module=dags(), seed=st.integers(0, 500), keep=st.sampled_from([1.0, 0.8, 0.5]))
def property_random_multi_node_dags_match_the_reference(module, seed, keep):
    p = codegen.plan(module)
    opaque = {op.result for op in module.ops if op.name == "py_call"}
    assert {s.op.result for s in p.py_steps} == opaque  # nothing else runs per tick
    data = _data(seed, keep)
    functions = {"mean": window_mean}
    ref = evaluate(module, functions, bind(module, data))
    compiled = CompiledStrategy(module.name, module, functions=functions)
    for bs in (1, 7, 10_000):
        assert_results_equal(run(compiled, data, batch_size=bs), ref, rtol=1e-9)


def test_random_multi_node_dags_match_the_reference():
    """The property above, in a fresh interpreter: inside the full suite's process it has hung once
    (shrinking a failure that did not reproduce alone; not yet explained), and a CI run must end."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("from tests.codegen.test_dags_random_multi_node import "
            "property_random_multi_node_dags_match_the_reference as p; p()")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
