"""The execution plan of a module: which ops run in which fused Numba kernel, in which order.

Every op except the opaque ``py_call`` runs in a kernel (docs/design.md "Execution").  A value's
*level* is the number of ``py_call`` ops on its longest path from a source; a batch runs level 0's
kernels, then level 1's ``py_call`` steps (Python, per tick), then level 1's kernels, and so on, so a
kernel never waits on Python and traced nodes downstream of an opaque one still run in kernels.
Because a NodeID determines its values, each op is computed once however many nodes hold it; the
SDK nodes only decide *emission* (``Gate``), which the kernels compute next to the values.

A level with many ops is cut into several kernels of at most ``MAX_KERNEL_OPS`` ops (one huge
function makes LLVM slow); values crossing a kernel boundary go through per-batch buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.ir import ops as opreg
from qmtl.ir.clocks import clocks
from qmtl.ir.clocks import node_clock as clock_of_node
from qmtl.ir.module import Module, Op
from qmtl.ir.regions import regions_in_dependency_order

#: ops per generated kernel: small enough that Numba compiles each in well under a second
MAX_KERNEL_OPS = 40


@dataclass(frozen=True)
class Gate:
    """One SDK node's emission rule: it emits at a tick where every input on its clock emitted and
    every input has emitted ``period`` entries, and its value has an entry (its own, or a slower
    value's last closed one)."""

    index: int
    name: str
    value: str
    period: int
    clock: int
    inputs: tuple[str, ...]
    fast: tuple[bool, ...]  # per input: on the node's clock (must emit at the tick)
    value_slower: bool


@dataclass(frozen=True)
class Kernel:
    """One jitted function: ops and node gates interleaved in dependency order (a gate comes after
    its value and after the gates of its input nodes)."""

    index: int
    level: int
    items: tuple[Op | Gate, ...]

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(x for x in self.items if isinstance(x, Op))

    @property
    def gates(self) -> tuple[Gate, ...]:
        return tuple(x for x in self.items if isinstance(x, Gate))


@dataclass(frozen=True)
class PyStep:
    """A value the runtime fills in Python, and the ``column`` ops reading its rows (numbers for
    kernels): a ``py_call`` evaluated per tick, or (``stored``) a value read from the artifact store."""

    level: int
    op: Op
    columns: tuple[Op, ...]

    @property
    def stored(self) -> bool:
        return self.op.name == "stored"


@dataclass(frozen=True)
class Plan:
    module: Module
    steps: tuple[Kernel | PyStep, ...]
    gates: tuple[Gate, ...]
    sources: tuple[Op, ...]
    clock: dict[str, int | None]
    exported: frozenset[str]  # values written to per-batch buffers (read by another step or emitted)

    @property
    def kernels(self) -> tuple[Kernel, ...]:
        return tuple(s for s in self.steps if isinstance(s, Kernel))

    @property
    def py_steps(self) -> tuple[PyStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, PyStep))

    def gate_of(self) -> dict[str, Gate]:
        """node value → the gate of the node that emits it."""
        return {g.value: g for g in self.gates}

    def step_of(self) -> dict[str, int]:
        """value → index of the step that computes it (sources: -1)."""
        out = {op.result: -1 for op in self.sources}
        for i, s in enumerate(self.steps):
            if isinstance(s, PyStep):
                out[s.op.result] = i
                out.update({c.result: i for c in s.columns})
            else:
                out.update({op.result: i for op in s.ops})
        return out


def levels(module: Module) -> dict[str, int]:
    """value → how many ``py_call`` ops lie on its longest path from a source (iterative, so a chain
    of any depth is fine)."""
    level: dict[str, int] = {}
    for op in module.ops:
        base = max((level.get(s, 0) for s in op.operands), default=0)
        # a cross-instrument op is a boundary too: its value exists only once every key ran up to it
        level[op.result] = base + 1 if op.name == "py_call" or opreg.REGISTRY[op.name].kind == "cross" else base
    return level


def fills_in_python(op: Op) -> bool:
    """Values the runtime writes into their buffers itself: ``py_call`` rows, stored values and
    cross-instrument values (``total_cap``: computed over every key between two passes of the
    kernels, ``qmtl.runtime.cross``, then read like a stored value)."""
    return op.name in ("py_call", "stored") or opreg.REGISTRY[op.name].kind == "cross"


