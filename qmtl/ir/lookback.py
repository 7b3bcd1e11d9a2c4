"""How many bars each value needs before it can produce one: ``required_periods(module)``.

An op needs ``OpDef.lookback(attrs)`` bars before the current one; a chain needs the sum along its
longest path, plus one for the current bar (Zipline's ``extra_rows``, computed on the graph rather than
asked of the user).

Paths are counted *within one output's window*: a path stops at a value that is another output's value,
because the downstream SDK node reads its upstream node's *values* — the upstream node's own warm-up is
its own declared period, not part of the downstream window.  Sources need 1 bar.
"""

from __future__ import annotations

from .module import Module, Op
from .ops import REGISTRY


def required_periods(module: Module) -> dict[str, int]:
    """value → bars needed to produce a value there (longest look-back path + 1).

    Safe on broken modules (the verifier calls it on anything): unknown ops and ops whose look-back
    cannot be computed from their attrs count 0; operands not defined earlier contribute nothing.
    """
    boundaries = {out.value for out in module.outputs}
    depth: dict[str, int] = {}  # value → longest look-back sum ending at it, inside its window
    for op in module.ops:
        upstream = [0 if src in boundaries else depth[src] for src in op.operands if src in depth]
        depth.setdefault(op.result, op_lookback(op) + max(upstream, default=0))
    return {value: d + 1 for value, d in depth.items()}


def op_lookback(op: Op) -> int:
    """Bars before the current one that ``op`` reads (0 when unknown or not computable)."""
    opdef = REGISTRY.get(op.name)
    if opdef is None:
        return 0
    try:
        return max(0, int(opdef.lookback({**opdef.defaults(), **op.attr_dict})))
    except (KeyError, TypeError, ValueError, OverflowError):
        return 0


def longest_path(module: Module, value: str) -> list[str]:
    """The values along one longest look-back path ending at ``value``, source first (for messages)."""
    boundaries = {out.value for out in module.outputs}
    ops = module.op_map()
    depth = {v: p - 1 for v, p in required_periods(module).items()}
    path = [value]
    while path[-1] in ops and len(path) <= len(ops):
        inputs = [s for s in ops[path[-1]].operands if s in depth]
        if not inputs or (path[-1] != value and path[-1] in boundaries):
            break
        path.append(max(inputs, key=lambda s: 0 if s in boundaries else depth[s]))
    return path[::-1]
