"""Every traced op runs in a Numba kernel (docs/design.md "Execution"; issue 7), asserted from the
plan (``qmtl.codegen.plan``), not from generated text.

For every example under ``examples/`` and every ``tests/robustness/strategies/s*.py`` that compiles:
the ops of the plan's kernels cover every op of the flow module except sources, constants, ``py_call``
and the columns read out of a ``py_call``'s rows; each op is in exactly one kernel (a NodeID is
computed once); and the per-tick Python steps are exactly the opaque nodes' ``py_call`` ops.  Nodes
reading a ``TagQueryNode`` are split off first (``qmtl.codegen.split``); the plan is of the flow part.

A few hand-written strategies cover what the issue named: constants and columns shared between nodes,
a traced node downstream of an opaque one, an opaque node in the middle of a chain, a long chain.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import qmtl
from qmtl.codegen import plan, split
from qmtl.compiler.pipeline import CompileError
from qmtl.ir import ops as opreg
from qmtl.ir.regions import node_regions
from qmtl.runtime.sdk import Node, Strategy, StreamInput

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "tests/robustness/strategies").glob("s*.py"))


def _compile(path: Path):
    try:
        return qmtl.compile(path)
    except CompileError:
        return None  # a user mistake on purpose (s05_lookahead): nothing to run


def check_every_traced_op_is_in_a_kernel(module) -> None:
    flow = split(module).flow
    if flow is None:  # every computed node reads a tag query: nothing for the kernels
        return
    p = plan(flow)
    ops = flow.op_map()
    in_kernels = [op.result for k in p.kernels for op in k.ops]
    assert len(in_kernels) == len(set(in_kernels)), "an op is computed in two kernels"
    ids = [op.node_id for k in p.kernels for op in k.ops]
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, f"{module.name}: a NodeID is computed more than once: {sorted(dup)[:3]}"
    expected = set()
    for op in flow.ops:
        kind = opreg.REGISTRY[op.name].kind
        if kind in ("source", "opaque") or op.name == "const":
            continue
        if op.name in ("column", "value_of") and ops[op.operands[0]].name == "py_call":
            continue
        expected.add(op.result)
    missing = expected - set(in_kernels)
    assert not missing, f"{module.name}: ops outside kernels: " + ", ".join(
        f"%{v} = {ops[v].name}" for v in sorted(missing))
    # per-tick steps: exactly the py_call ops, each the value of an opaque node
    py = {s.op.result for s in p.py_steps}
    assert py == {op.result for op in flow.ops if op.name == "py_call"}
    opaque_values = {o.value for o in flow.outputs if o.kind == "opaque"}
    assert py <= opaque_values, f"{module.name}: per-tick steps {py - opaque_values} are not opaque nodes"
    regions = node_regions(flow)
    for o in flow.outputs:
        if o.kind == "opaque":
            assert o.value in py, f"{module.name}: opaque node {o.name} has no per-tick step"
        if o.kind == "traced":
            inside = {op.result for op in regions[o.name].ops}
            assert not inside & py, f"{module.name}: traced node {o.name} runs a py_call"
    # every column read out of a py_call is read in its step
    for s in p.py_steps:
        assert {c.result for c in s.columns} == {op.result for op in flow.ops
                                                  if op.name in ("column", "value_of") and op.operands[0] == s.op.result}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_traced_op_of_every_example_and_robustness_strategy_is_in_a_kernel(path):
    compiled = _compile(path)
    if compiled is None:
        pytest.skip(f"{path.name} does not compile (a deliberate mistake)")
    check_every_traced_op_is_in_a_kernel(compiled.module)


def test_the_files_that_compile_are_the_expected_ones():
    failing = [p.name for p in FILES if _compile(p) is None]
    assert failing == ["s05_lookahead.py"]


# --- hand-written shapes the issue named -------------------------------------------------------------------


class SharedConstants(Strategy):
    """Two nodes that share a literal (* 100.0, > 0) and a column: CSE shares the ops across nodes."""

    def setup(self):
        price = StreamInput(interval="60s", period=5, name="price")
        a = Node(input=price, compute_fn=lambda v: (v[price][60]["close"].pct_change() * 100.0 > 0).astype(int),
                 name="a")
        b = Node(input=price, compute_fn=lambda v: v[price][60]["close"].diff() * 100.0 > 0, name="b")
        c = Node(input=a, compute_fn=lambda v: v[a][60] * 100.0, name="c")
        self.add_nodes([price, a, b, c])


class OpaqueInTheMiddle(Strategy):
    """traced → opaque (Series.apply) → traced, and a traced node reading an opaque frame's column."""

    def setup(self):
        price = StreamInput(interval="60s", period=10, name="price")
        first = Node(input=price, compute_fn=lambda v: v[price][60]["close"].rolling(3).mean(), name="first")

        def squash(view):
            return view[first][60].apply(lambda x: x / (1.0 + abs(x)))

        def stats(view):
            c = view[price][60]["close"]
            return {"lo": float(c.min()), "hi": float(c.max())}

        middle = Node(input=first, compute_fn=squash, name="middle", period=3)
        box = Node(input=price, compute_fn=stats, name="box", period=5)
        after = Node(input=middle, compute_fn=lambda v: v[middle][60].ewm(span=4).mean() * 2.0, name="after", period=2)
        width = Node(input=box, compute_fn=lambda v: (v[box][60]["hi"] - v[box][60]["lo"]).rolling(3).mean(),
                     name="width", period=3)
        self.add_nodes([price, first, middle, box, after, width])


