"""SDK node boundaries recovered from a module: which ops each node computes, from which inputs.

The IR is one flat SSA list; the per-tick semantics (DESIGN.md "Semantics") is stated per SDK node:
"a node's value at bar t is computed over the last P bars of each input ending at t".  The module's
``outputs`` are those nodes (one per SDK node, sources included), so a node's *region* is every op
between its output value and its *boundaries*: source ops and the values of the inputs the node
DECLARED (``Output.inputs``).  Another node's output value is not a boundary unless this node
declared that node: when CSE merged an op of this node with another node's output (both compute
``close.diff()``), this node still computes it over its own window, from its own inputs.
An output without declared inputs (IR from before they were recorded) stops at every other output's
value, which is what those modules meant.

Both the reference interpreter and the code generator walk regions, so both draw the window edges in
the same place.  After CSE an op can sit in two regions (two nodes computing the same sub-expression);
it is listed in both, because each node evaluates it over its own window.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ops as opreg
from .module import Module, Op, Output


@dataclass(frozen=True, slots=True)
class Region:
    """One SDK node: its output, the boundary values it reads, and the ops it computes.

    ``inputs`` are the boundary values the region's ops actually reach — declared inputs and sources —
    in module (definition) order; ``ops`` are topologically ordered (module order).  A source node's
    region has no inputs and holds just its source op.
    """

    name: str
    value: str
    period: int
    interval: int
    kind: str
    inputs: tuple[str, ...]
    ops: tuple[Op, ...]
    declared: tuple[str, ...] = ()  # the inputs the SDK node declared (``Output.inputs``)

    @property
    def is_source(self) -> bool:
        return self.kind == "source"

    @property
    def gate_inputs(self) -> tuple[str, ...]:
        """The values whose emissions gate this node (docs/design.md "Emission"): the inputs the
        node declared, else the boundaries its ops reach, else (a node of constants) its own value."""
        return self.declared or self.inputs or (self.value,)


def is_source_op(op: Op) -> bool:
    opdef = opreg.REGISTRY.get(op.name)
    return opdef is not None and opdef.kind == "source"


def source_values(module: Module) -> set[str]:
    return {op.result for op in module.ops if is_source_op(op)}


def region_boundaries(module: Module, out: Output, sources: set[str] | None = None) -> set[str]:
    """Values where ``out``'s window starts: sources and its declared inputs (every other output's
    value when it declared none, the rule for IR that predates ``Output.inputs``)."""
    sources = source_values(module) if sources is None else sources
    if out.inputs:
        return sources | set(out.inputs)
    return sources | {o.value for o in module.outputs}


def node_regions(module: Module) -> dict[str, Region]:
    """output name → its ``Region``, in output order."""
    ops = module.op_map()
    order = {op.result: i for i, op in enumerate(module.ops)}
    sources = source_values(module)
    return {out.name: _region(out, ops, order, region_boundaries(module, out, sources))
            for out in module.outputs}


def _region(out: Output, ops: dict[str, Op], order: dict[str, int], boundaries: set[str]) -> Region:
    root = ops.get(out.value)
    if root is not None and is_source_op(root):
        return Region(out.name, out.value, out.period, out.interval, "source", (), (root,))
    inside: set[str] = set()
    inputs: set[str] = set()
    stack = [out.value]
    while stack:
        v = stack.pop()
        if v in inside or v in inputs:
            continue
        if v != out.value and v in boundaries:
            inputs.add(v)
            continue
        if v not in ops:  # undefined value: the verifier reports it; keep the region well-formed
            continue
        inside.add(v)
        stack.extend(ops[v].operands)
    ordered_ops = tuple(ops[v] for v in sorted(inside, key=order.__getitem__))
    ordered_inputs = tuple(sorted(inputs, key=lambda v: order.get(v, len(order))))
    return Region(out.name, out.value, out.period, out.interval, out.kind, ordered_inputs, ordered_ops,
                  out.inputs)


def regions_in_dependency_order(module: Module) -> list[Region]:
    """Non-source regions ordered so every region comes after the regions whose values it reads
    (module order of the output value is such an order, since definitions precede uses)."""
    order = {op.result: i for i, op in enumerate(module.ops)}
    regions = [r for r in node_regions(module).values() if not r.is_source]
    return sorted(regions, key=lambda r: order.get(r.value, len(order)))
