"""Many strategies as one module: every NodeID once (docs/design.md "Shared execution").

A NodeID determines its value series, so the union of several compiled strategies is plain: walk
each module in order, keep the first op of every NodeID and point later readers at it.  Each
strategy's outputs are kept under ``<strategy>.<node>`` (strategies with the same name get ``#2``,
``#3``…), so one run of the union module hands every strategy its own rows.  ``shared`` records,
per strategy, which of its NodeIDs an earlier strategy already brought.

One exception: emission is per SDK node (its period, clock and declared inputs gate it), and a node
declaring another as input gates on *that node's* emissions, which the IR names by value.  When two
strategies emit one value differently (``m`` with period 5 in one, 50 in the other), the later one
gets its own copy of the op, so each strategy's nodes see their own ``m`` emit as they would alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from qmtl.ir.module import Module

from .compiled import CompiledStrategy


@dataclass(frozen=True)
class Member:
    """One strategy inside a union: its name there, its output names, and what it shares."""

    name: str
    compiled: CompiledStrategy
    outputs: dict[str, str]          # union output name → the strategy's own output name
    node_ids: tuple[str, ...]        # every NodeID of its module, in its order
    shared: dict[str, str] = field(default_factory=dict)  # NodeID → the strategy that brought it


@dataclass(frozen=True)
class Union:
    compiled: CompiledStrategy
    members: tuple[Member, ...]


def union(strategies: Sequence[CompiledStrategy], name: str = "replay",
          taken_names: set[str] | None = None) -> Union:
    """Merge ``strategies`` into one ``CompiledStrategy`` (see the module docstring); member names
    already in ``taken_names`` (another union of the same replay) are not reused."""
    value_of_id: dict[str, str] = {}   # NodeID → union value name
    owner: dict[str, str] = {}         # NodeID → member that brought it
    taken: set[str] = set()
    ops, outputs, members = [], [], []
    functions: dict[str, Any] = {}
    member_names: set[str] = taken_names if taken_names is not None else set()
    gates: dict[str, set[tuple]] = {}  # union value → how the outputs naming it emit it
    for compiled in strategies:
        member = _unique(compiled.name, member_names)
        rename: dict[str, str] = {}
        shared: dict[str, str] = {}
        naming: dict[str, list] = {}
        for out in compiled.module.outputs:
            naming.setdefault(out.value, []).append(out)
        for op in compiled.module.ops:
            if not op.node_id:
                raise ValueError(f"strategy {compiled.name}: op %{op.result} has no NodeID (compile it first)")
            if op.node_id in value_of_id:
                known = value_of_id[op.node_id]
                mine = {_emission(o, rename) for o in naming.get(op.result, ())}
                if not gates[known] or mine <= gates[known]:
                    rename[op.result] = known
                    shared[op.node_id] = owner[op.node_id]
                    gates[known] |= mine
                    continue
                # A node of this strategy emits the value another way (another period, other
                # declared inputs): the value is the same, but nodes reading "that node" gate on its
                # emissions, which are per node: it gets a value of its own (computed again).
            new = _unique(op.result if _spelled(op.result) not in taken else f"{member}.{op.result}", taken)
            rename[op.result] = new
            value_of_id.setdefault(op.node_id, new)
            owner.setdefault(op.node_id, member)
            ops.append(replace(op, result=new, operands=tuple(rename[v] for v in op.operands)))
            gates.setdefault(new, set()).update(_emission(o, rename) for o in naming.get(op.result, ()))
        names: dict[str, str] = {}
        for out in compiled.module.outputs:
            full = f"{member}.{out.name}"
            names[full] = out.name
            outputs.append(replace(out, name=full, value=rename[out.value],
                                   inputs=tuple(rename[v] for v in out.inputs)))
        functions.update(compiled.functions)
        members.append(Member(member, compiled, names, tuple(op.node_id for op in compiled.module.ops),
                              shared))
    module = Module(name, tuple(ops), tuple(outputs))
    merged = CompiledStrategy(name, module, functions=functions,
                              sdk_nodes={f"{m.name}.{k}": v for m in members
                                         for k, v in m.compiled.sdk_nodes.items()},
                              output_owners={full: (m.name, own) for m in members for full, own in m.outputs.items()})
    return Union(merged, tuple(members))


def _emission(out: Any, rename: dict[str, str]) -> tuple:
    """What decides when a node emits its value: its window, clock and declared inputs."""
    return (out.period, out.interval, tuple(rename.get(v, v) for v in out.inputs))


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name#2``, ``name#3``…: unique even as a Python identifier (where every
    non-word character reads ``_``), which is how generated code spells a value."""
    candidate, n = name, 1
    while _spelled(candidate) in taken:
        n += 1
        candidate = f"{name}#{n}"
    taken.add(_spelled(candidate))
    return candidate


def _spelled(name: str) -> str:
    return re.sub(r"\W", "_", name)


def split_outputs(u: Union, outputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Union output name → frame, regrouped as member → its own output name → frame (a series
    node's column, named after the node, gets the strategy's own name back)."""
    return {m.name: {own: outputs[full].rename(columns={full: own}) for full, own in m.outputs.items()
                     if full in outputs} for m in u.members}