def is_kernel_op(op: Op, ops: dict[str, Op]) -> bool:
    """Ops a kernel computes: everything but sources, constants (inlined where read), values the
    runtime fills (``py_call``, ``stored``) and the columns of Python rows (read out of them)."""
    kind = opreg.REGISTRY[op.name].kind
    if kind in ("source", "opaque", "stored", "cross") or op.name == "const":
        return False
    return not (op.name in ("column", "value_of") and ops[op.operands[0]].type.kind == "opaque"
                and fills_in_python(ops[op.operands[0]]))


def plan(module: Module) -> Plan:
    ops = module.op_map()
    clock = clocks(module)
    level = levels(module)
    gates = _gates(module, clock)
    gate_level: dict[str, int] = {}
    by_value = {g.value: g for g in gates}
    for g in gates:  # dependency order: an input node's gate level is known
        lv = level.get(g.value, 0)
        for v in g.inputs:
            if v in by_value and by_value[v].name in gate_level:
                lv = max(lv, gate_level[by_value[v].name])
            elif v in level and ops[v].name != "py_call" and opreg.REGISTRY[ops[v].name].kind != "source":
                lv = max(lv, level[v])
        gate_level[g.name] = lv
    top = max(list(level.values()) + list(gate_level.values()) + [0])
    steps: list[Kernel | PyStep] = []
    for lv in range(top + 1):
        for op in module.ops:
            if fills_in_python(op) and level[op.result] == lv:
                # columns read out of Python rows; a stored frame's columns are buffers kernels read
                cols = tuple(c for c in module.ops if c.name in ("column", "value_of")
                             and c.operands[0] == op.result and not is_kernel_op(c, ops))
                steps.append(PyStep(lv, op, cols))
        body = [op for op in module.ops if level[op.result] == lv and is_kernel_op(op, ops)]
        mine = [g for g in gates if gate_level[g.name] == lv]
        if not body and not mine:
            continue
        items = _interleave(body, mine)
        for i in range(0, len(items), MAX_KERNEL_OPS):
            steps.append(Kernel(len([s for s in steps if isinstance(s, Kernel)]), lv,
                                tuple(items[i:i + MAX_KERNEL_OPS])))
    sources = tuple(op for op in module.ops if opreg.REGISTRY[op.name].kind == "source")
    draft = Plan(module, tuple(steps), gates, sources, clock, frozenset())
    return Plan(module, draft.steps, gates, sources, clock, _exported(draft))


def _interleave(body: list[Op], gates: list[Gate]) -> list[Op | Gate]:
    """Ops in module order, each gate right after the later of its value and its input nodes' gates,
    so cutting the list anywhere keeps every read after its write."""
    position = {op.result: i for i, op in enumerate(body)}
    anchor: dict[str, float] = {}
    by_value = {g.value: g for g in gates}
    for g in gates:  # dependency order
        after = [position.get(g.value, -1)]
        after += [anchor[by_value[v].name] for v in g.inputs if v in by_value and by_value[v].name in anchor]
        after += [position[v] for v in g.inputs if v in position]
        anchor[g.name] = max(after) + 0.5
    keyed: list[tuple[float, int, Op | Gate]] = [(i, 0, op) for i, op in enumerate(body)]
    keyed += [(anchor[g.name], 1 + g.index, g) for g in gates]
    return [x for _, _, x in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _gates(module: Module, clock: dict[str, int | None]) -> tuple[Gate, ...]:
    gates = []
    for region in regions_in_dependency_order(module):
        inputs = region.gate_inputs
        node_clock = clock_of_node(inputs, clock, region.interval)
        fast = tuple((clock.get(v) or node_clock) == node_clock for v in inputs)
        value_clock = clock.get(region.value) or node_clock
        gates.append(Gate(len(gates), region.name, region.value, region.period, node_clock, inputs, fast,
                          value_clock > node_clock))
    return tuple(gates)


def _exported(p: Plan) -> frozenset[str]:
    """Values another step reads, or that a node emits (the runtime collects them from buffers)."""
    step = p.step_of()
    out = {g.value for g in p.gates if g.value in step and step[g.value] >= 0}
    for i, s in enumerate(p.steps):
        reads = (s.op.operands if isinstance(s, PyStep) else
                 [v for op in s.ops for v in op.operands] + [v for g in s.gates for v in (g.value,)])
        for v in reads:
            if step.get(v, -1) >= 0 and step[v] != i:
                out.add(v)
    return frozenset(out)
