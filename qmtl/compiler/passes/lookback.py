"""infer_lookback: how many bars each value needs, and whether each output declared enough (E109).

``qmtl.ir.lookback`` defines the numbers (``OpDef.lookback`` summed along the longest path, +1; a path
stops at sources and at the values of the node's DECLARED inputs, because a downstream node sees its upstream node's
values, not their history).  This pass stores them in ``ctx.required_period`` and turns a short
declared ``period`` into an error at the output value's location that names the op chain responsible:
``node 'momentum_signal' declares period=5 but pct_change(1) → rolling_mean(5) needs 6 bars``.
"""

from __future__ import annotations

from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.lookback import longest_path, op_lookback, output_required_period, required_periods
from qmtl.ir.module import Module, Op, Output
from qmtl.ir.ops import REGISTRY

from .base import PassContext

# the attributes that say how far back an op reads, in the order they are shown
_SHOWN = ("window", "periods", "period", "fast", "slow", "signal")


def run(module: Module, ctx: PassContext) -> Module:
    required = required_periods(module)
    ctx.required_period.update(required)
    for out in module.outputs:
        need = output_required_period(module, out) if out.value in required else None
        if need is not None and out.period < need:
            ctx.report(short_period_error(module, out, need))
    return module


def short_period_error(module: Module, out: Output, need: int) -> Diagnostic:
    ops = module.op_map()
    path = [ops[v] for v in longest_path(module, out.value, out) if v in ops]
    chain = " → ".join(describe(op) for op in path if op_lookback(op) > 0)
    what = chain if chain else f"its value %{out.value}"
    bars = "bar" if need == 1 else "bars"
    loc = ops[out.value].loc if out.value in ops else None
    return Diagnostic("E109", f"node '{out.name}' declares period={out.period} but {what} needs "
                              f"{need} {bars}", loc)


def describe(op: Op) -> str:
    """``rolling_mean(5)``, ``pct_change(1)``, ``macd(12, 26, 9)``: the op and how far back it reads."""
    opdef = REGISTRY.get(op.name)
    attrs = {**(opdef.defaults() if opdef else {}), **op.attr_dict}
    shown = [str(attrs[k]) for k in _SHOWN if attrs.get(k) is not None]
    return f"{op.name}({', '.join(shown)})"
