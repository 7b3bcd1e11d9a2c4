"""Which SDK nodes the generated flow runs and which the per-tick interpreter runs, per node.

The flow runs one run key (instrument) at a time: every node it holds must be computable from that
key's bars plus streams every key shares (a single-stream input, broadcast onto each key's
timeline).  A ``tag_query`` breaks that: its value is a *group* of instruments seen together, so the
node reading it — and every node downstream of that node — needs every instrument at once.  Those
nodes run on the reference interpreter after the flow, reading the flow's emitted values of the
nodes they depend on; the rest of the module keeps running in the kernels.

``split(module)`` returns the module restricted to the flow's nodes (the same module object when no
node needs the interpreter, so its build-cache entry does not move) and, per interpreted node, why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qmtl.ir.module import Module
from qmtl.ir.regions import node_regions, regions_in_dependency_order

#: what a node the interpreter runs per tick costs (``benchmarks/bench_engine_crosskey.py``): said by
#: W204 and by ``qmtl explain``
PER_TICK_COST = "about 1 ms per bar per instrument"
#: what an opaque function costs: one Python call per bar on its window (``benchmarks/bench_opaque.py``)
OPAQUE_COST = "about 0.2 ms per bar per instrument"


@dataclass(frozen=True)
class Split:
    """``flow``: the module the generated flow runs (None when no computed node is left for it);
    ``per_tick``: node name → why the interpreter runs it (in dependency order)."""

    flow: Module | None
    per_tick: dict[str, str] = field(default_factory=dict)


def split(module: Module) -> Split:
    reasons = cross_instrument_nodes(module)
    if not reasons:
        return Split(module, {})
    return Split(_restrict(module, set(reasons)), reasons)


def cross_instrument_nodes(module: Module) -> dict[str, str]:
    """Nodes that read a ``tag_query`` group, directly or through another such node: name → why."""
    queries = {op.result for op in module.ops if op.name == "tag_query"}
    if not queries:
        return {}
    cross = set(queries)
    reasons: dict[str, str] = {}
    for region in regions_in_dependency_order(module):
        hit = [v for v in region.inputs if v in cross]
        if not hit and region.value not in cross:
            continue
        cross.add(region.value)
        v = hit[0] if hit else region.value
        reasons[region.name] = (f"reads the tag query %{v} (a group of instruments at once)" if v in queries
                                else f"reads node {module.output_name(v)!r}, which runs on the "
                                     "per-tick interpreter")
    return reasons


def _restrict(module: Module, dropped: set[str]) -> Module | None:
    """``module`` without the ``dropped`` nodes, the ops only they compute, and the sources only
    they read (a tag query among them); None if no computed node remains."""
    ops = module.op_map()
    regions = node_regions(module)
    kept = [o for o in module.outputs if o.name not in dropped and not regions[o.name].is_source]
    if not kept:
        return None
    reach: set[str] = set()
    stack = [o.value for o in kept]
    while stack:
        v = stack.pop()
        if v in reach or v not in ops:
            continue
        reach.add(v)
        stack.extend(ops[v].operands)
    sources = [o for o in module.outputs if regions[o.name].is_source and o.value in reach]
    outputs = tuple(o for o in module.outputs if o in kept or o in sources)
    return module.with_(ops=tuple(op for op in module.ops if op.result in reach), outputs=outputs)

