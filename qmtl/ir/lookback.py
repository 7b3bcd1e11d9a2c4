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
    """Look-back sums of the values in ``out``'s window, by a walk back from ``out.value`` that stops
    at the window's boundaries: the work is the size of the window, not of the module (the verifier
    and the look-back pass ask this for every output).  A boundary contributes 0; an operand that is
    not defined, or that closes a cycle in a broken module, contributes nothing."""
    ops, known_sources = _indexed(module)
    boundaries = region_boundaries(module, out, known_sources if sources is None else sources) - {out.value}
    depth: dict[str, int] = {}
    on_path: set[str] = set()
    stack: list[tuple[str, bool]] = [(out.value, False)]
    while stack:
        value, ready = stack.pop()
        op = ops.get(value)
        if op is None or value in depth:
            continue
        if ready:
            on_path.discard(value)
            upstream = [0 if src in boundaries else depth[src] for src in op.operands
                        if src in boundaries or src in depth]
            depth[value] = op_lookback(op) + max(upstream, default=0)
            continue
        if value in on_path:
            continue
        on_path.add(value)
        stack.append((value, True))
        stack.extend((src, False) for src in op.operands
                     if src not in boundaries and src not in depth and src not in on_path)
    return depth, boundaries


# The last module's op map and source values: the look-back pass and the verifier ask `_depths` once
# per output of the same (frozen) module, and rebuilding these each time made them quadratic.
_INDEX: list = [None, {}, set()]


def _indexed(module: Module) -> tuple[dict[str, Op], set[str]]:
    if _INDEX[0] is not module:
        _INDEX[:] = [module, module.op_map(), source_values(module)]
    return _INDEX[1], _INDEX[2]


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