def _chain(n: int) -> type:
    def setup(self):
        price = StreamInput(interval="60s", period=2, name="price")
        nodes = [price, Node(input=price, compute_fn=lambda v: v[price][60]["close"] * 1.0, name="n0")]
        for i in range(1, n):
            prev = nodes[-1]
            nodes.append(Node(input=prev, compute_fn=lambda v, prev=prev: v[prev][60] + 1.0, name=f"n{i}"))
        self.add_nodes(nodes)
    return type("Chain", (Strategy,), {"setup": setup})


@pytest.mark.parametrize("cls", [SharedConstants, OpaqueInTheMiddle, _chain(120)], ids=lambda c: c.__name__)
def test_sharing_opaque_nodes_and_depth_never_send_traced_ops_to_python(cls):
    compiled = qmtl.compile(cls)
    check_every_traced_op_is_in_a_kernel(compiled.module)
    kinds = {o.name: o.kind for o in compiled.module.outputs if o.kind != "source"}
    if cls is OpaqueInTheMiddle:
        assert {k: v for k, v in kinds.items() if k != "after"} == {
            "first": "traced", "middle": "opaque", "box": "opaque", "width": "traced"}
        p = plan(compiled.module)
        level = {op.result: k.level for k in p.kernels for op in k.ops}
        width = compiled.module.output("width").value
        assert level[width] == 1  # downstream of the opaque node: still a kernel, one level later
    else:
        assert set(kinds.values()) == {"traced"}
        assert plan(compiled.module).py_steps == ()


def test_a_series_valued_opaque_node_does_not_make_its_traced_reader_opaque():
    """Issue 7 "Opaque poisons": ``after`` reads the Series an opaque node returns and applies
    ``.ewm(span=4).mean() * 2.0`` — plain pandas on that Series at run time (the CacheView hands it a
    ``pd.Series``), so it should trace and run in a kernel at level 1."""
    compiled = qmtl.compile(OpaqueInTheMiddle)
    out = compiled.module.output("after")
    assert out.kind == "traced", out.reason
    p = plan(compiled.module)
    assert len(p.py_steps) == 2
    level = {op.result: k.level for k in p.kernels for op in k.ops}
    assert level[out.value] == 1


def test_opaque_in_the_middle_runs_and_matches_the_reference():
    from qmtl.runtime.results import assert_results_equal
    from qmtl.runtime.synthetic import synthetic_bars

    compiled = qmtl.compile(OpaqueInTheMiddle)
    df = synthetic_bars(120, seed=4)
    ref = compiled.run_reference(df)
    assert all(len(f) for f in ref.outputs.values())
    for bs in (1, 7, 10_000):
        assert_results_equal(compiled.run(df, batch_size=bs), ref)
