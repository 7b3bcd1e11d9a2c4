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
from qmtl.ir.clocks import clock_of
from qmtl.ir.nodeid import op_node_id

_UNHASHABLE = "unhashable:"


class IdTable:
    """value name → NodeID (or a unique placeholder) for the ops added so far, in definition order.

    Keys are computed when first asked for (with everything upstream of them), so a pass that needs
    the identity of a few values — canonicalize orders only commutative operands — hashes only those.
    """

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.clock: dict[str, int | None] = {}
        self._ops: dict[str, Op] = {}

    def add(self, op: Op) -> None:
        """Record ``op`` (defined after every op added before it); its key is computed on demand."""
        if op.result in self._ops:
            # a redefinition (a broken module, E101): key everything before it against the earlier
            # definitions, exactly as if each op had been keyed when it was added
            for value in list(self._ops):
                self.key(value)
            self.ids.pop(op.result)
        self._ops[op.result] = op

    def add_and_key(self, op: Op) -> str:
        self.add(op)
        return self.key(op.result)

    def key(self, value: str) -> str:
        """The identity key of an added value; an unknown name keys as itself, so it stays distinct."""
        found = self.ids.get(value)
        if found is not None:
            return found
        if value not in self._ops:
            return _UNHASHABLE + "undefined:" + value
        for pending in self._unkeyed_upstream(value):
            op = self._ops[pending]
            self.clock[pending] = self._clock_of(op)
            self.ids[pending] = self._node_id(op)
        return self.ids[value]

    def _unkeyed_upstream(self, value: str) -> list[str]:
        """``value`` and its not-yet-keyed ancestors, operands before users (iterative: chains of
        thousands of ops must not hit the recursion limit)."""
        order: list[str] = []
        state: dict[str, bool] = {}  # False: expanding, True: done
        stack: list[tuple[str, bool]] = [(value, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = True
                order.append(name)
                continue
            if name in state or name in self.ids or name not in self._ops:
                continue
            state[name] = False
            stack.append((name, True))
            for src in reversed(self._ops[name].operands):
                if src not in state and src not in self.ids and src in self._ops:
                    stack.append((src, False))
        return order

    @staticmethod
    def is_structural(key: str) -> bool:
        """True if ``key`` is a real NodeID (safe to merge or sort by), not a placeholder."""
        return not key.startswith(_UNHASHABLE)

    def _clock_of(self, op: Op) -> int | None:
        return clock_of(op, (self.clock.get(s) for s in op.operands))

    def _node_id(self, op: Op) -> str:
        inputs = [self.ids.get(s) or self.key(s) for s in op.operands]
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
        key = table.add_and_key(op)
        stamped.append(op.with_(node_id=key if IdTable.is_structural(key) else None))
    return after.with_(ops=tuple(stamped))
