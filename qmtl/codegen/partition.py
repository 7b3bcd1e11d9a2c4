"""Partitioning: which ops run in which fused Numba kernel, and which run per tick in Python.

The unit of *semantics* is an SDK node's region (its ops, its boundary inputs, its ``period``): the
reference interpreter evaluates a region once per tick over the last ``period`` bars of each boundary
input.  Kernels reproduce that per-tick rule exactly when every op of the region is one we lower
(its value at the last row of a window equals its value over the whole history, given the warm-up
gate).  A region holding an op we cannot lower that way (``py_call``, anything reading an opaque
value, a windowed ``ewm_mean`` fed by a look-back chain) is evaluated per tick in Python by the
reference implementations — correct, slower — and the plan records why.

Gates are structural: whether a region *fires* at a tick depends only on which of its inputs are
present and how many bars each has had, never on values.  So all gates of a batch are computed first
(one tiny kernel), and every compute step reads them.

Kernel ops are levelled so a kernel never waits on Python: a per-tick region at level ``l`` reads
only values of levels below ``l``; kernel ops at level ``l`` may read per-tick regions of level ``l``.
Execution order per batch: gates, then for each level: per-tick regions, then that level's kernel.

Timelines.  Each run key runs on one timeline: the union of its sources' timestamps (every clock),
with a presence flag per source.  A node is present where all its inputs are, and the values it
emits land on the intersection of its cone's sources (after warm-up), so a *timeline id* — the set
of sources in a value's cone — says which values line up entry by entry.  A windowed op pushes its
window state only where the inputs its operand reaches are present (that input's own history, the
reference's window); a recursive op pushes where its region is present (the reference runs it over
the region's common ticks).  The one thing a kernel cannot reproduce is a windowed op over values of
*different* timelines: the reference pairs those windows position by position from the end, which is
no sliding window over one sequence.  Such a node is ``mixed``; when a key's sources do not share
their timestamps, the ``unaligned`` plan runs it per tick (per node, with the reason recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op, Output
from qmtl.ir.nodeid import clocks
from qmtl.ir.regions import Region as NodeRegion
from qmtl.ir.regions import regions_in_dependency_order

#: Ops the kernels implement natively (every registry op except the sources and ``py_call``).
LOWERED = frozenset(name for name, d in opreg.REGISTRY.items() if d.kind not in ("source", "opaque"))

#: Ops whose value is NaN whenever their own look-back is not yet filled; a windowed ``ewm_mean``
#: fed only by these sees NaN at the window's first rows, exactly as the kernel's masked window does.
_NAN_ON_SHORT_HISTORY = frozenset({"column", "shift", "diff", "pct_change", "add", "sub", "mul", "div",
                                   "pow", "neg", "abs", "log", "exp", "sqrt", "sign", "clip",
                                   "maximum", "minimum", "const"})


@dataclass(frozen=True)
class Region:
    """One SDK node (``qmtl.ir.regions.Region``) with how it runs here: in a kernel or per tick."""

    node: NodeRegion
    ops: tuple[Op, ...]  # the ops this region computes in a kernel (shared ops: first region only;
    #                      sharing is only allowed between regions with the same inputs)
    lowered: bool
    level: int
    reason: str = ""
    mixed: str = ""  # why this node runs per tick when its key's sources are unaligned ("" if never)

    @property
    def output(self) -> Output:
        return Output(self.node.name, self.node.value, self.node.period, self.node.interval,
                      self.node.kind)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.node.inputs


@dataclass(frozen=True)
class Kernel:
    """One fused, jitted group: ops in module order, the values it reads from outside, the values
    it writes for later steps or outputs, and the region whose gate clocks each stateful op."""

    index: int
    clock: int | None
    level: int
    ops: tuple[Op, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    region_of: tuple[tuple[str, str], ...]  # op result → output name (its gate)


@dataclass(frozen=True)
class Plan:
    module: Module
    regions: tuple[Region, ...]
    kernels: tuple[Kernel, ...]
    per_tick: tuple[tuple[int, Region], ...]  # (level, region) evaluated in Python
    sources: tuple[Op, ...]
    clock: dict[str, int | None]
    unaligned: bool = False

    def steps(self, clock: int | None):
        """Kernels and per-tick regions of one clock in execution order."""
        levels = sorted({k.level for k in self.kernels} | {lv for lv, _ in self.per_tick})
        for level in levels:
            for lv, region in self.per_tick:
                if lv == level and self.clock[region.output.value] == clock:
                    yield region
            for k in self.kernels:
                if k.level == level and k.clock == clock:
                    yield k


def regions(module: Module, unaligned: bool = False) -> tuple[Region, ...]:
    """Every non-source node, in dependency order, with its kernel-or-Python decision and level.

    ``unaligned``: the plan for keys whose sources' timestamps differ — mixed nodes run per tick."""
    level_of: dict[str, int] = {}
    claimed: set[str] = set()
    result = []
    nodes = regions_in_dependency_order(module)
    apart = _computed_apart(nodes)
    tids = timeline_ids(module)
    for node in nodes:
        members = {op.result for op in node.ops}
        lowered, reason = _lowerable(node.ops, module, members)
        if lowered and node.name in apart:
            lowered, reason = False, apart[node.name]
        mixed = _mixed_reason(node, tids)
        if lowered and unaligned and mixed:
            lowered, reason = False, mixed
        base = max((level_of.get(v, 0) for v in node.inputs), default=0)
        level = base + (0 if lowered else 1)
        level_of.setdefault(node.value, level)
        own = tuple(op for op in node.ops if op.result not in claimed) if lowered else node.ops
        if lowered:
            claimed |= members
        result.append(Region(node, own, lowered, level, reason, mixed))
    return tuple(result)


