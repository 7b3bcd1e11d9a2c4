"""Shared helpers for the frontend tests: trace a one-node strategy and read back its value's ops."""

from __future__ import annotations

from typing import Any, Callable

from qmtl.compiler.frontend import FrontendResult, trace
from qmtl.ir.diagnostics import errors
from qmtl.ir.module import Op
from qmtl.ir.nodeid import node_ids
from qmtl.runtime.sdk import Node, StreamInput, Strategy


def one_node(compute_fn: Callable[[Any], Any] | None = None, *, expr: Any = None, period: int = 30,
             name: str = "sig", price: StreamInput | None = None) -> FrontendResult:
    """Trace a strategy of one StreamInput ``price`` (60s, tag btc) and one node reading it."""
    source = price or StreamInput(tags=["btc"], interval=60, period=period, name="price")

    class OneNode(Strategy):
        def setup(self) -> None:
            if compute_fn is not None:
                node = Node(input=source, compute_fn=compute_fn, name=name, period=period)
            else:
                node = Node(expr=expr(source) if callable(expr) else expr, name=name, period=period)
            self.add_nodes([source, node])

    result = trace(OneNode)
    assert not errors(result.diagnostics), [d.format() for d in result.diagnostics]
    return result


def value_ops(result: FrontendResult, output: str) -> list[Op]:
    """The ops an output's value depends on (excluding sources), in module order."""
    ops = result.module.op_map()
    needed: set[str] = set()
    stack = [result.module.output(output).value]
    while stack:
        v = stack.pop()
        if v not in needed:
            needed.add(v)
            stack.extend(ops[v].operands)
    return [op for op in result.module.ops if op.result in needed and op.name != "stream_input"]


def shape(result: FrontendResult, output: str) -> list[tuple[str, dict]]:
    """(op name, attrs) of an output's ops — what a test compares, names and locations aside."""
    return [(op.name, op.attr_dict) for op in value_ops(result, output)]


def output_id(result: FrontendResult, output: str) -> str:
    return node_ids(result.module)[result.module.output(output).value]


def opaque_op(result: FrontendResult, output: str) -> Op:
    op = result.module.op_map()[result.module.output(output).value]
    assert op.name == "py_call", f"{output} was traced: {shape(result, output)}"
    return op
