"""What changed between two versions of a module, keyed by NodeID (``qmtl diff``).

A NodeID determines a value (docs/design.md "Identity"), so an op whose NodeID exists on both sides
is unchanged wherever it sits and whatever it is called; source locations, value names and
declaration order never count.  The remaining ops are paired so a change reads as one:

1. in module order, a new op is paired with an unpaired old op of the same op name whose operands
   are the old partners of its own operands (the same place in the graph);
2. failing that, with an unpaired old op of the same op name and value name.

A pair whose parameters (attributes, result type) differ is *changed* — the parameters say which; a
pair whose parameters are equal changed NodeID only because an operand did: it is *invalidated*
(its stored values and running state no longer apply).  Unpaired ops are *added* / *removed*.

SDK nodes (outputs) are matched by name: a node is *changed* when an op of its own region changed or
was added, *invalidated* when its NodeID moved only because of a node upstream, and *renamed* when a
removed and an added node carry one NodeID.  A change of ``period`` alone keeps the NodeID (it gates
emission, it never changes a value) and is reported as a change of emission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .module import AttrValue, Module, Op
from .printer import print_type, print_value
from .regions import node_regions

#: attributes that describe an op but never its values (not identity): not compared
_NOT_PARAMS = frozenset({"reason", "fn"})


@dataclass(frozen=True, slots=True)
class ParamChange:
    key: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.key} {self.old} → {self.new}"


@dataclass(frozen=True, slots=True)
class OpChange:
    """One op that is not the same on both sides.  ``value`` is its name on the new side (the old
    one for a removed op); ``nodes`` the SDK nodes computing it there; ``because`` (invalidated) the
    operands whose NodeIDs moved."""

    status: str  # added | removed | changed | invalidated
    value: str
    op: str
    old_id: str | None
    new_id: str | None
    nodes: tuple[str, ...] = ()
    params: tuple[ParamChange, ...] = ()
    because: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "value": self.value, "op": self.op, "old_id": self.old_id,
                "new_id": self.new_id, "nodes": list(self.nodes),
                "params": [{"key": p.key, "old": p.old, "new": p.new} for p in self.params],
                "because": list(self.because)}


@dataclass(frozen=True, slots=True)
class NodeChange:
    """One SDK node: ``status`` added | removed | renamed | changed | invalidated | emission."""

    name: str
    status: str
    old_id: str | None
    new_id: str | None
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "old_id": self.old_id, "new_id": self.new_id,
                "details": list(self.details)}


@dataclass(frozen=True)
class ModuleDiff:
    old: str
    new: str
    nodes: tuple[NodeChange, ...] = ()
    ops: tuple[OpChange, ...] = ()
    unchanged_ops: int = 0
    unchanged_nodes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.nodes and not self.ops

    def count(self, status: str) -> int:
        return sum(1 for n in self.nodes if n.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "nodes": [n.to_dict() for n in self.nodes],
                "ops": [o.to_dict() for o in self.ops], "unchanged_ops": self.unchanged_ops,
                "unchanged_nodes": list(self.unchanged_nodes)}


def diff_modules(old: Module, new: Module) -> ModuleDiff:
    """The differences from ``old`` to ``new``; both must carry NodeIDs (``with_node_ids``)."""
    if any(op.node_id is None for op in (*old.ops, *new.ops)):
        raise ValueError("diff_modules needs NodeIDs on every op (qmtl.ir.nodeid.with_node_ids)")
    partner = _pair(old, new)
    old_ops, new_ops = old.op_map(), new.op_map()
    old_owner, new_owner = _owners(old), _owners(new)
    changes: dict[str, OpChange] = {}  # new value (or old value for removed) → change
    unchanged = 0
    for op in new.ops:
        before = partner.get(op.result)
        if before is None:
            changes[op.result] = OpChange("added", op.result, op.name, None, op.node_id,
                                          new_owner.get(op.result, ()))
            continue
        if before.node_id == op.node_id:
            unchanged += 1
            continue
        params = _params(before, op)
        if params:
            changes[op.result] = OpChange("changed", op.result, op.name, before.node_id, op.node_id,
                                          new_owner.get(op.result, ()), params)
        else:
            moved = tuple(v for v in op.operands if v in changes)
            changes[op.result] = OpChange("invalidated", op.result, op.name, before.node_id, op.node_id,
                                          new_owner.get(op.result, ()), because=moved)
    paired_old = {o.result for o in partner.values()}
    removed = [OpChange("removed", o.result, o.name, o.node_id, None, old_owner.get(o.result, ()))
               for o in old.ops if o.result not in paired_old]
    op_changes = tuple(changes.values()) + tuple(removed)
    nodes, same = _node_changes(old, new, old_ops, new_ops, changes, node_regions(new))
    return ModuleDiff(old.name, new.name, nodes, op_changes, unchanged, same)


def _pair(old: Module, new: Module) -> dict[str, Op]:
    """new value → its old counterpart (see the module docstring)."""
    by_id: dict[str, Op] = {}
    for o in old.ops:
        by_id.setdefault(o.node_id, o)
    partner: dict[str, Op] = {}
    used: set[str] = set()
    for op in new.ops:
        o = by_id.get(op.node_id)
        if o is not None and o.result not in used:
            partner[op.result] = o
            used.add(o.result)
    by_place: dict[tuple, list[Op]] = {}
    by_name: dict[tuple[str, str], Op] = {}
    for o in old.ops:
        by_place.setdefault((o.name, o.operands), []).append(o)
        by_name[(o.name, o.result)] = o
    for op in new.ops:
        if op.result in partner:
            continue
        if all(v in partner for v in op.operands):
            place = (op.name, tuple(partner[v].result for v in op.operands))
            found = next((o for o in by_place.get(place, ()) if o.result not in used), None)
        else:
            found = None
        if found is None:
            o = by_name.get((op.name, op.result))
            found = o if o is not None and o.result not in used else None
        if found is not None:
            partner[op.result] = found
            used.add(found.result)
    return partner


def _params(old: Op, new: Op) -> tuple[ParamChange, ...]:
    a = {k: v for k, v in old.attrs if k not in _NOT_PARAMS}
    b = {k: v for k, v in new.attrs if k not in _NOT_PARAMS}
    out = [ParamChange(k, _show(k, a.get(k)), _show(k, b.get(k)))
           for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if old.type != new.type:
        out.append(ParamChange("type", print_type(old.type), print_type(new.type)))
    return tuple(out)


def _show(key: str, value: AttrValue) -> str:
    if value is None:
        return "(none)"
    if key == "code_hash" and isinstance(value, str):
        return value[:19]  # the function's code changed: the prefix tells two versions apart
    return print_value(value)


def _owners(module: Module) -> dict[str, tuple[str, ...]]:
    owners: dict[str, list[str]] = {}
    for name, region in node_regions(module).items():
        for op in region.ops:
            owners.setdefault(op.result, []).append(name)
    return {v: tuple(names) for v, names in owners.items()}


def _node_changes(old: Module, new: Module, old_ops: dict[str, Op], new_ops: dict[str, Op],
                  changes: dict[str, OpChange], regions: dict) -> tuple[tuple[NodeChange, ...], tuple[str, ...]]:
    before = {o.name: o for o in old.outputs}
    after = {o.name: o for o in new.outputs}
    old_id = {n: old_ops[o.value].node_id if o.value in old_ops else None for n, o in before.items()}
    new_id = {n: new_ops[o.value].node_id if o.value in new_ops else None for n, o in after.items()}
    gone = [n for n in before if n not in after]
    came = [n for n in after if n not in before]
    renamed: dict[str, str] = {}  # new name → old name
    for n in came:
        match = next((g for g in gone if old_id[g] == new_id[n] and g not in renamed.values()), None)
        if match is not None:
            renamed[n] = match
    result: list[NodeChange] = []
    same: list[str] = []
    for name, out in after.items():
        if name in renamed:
            result.append(NodeChange(name, "renamed", old_id[renamed[name]], new_id[name],
                                     (f"was {renamed[name]!r}",)))
            continue
        if name not in before:
            result.append(NodeChange(name, "added", None, new_id[name]))
            continue
        prev = before[name]
        emission = [str(ParamChange(k, str(getattr(prev, k)), str(getattr(out, k))))
                    for k in ("period", "kind") if getattr(prev, k) != getattr(out, k)]
        if old_id[name] == new_id[name]:
            if emission:
                result.append(NodeChange(name, "emission", old_id[name], new_id[name],
                                         tuple(emission) + ("NodeID unchanged: values are the same",)))
            else:
                same.append(name)
            continue
        own = [changes[op.result] for op in regions[name].ops
               if op.result in changes and changes[op.result].status in ("changed", "added")]
        if own:
            details = [f"%{c.value} {c.op}: " + (", ".join(map(str, c.params)) if c.status == "changed"
                                                 else "added") for c in own]
            knock_on = sum(1 for op in regions[name].ops
                           if op.result in changes and changes[op.result].status == "invalidated")
            if knock_on:
                details.append(f"{knock_on} op{'s' if knock_on != 1 else ''} after it invalidated")
            result.append(NodeChange(name, "changed", old_id[name], new_id[name], tuple(details + emission)))
        else:
            upstream = sorted({n for v in regions[name].inputs for n in _names_of(new, v)
                               if n in after and old_id.get(n) != new_id.get(n)})
            why = (f"upstream {', '.join(upstream)} changed",) if upstream else ("an input changed",)
            result.append(NodeChange(name, "invalidated", old_id[name], new_id[name], why + tuple(emission)))
    for name in gone:
        if name not in renamed.values():
            result.append(NodeChange(name, "removed", old_id[name], None))
    return tuple(result), tuple(same)


def _names_of(module: Module, value: str) -> list[str]:
    return [o.name for o in module.outputs if o.value == value]
