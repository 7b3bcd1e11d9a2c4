"""infer_lookback: how many bars each value needs, and whether each output declared enough (E109).

``qmtl.ir.lookback.required_periods`` defines the numbers (``OpDef.lookback`` summed along the longest
path, +1; a path stops at sources and at another output's value, because a downstream node sees its
upstream node's values, not their history).  This pass stores them in ``ctx.required_period`` and turns
a short declared ``period`` into an error that names the op chain responsible, e.g.
``node 'momentum_signal' declares period=5 but pct_change(1) → rolling_mean(5) needs 6 bars``.
"""

from __future__ import annotations

from qmtl.ir import ops as opreg
from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Module, Op, Output

from .base import PassContext
from .graph import output_values

# the attributes that say how far back an op reads, in the order they are shown
_SHOWN = ("window", "periods", "period", "fast", "slow", "signal")


def run(module: Module, ctx: PassContext) -> Module:
    from qmtl.ir.lookback import required_periods  # TODO(passes): top-level once qmtl/ir/lookback.py lands

    required = required_periods(module)
    ctx.required_period.update(required)
    for out in module.outputs:
        need = required.get(out.value)
        if need is not None and out.period < need:
            ctx.report(short_period_error(module, out, required))
    return module


def short_period_error(module: Module, out: Output, required: dict[str, int]) -> Diagnostic:
    op = module.op_map().get(out.value)
    need = required[out.value]
    chain = " → ".join(describe(o) for o in critical_path(module, out.value, required)
                       if _lookback(o) > 0)
    what = chain if chain else f"its value %{out.value}"
    bars = "bar" if need == 1 else "bars"
    return Diagnostic("E109", f"node '{out.name}' declares period={out.period} but {what} needs "
                              f"{need} {bars}", op.loc if op else None)


def critical_path(module: Module, value: str, required: dict[str, int]) -> list[Op]:
    """The ops on the longest look-back path into ``value``, source side first.

    At each op the operand needing the most bars is followed (the first one on a tie); the walk stops
    where the look-back rule stops: at sources and at other outputs' values."""
    ops = module.op_map()
    boundary = output_values(module) - {value}
    path: list[Op] = []
    current = ops.get(value)
    while current is not None:
        path.append(current)
        inner = [s for s in current.operands if s in ops and s not in boundary]
        if not inner:
            break
        current = ops[max(inner, key=lambda s: (required.get(s, 0), -inner.index(s)))]
    return path[::-1]


def describe(op: Op) -> str:
    """``rolling_mean(5)``, ``pct_change(1)``, ``macd(12, 26, 9)``: the op and how far back it reads."""
    shown = [str(op.attr(k)) for k in _SHOWN if op.attr(k) is not None]
    return f"{op.name}({', '.join(shown)})"


def _lookback(op: Op) -> int:
    opdef = opreg.REGISTRY.get(op.name)
    if opdef is None:
        return 0
    try:
        return int(opdef.lookback(op.attr_dict))
    except (KeyError, TypeError, ValueError):
        return 0