# --- timelines ------------------------------------------------------------------------------------

#: Stands for "the region's own common ticks" in what an op's operand reaches (via a recursive op).
REGION_TICKS = "<region>"


def timeline_ids(module: Module) -> dict[str, frozenset[str]]:
    """Source values and node output values → the sources in their cone (their timeline id)."""
    tids: dict[str, frozenset[str]] = {op.result: frozenset({op.result}) for op in module.ops
                                       if opreg.REGISTRY[op.name].kind == "source"}
    for node in regions_in_dependency_order(module):
        tids.setdefault(node.value, frozenset().union(*(tids.get(v, frozenset()) for v in node.inputs)))
    return tids


def reached_inputs(node: NodeRegion, value: str) -> frozenset[str]:
    """Boundary inputs of ``node`` that ``value`` is computed from inside the node; a recursive op
    stands in as ``REGION_TICKS`` (its values live on the region's ticks, not an input's)."""
    ops = {op.result: op for op in node.ops}
    inputs = set(node.inputs)
    memo: dict[str, frozenset[str]] = {}

    def walk(v: str) -> frozenset[str]:
        if v in inputs:
            return frozenset({v})
        if v not in ops:
            return frozenset()
        if v not in memo:
            op = ops[v]
            if opreg.REGISTRY[op.name].kind == "recursive":
                memo[v] = frozenset({REGION_TICKS})
            else:
                memo[v] = frozenset().union(*(walk(s) for s in op.operands))
        return memo[v]

    return walk(value)


def push_inputs(node: NodeRegion, op: Op) -> frozenset[str] | None:
    """The boundary inputs whose presence clocks ``op``'s state pushes, or None for the region's
    own presence (recursive ops, and windows over recursive values or constants)."""
    if opreg.REGISTRY[op.name].kind != "windowed" or not op.operands:
        return None
    reached = reached_inputs(node, op.operands[0])
    if not reached or REGION_TICKS in reached:
        return None
    return reached


def _mixed_reason(node: NodeRegion, tids: dict[str, frozenset[str]]) -> str:
    region_tid = frozenset().union(*(tids.get(v, frozenset()) for v in node.inputs))
    for op in node.ops:
        if opreg.REGISTRY[op.name].kind != "windowed" or not op.operands:
            continue
        reached = reached_inputs(node, op.operands[0])
        lines = {region_tid if v == REGION_TICKS else tids.get(v, frozenset()) for v in reached}
        if len(lines) > 1:
            return (f"{op.result} = {op.name} windows values from inputs with different timestamps "
                    f"({', '.join(sorted(v for v in reached))}); the reference pairs those windows "
                    "entry by entry (evaluated per tick when this key's sources are unaligned)")
    return ""


def _computed_apart(nodes: list[NodeRegion]) -> dict[str, str]:
    """Nodes that share an op (merged by CSE) with a node whose window edges differ: node name → why.

    A kernel computes a shared op once, clocked by one region's gate, and writes one buffer per value.
    That is only the per-tick value of *both* nodes when they read the same boundary inputs (the same
    ticks, the same upstream cone).  Otherwise each node must evaluate the op over its own window, so
    both run per tick, where a region computes all its ops privately and stores only its output."""
    owners: dict[str, list[NodeRegion]] = {}
    for node in nodes:
        for op in node.ops:
            owners.setdefault(op.result, []).append(node)
    apart: dict[str, str] = {}
    for value, holders in owners.items():
        for node in holders:
            other = next((h for h in holders if set(h.inputs) != set(node.inputs)), None)
            if other is not None and node.name not in apart:
                apart[node.name] = (f"%{value} is also computed by node {other.name!r} over other inputs "
                                    "(evaluated per tick over this node's own window)")
    return apart


