"""cse: ops with the same structural identity become one.

Identity is NodeID identity (op name, identity attributes, clock, period where it matters, code hash,
operands' identities — sorted for commutative ops), so two ``rolling_mean(%x){window=5}`` traced in
different SDK nodes merge, and CSE can never merge what the gateway would keep apart or vice versa.
The first definition is kept (with its location); later uses and outputs are renamed to it.
"""

from __future__ import annotations

from qmtl.ir.module import Module, Op

from .base import PassContext
from .graph import drop_newly_dead, rename_operands, rename_outputs
from .structural_ids import IdTable


def run(module: Module, ctx: PassContext) -> Module:
    table = IdTable()
    first: dict[str, Op] = {}  # NodeID → the op that defines it first
    renames: dict[str, str] = {}
    kept: list[Op] = []
    for op in module.ops:
        op = rename_operands(op, renames)
        key = table.add_and_key(op)
        # equal NodeIDs imply equal types in a valid module; a mismatch is the verifier's to report
        if table.is_structural(key) and key in first and first[key].type == op.type:
            renames[op.result] = first[key].result
            continue
        first.setdefault(key, op)
        kept.append(op)
    result = module.with_(ops=tuple(kept), outputs=rename_outputs(module.outputs, renames))
    return drop_newly_dead(module, result) if renames else result

