"""Emitting raw SSA: ops appended in definition order, each typed by the op registry on the way in.

The builder also gives every value's raw NodeID, because an opaque function's ``code_hash`` names the
upstream nodes it closes over by their NodeIDs.  IDs are hashed on demand, over the prefix of ops not
hashed yet: most strategies never ask, and hashing every op as it is emitted cost as much as the
rest of tracing.
"""

from __future__ import annotations

import re
from typing import Any

from qmtl.ir import ops as opreg
from qmtl.ir.clocks import clock_of
from qmtl.ir.module import Loc, Op, make_attrs
from qmtl.ir.nodeid import op_node_id
from qmtl.ir.types import Type


class LoweringError(Exception):
    """The user's expression does not type-check (frame in arithmetic, ``~`` on numbers, …)."""

    def __init__(self, code: str, message: str, loc: Loc | None):
        self.code, self.message, self.loc = code, message, loc
        super().__init__(message)


_BOOL_ONLY = {"not", "and", "or"}


class ModuleBuilder:
    """Appends ops, checks them against the registry, and names values ``%node`` / ``%node.N``."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.types: dict[str, Type] = {}
        self._clock: dict[str, int | None] = {}
        self._ids: dict[str, str] = {}
        self._hashed = 0  # ops[:_hashed] have their clock and NodeID in _clock / _ids
        self._index: dict[str, int] = {}
        self._counters: dict[str, int] = {}

    def emit(self, result: str, name: str, operands: tuple[str, ...], attrs: dict[str, Any],
             loc: Loc | None) -> str:
        """Append ``%result = name(operands) {attrs}`` and return ``result``."""
        opdef = opreg.REGISTRY.get(name)
        if opdef is None:
            raise LoweringError("E104", f"unknown op {name!r}", loc)
        arity = len(opdef.operands)
        if (len(operands) < arity) if opdef.variadic else (len(operands) != arity):
            raise LoweringError("E105", f"{name} takes {arity} operand(s), got {len(operands)}", loc)
        types = tuple(self.types[o] for o in operands)
        for i, t in enumerate(types):
            if not opdef.accepts(i, t) or (name in _BOOL_ONLY and t.dtype != "bool"):
                want = "a bool series" if name in _BOOL_ONLY else _allowed(opdef, i)
                raise LoweringError("E106", f"{name}: operand {i + 1} must be {want}, got {t}", loc)
        try:
            result_type = opdef.result(types, attrs)
        except (TypeError, KeyError, ValueError) as err:
            raise LoweringError("E106", f"{name}: {err}", loc) from None
        op = Op(result, name, operands, make_attrs(attrs), result_type, loc)
        self._index[result] = len(self.ops)
        self.ops.append(op)
        self.types[result] = result_type
        return result

    def node_id(self, value: str) -> str:
        """The raw (pre-canonicalisation) NodeID of a value emitted so far."""
        if value not in self._ids:
            self._hash_through(self._index[value])
        return self._ids[value]

    def _hash_through(self, last: int) -> None:
        for op in self.ops[self._hashed:last + 1]:
            clock = clock_of(op, (self._clock.get(s) for s in op.operands))
            self._clock[op.result] = clock  # type: ignore[assignment]
            self._ids[op.result] = op_node_id(op, clock, [self._ids[s] for s in op.operands])  # type: ignore[arg-type]
        self._hashed = max(self._hashed, last + 1)

    def fresh(self, base: str) -> str:
        """The next intermediate name under a node: ``base.1``, ``base.2`` …"""
        n = self._counters.get(base, 0) + 1
        self._counters[base] = n
        return f"{base}.{n}"

    def mark(self) -> int:
        return len(self.ops)

    def truncate(self, mark: int) -> set[str]:
        """Drop every op emitted after ``mark`` (a traced function that failed half-way)."""
        dropped = {op.result for op in self.ops[mark:]}
        del self.ops[mark:]
        self._hashed = min(self._hashed, mark)
        for value in dropped:
            self.types.pop(value, None)
            self._clock.pop(value, None)
            self._ids.pop(value, None)
            self._index.pop(value, None)
        return dropped


def value_name(name: str, taken: set[str]) -> str:
    """A node name as an SSA value name (``[A-Za-z_][A-Za-z0-9_.]*``), unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "node"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "n_" + base
    out, k = base, 1
    while out in taken:
        k += 1
        out = f"{base}_{k}"
    taken.add(out)
    return out


def _allowed(opdef: opreg.OpDef, position: int) -> str:
    spec = opdef.operands[min(position, len(opdef.operands) - 1)]
    return " or ".join(spec.split("|"))
