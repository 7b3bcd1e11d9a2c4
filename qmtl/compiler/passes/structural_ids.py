"""NodeIDs computed op by op while a pass rewrites a module.

``qmtl.ir.nodeid.node_ids`` hashes a finished module.  A rewriting pass needs the same identity for
the ops it has emitted *so far* (canonicalize orders commutative operands by it, CSE merges by it), and
it must not crash on ops the verifier will reject (unknown op name, an attribute with no canonical
form).  ``IdTable`` gives exactly NodeID identity for well-formed ops and a unique, never-shared key
for anything else, so a broken op is never merged with or ordered by a guess.
"""

from __future__ import annotations

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op
from qmtl.ir.nodeid import op_node_id

_UNHASHABLE = "unhashable:"


class IdTable:
    """value name → NodeID (or a unique placeholder) for the ops added so far, in definition order."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.clock: dict[str, int | None] = {}

    def add(self, op: Op) -> str:
        """Hash ``op`` against the operands already added; returns (and records) its identity key."""
        self.clock[op.result] = self._clock_of(op)
        key = self._node_id(op)
        self.ids[op.result] = key
        return key

    def key(self, value: str) -> str:
        """The identity key of an added value; an unknown name keys as itself, so it stays distinct."""
        return self.ids.get(value, _UNHASHABLE + "undefined:" + value)

    @staticmethod
    def is_structural(key: str) -> bool:
        """True if ``key`` is a real NodeID (safe to merge or sort by), not a placeholder."""
        return not key.startswith(_UNHASHABLE)

    def _clock_of(self, op: Op) -> int | None:
        opdef = opreg.REGISTRY.get(op.name)
        if opdef is not None and opdef.kind == "source":
            interval = op.attr("interval")
            return interval if isinstance(interval, int) and not isinstance(interval, bool) else None
        ins = [c for c in (self.clock.get(s) for s in op.operands) if c is not None]
        return max(ins) if ins else None

    def _node_id(self, op: Op) -> str:
        inputs = [self.key(s) for s in op.operands]
        if op.name not in opreg.REGISTRY or not all(self.is_structural(i) for i in inputs):
            return _UNHASHABLE + op.result
        try:
            return op_node_id(op, self.clock[op.result], inputs)
        except (TypeError, ValueError):
            return _UNHASHABLE + op.result


def restamp(before: Module, after: Module) -> Module:
    """Keep printed NodeIDs truthful: if ``before`` carried them, recompute them on ``after``.

    A rewrite changes the identity of the ops it touches and of everything downstream, so a stale
    ``node_id`` would make the verifier report E108 on a module that is in fact fine.  Ops whose
    identity cannot be computed (the verifier reports why) get no ``node_id``."""
    if after is before or all(op.node_id is None for op in before.ops):
        return after
    table = IdTable()
    stamped = []
    for op in after.ops:
        key = table.add(op)
        stamped.append(op.with_(node_id=key if IdTable.is_structural(key) else None))
    return after.with_(ops=tuple(stamped))
