"""How many bars each value needs before it can produce one: ``required_periods(module)``.

An op needs ``OpDef.lookback(attrs)`` bars before the current one; a chain needs the sum along its
longest path, plus one for the current bar (Zipline's ``extra_rows``, computed on the graph rather than
asked of the user).

Paths are counted *within one output's window* (``qmtl.ir.regions.region_boundaries``): a path stops at
a source and at the values of the inputs that output DECLARED, because a downstream SDK node reads its
upstream node's *values* — the upstream node's own warm-up is its own declared period.  An op merged
by CSE with another node's output is still counted in full for a node that did not declare that node:
it computes the op over its own window.  Sources need 1 bar.
"""

from __future__ import annotations

from .module import Module, Op, Output
from .ops import REGISTRY
from .regions import region_boundaries, source_values


def required_periods(module: Module) -> dict[str, int]:
    """value → bars needed to produce a value there (longest look-back path + 1).

    An output's value is counted inside that output's own window (the largest, when several outputs
    name it; check one output with ``output_required_period``); any other value is counted up to
    sources and any output's value (the bars it needs wherever it is read from).  Safe on broken
    modules (the verifier calls it on anything): unknown ops and ops whose look-back cannot be
    computed from their attrs count 0; operands not defined earlier contribute nothing.
    """
    boundaries = {out.value for out in module.outputs}
    depth: dict[str, int] = {}
    for op in module.ops:
        upstream = [0 if src in boundaries else depth[src] for src in op.operands if src in depth]
        depth.setdefault(op.result, op_lookback(op) + max(upstream, default=0))
    need = {value: d + 1 for value, d in depth.items()}
    sources = source_values(module)
    own: dict[str, int] = {}
    for out in module.outputs:
        if out.value in need:
            own[out.value] = max(own.get(out.value, 0), output_required_period(module, out, sources))
    need.update(own)
    return need


def output_required_period(module: Module, out: Output, sources: set[str] | None = None) -> int:
    """Bars ``out`` needs inside its own window (longest look-back path to a boundary, + 1)."""
    return _depths(module, out, sources)[0].get(out.value, 0) + 1


def _depths(module: Module, out: Output, sources: set[str] | None = None
            ) -> tuple[dict[str, int], set[str]]:
    """Look-back sums of every value in ``out``'s window, in one pass in module order (definitions
    precede uses in a valid module; a use before its definition simply contributes nothing)."""
    boundaries = region_boundaries(module, out, sources) - {out.value}
    depth: dict[str, int] = {}
    for op in module.ops:
        if op.result in depth:
            continue
        upstream = [0 if src in boundaries else depth[src] for src in op.operands
                    if src in depth or src in boundaries]
        depth[op.result] = op_lookback(op) + max(upstream, default=0)
    return depth, boundaries


def op_lookback(op: Op) -> int:
    """Bars before the current one that ``op`` reads (0 when unknown or not computable)."""
    opdef = REGISTRY.get(op.name)
    if opdef is None:
        return 0
    try:
        return max(0, int(opdef.lookback({**opdef.defaults(), **op.attr_dict})))
    except (KeyError, TypeError, ValueError, OverflowError):
        return 0


def longest_path(module: Module, value: str, out: Output | None = None) -> list[str]:
    """The values along one longest look-back path ending at ``value``, source first (for messages).

    For an output's value the path stays inside that output's window (``out``, or the first output
    naming ``value``; after CSE two nodes with different inputs can name one value)."""
    if out is None:
        out = next((o for o in module.outputs if o.value == value), None)
    if out is not None:
        depth, boundaries = _depths(module, out)
    else:
        boundaries = {o.value for o in module.outputs}
        depth = {v: p - 1 for v, p in required_periods(module).items()}
    ops = module.op_map()
    path = [value]
    while path[-1] in ops and len(path) <= len(ops):
        if path[-1] != value and path[-1] in boundaries:
            break
        inputs = [s for s in ops[path[-1]].operands if s in depth or s in boundaries]
        if not inputs:
            break
        path.append(max(inputs, key=lambda s: 0 if s in boundaries else depth.get(s, 0)))
    return path[::-1]