def _lowerable(body: tuple[Op, ...], module: Module, members: set[str]) -> tuple[bool, str]:
    ops = module.op_map()
    for op in body:
        if op.name not in LOWERED:
            return False, f"{op.result} = {op.name} runs as Python per tick"
        if any(ops[s].type.kind == "opaque" for s in op.operands):
            return False, f"{op.result} = {op.name} reads an opaque value"
        if op.name == "ewm_mean" and not _nan_chain(ops[op.operands[0]], ops, members):
            return False, (f"{op.result} = ewm_mean over a window whose early rows are not NaN "
                           "(evaluated per tick over the window)")
    history_reader = _reads_windowed_history(body, ops, members)
    if history_reader is not None:
        return False, (f"{history_reader} reads earlier rows of an ewm_mean over the window "
                       "(evaluated per tick over the window)")
    return True, ""


def _reads_windowed_history(body: tuple[Op, ...], ops: dict[str, Op], members: set[str]) -> str | None:
    """An op that reads earlier rows (windowed/recursive) of a value derived from an ``ewm_mean``
    inside the same region, or None.  A traced ewm's value at an earlier row of *this* window is the
    ewm of this window up to that row, not the ewm the kernel computed at that tick over that tick's
    own window; only a per-tick evaluation gets it right."""
    from_ewm: set[str] = set()
    for op in body:  # module order: operands come first
        if any(s in from_ewm for s in op.operands if s in members):
            if opreg.REGISTRY[op.name].kind in ("windowed", "recursive"):
                return f"{op.result} = {op.name}"
            from_ewm.add(op.result)
        if op.name == "ewm_mean":
            from_ewm.add(op.result)
    return None


def _nan_chain(op: Op, ops: dict[str, Op], members: set[str]) -> bool:
    if op.result not in members:
        return True
    if op.name not in _NAN_ON_SHORT_HISTORY and not (
            op.name.startswith("rolling_") and op.attr("min_periods") in (None, op.attr("window"))):
        return False
    return all(_nan_chain(ops[s], ops, members) for s in op.operands)


def lookback_of(value: str, module: Module, members: set[str]) -> int:
    """Bars before the current one that ``value`` needs, summed along its longest path inside a
    region (how many leading rows of a region window hold truncated-history values)."""
    ops = module.op_map()
    memo: dict[str, int] = {}

    def walk(v: str) -> int:
        if v not in members:
            return 0
        if v not in memo:
            op = ops[v]
            own = opreg.REGISTRY[op.name].lookback(op.attr_dict) if op.name != "ewm_mean" else 0
            memo[v] = own + max((walk(s) for s in op.operands), default=0)
        return memo[v]

    return walk(value)


def plan(module: Module, unaligned: bool = False) -> Plan:
    regs = regions(module, unaligned)
    clock = clocks(module)
    ops = module.op_map()
    per_tick = tuple((r.level, r) for r in regs if not r.lowered)
    # one kernel per level, every clock in it: each op pushes its state only where its inputs are
    # present, and a node on one clock may read a node on another at the same level, which two
    # kernels of one level could not order
    groups: dict[int, list[Op]] = {}
    region_of: dict[str, str] = {}
    for r in regs:
        if r.lowered:
            for op in r.ops:
                if op.name == "const":
                    continue  # inlined as a literal wherever it is read
                region_of[op.result] = r.node.name
                groups.setdefault(r.level, []).append(op)
    users = module.users()
    out_values = {o.value for o in module.outputs}
    position = {op.result: i for i, op in enumerate(module.ops)}
    kernels = []
    for i, (lv, members) in enumerate(sorted(groups.items())):
        members.sort(key=lambda op: position[op.result])
        inside = {op.result for op in members}
        reads = tuple(dict.fromkeys(s for op in members for s in op.operands
                                    if s not in inside and ops[s].type.kind != "bars"))
        writes = tuple(op.result for op in members
                       if op.result in out_values or any(u not in inside for u in users.get(op.result, ())))
        on = {clock[op.result] for op in members}
        kernels.append(Kernel(i, on.pop() if len(on) == 1 else None, lv, tuple(members), reads, writes,
                              tuple((op.result, region_of[op.result]) for op in members)))
    sources = tuple(op for op in module.ops if opreg.REGISTRY[op.name].kind == "source")
    return Plan(module, regs, tuple(kernels), per_tick, sources, clock, unaligned)
