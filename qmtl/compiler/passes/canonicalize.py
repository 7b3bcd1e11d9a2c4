"""canonicalize: one spelling per meaning, so equal computations get equal IR (and NodeIDs).

* attributes complete and normalised (``qmtl.compiler.passes.attrs``);
* commutative ops' operands ordered by the operands' NodeIDs — a structural key that does not depend
  on value names or definition order, so ``a + b`` and ``b + a`` print and compare the same;
* algebraic identities that are exact in IEEE arithmetic (no rounding can differ), rewritten only
  inside one SDK node (see ``_may_rewrite``): ``column(make_frame(..., c=x), name=c)`` → ``x``,
  ``astype(x){dtype=D}`` on a ``series<D>`` → ``x``, ``neg(neg(x))`` → ``x``, ``not(not(b))`` → ``b``
  for a bool ``b``, ``abs(abs(x))`` → ``abs(x)``.  ``sub(x, const c)`` and the like stay as written.

Ops this pass cannot interpret (unknown name, unhashable attributes) are passed through untouched:
the verifier, not this pass, reports them.
"""

from __future__ import annotations

import math

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op

from .attrs import canonical_attrs
from .base import PassContext
from .graph import drop_newly_dead, output_values, rename_operands, rename_outputs, resolve
from .structural_ids import IdTable, restamp


def run(module: Module, ctx: PassContext) -> Module:
    table = IdTable()
    renames: dict[str, str] = {}
    outputs = output_values(module)
    kept: list[Op] = []
    defined: dict[str, Op] = {}
    for op in module.ops:
        op = rename_operands(op, renames)
        attrs, problems = canonical_attrs(op)
        for diag in problems:
            ctx.report(diag)
        if not _same_spelling(attrs, op.attrs):
            op = op.with_(attrs=attrs)
        op = _order_operands(op, table)
        replacement = _identity_of(op, defined) if _may_rewrite(op, defined, outputs) else None
        if replacement is not None:
            renames[op.result] = replacement
            continue
        table.add(op)
        defined[op.result] = op
        kept.append(op)
    result = module.with_(ops=tuple(kept), outputs=rename_outputs(module.outputs, renames))
    if renames:  # only a rewrite can leave ops without users (reordering operands cannot)
        result = drop_newly_dead(module, result)
    return restamp(module, result)


def _same_spelling(a: object, b: object) -> bool:
    """Equal *and* spelled alike: ``1 == 1.0 == True`` in Python, but not in a NodeID, so canonical
    attributes replace the op's unless every value also has the same type (keeping the same object
    spares a copy and lets later passes reuse its memoised NodeID)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same_spelling(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) or (a != a and b != b)  # type: ignore[arg-type]
    return a == b


def _order_operands(op: Op, table: IdTable) -> Op:
    opdef = opreg.REGISTRY.get(op.name)
    if opdef is None or not opdef.commutative:
        return op
    keys = [table.key(s) for s in op.operands]
    if not all(table.is_structural(k) for k in keys):
        return op
    ordered = tuple(s for _, s in sorted(zip(keys, op.operands), key=lambda pair: pair[0]))
    return op if ordered == op.operands else op.with_(operands=ordered)


def _may_rewrite(op: Op, defined: dict[str, Op], outputs: set[str]) -> bool:
    """Identities never cross an SDK node boundary: an output's value is what downstream nodes (and
    look-back inference) see, so neither the output nor an operand that is an output is rewritten."""
    return op.result not in outputs and all(s in defined and s not in outputs for s in op.operands)


def _identity_of(op: Op, defined: dict[str, Op]) -> str | None:
    """The existing value ``op`` is exactly equal to, or None."""
    if op.name == "column":
        return _column_of_frame(op, defined)
    if op.name == "astype":
        src = defined[op.operands[0]]
        same = src.type.kind == "series" and src.type.dtype == op.attr("dtype") == op.type.dtype
        return src.result if same and op.type == src.type else None
    if op.name in ("neg", "not") and len(op.operands) == 1:
        inner = defined[op.operands[0]]
        if inner.name == op.name and len(inner.operands) == 1 and inner.operands[0] in defined:
            x = defined[inner.operands[0]]
            if x.type == op.type and (op.name == "neg" or x.type.dtype == "bool"):
                return x.result
    if op.name == "abs" and len(op.operands) == 1:
        inner = defined[op.operands[0]]
        if inner.name == "abs" and inner.type == op.type:
            return inner.result
    return None


def _column_of_frame(op: Op, defined: dict[str, Op]) -> str | None:
    frame = defined[op.operands[0]] if len(op.operands) == 1 else None
    if frame is None or frame.name != "make_frame":
        return None
    columns = frame.attr("columns")
    name = op.attr("name")
    if not isinstance(columns, tuple) or list(columns).count(name) != 1 \
            or len(columns) != len(frame.operands):
        return None
    picked = frame.operands[columns.index(name)]
    source = defined.get(picked)
    return picked if source is not None and source.type == op.type else None
