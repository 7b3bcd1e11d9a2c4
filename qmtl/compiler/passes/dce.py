"""dce: remove every op no output depends on, and tell the user about the ones they wrote (W201)."""

from __future__ import annotations

from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Module, Op

from .base import PassContext
from .graph import live_values


def run(module: Module, ctx: PassContext) -> Module:
    live = live_values(module)
    kept: list[Op] = []
    for op in module.ops:
        if op.result in live:
            kept.append(op)
        elif op.loc is not None:
            ctx.report(unused_warning(op))
    if len(kept) == len(module.ops):
        return module
    return module.with_(ops=tuple(kept))


def unused_warning(op: Op) -> Diagnostic:
    """``value %mom.4 = rolling_mean(%close) at momentum.py:14 is never used; removed``."""
    operands = ", ".join(f"%{s}" for s in op.operands)
    return Diagnostic("W201", f"value %{op.result} = {op.name}({operands}) at {op.loc} is never used; "
                              "removed", op.loc, severity="warning")
