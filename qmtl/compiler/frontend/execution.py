"""Lowering the execution node family (``qmtl.runtime.sdk.execution``) to its IR ops.

Each stage is one op over the value it acts on and the price columns it needs, read from its price
``StreamInput`` with ordinary ``column`` ops (CSE merges them with the strategy's own reads).  The
value acted on must be one number per bar: a series, a one-column frame, a frame's ``signal`` or
``position`` column, or an opaque node's number (``value_of``).
"""

from __future__ import annotations

from qmtl.ir.module import Loc

from .builder import LoweringError, ModuleBuilder

#: a frame with several columns is read through the first of these it has
POSITION_COLUMNS = ("signal", "position")
#: the price fields each op reads after its position operand
PRICE_FIELDS = {"risk_control": ("close",), "timing_gate": (), "execution": ("open", "close")}


def lower_stage(builder: ModuleBuilder, op: str, attrs: dict, result: str, acted_on: str, price: str,
                loc: Loc | None, cap: dict | None = None) -> str:
    """Emit ``%result = op(position, price fields...)`` and return ``result``.

    With ``cap`` (RiskControl's ``max_total_notional``), the op's per-instrument target is followed
    by ``%result = total_cap(target, close)``: the node's value is the capped target, and a strategy
    without the cap keeps exactly the ops (and NodeIDs) it had."""
    position = _as_series(builder, acted_on, result, loc)
    fields = tuple(builder.emit(builder.fresh(result), "column", (price,), {"name": f}, loc)
                   for f in PRICE_FIELDS[op])
    if cap is None:
        return builder.emit(result, op, (position, *fields), attrs, loc)
    target = builder.emit(builder.fresh(result), op, (position, *fields), attrs, loc)
    return builder.emit(result, "total_cap", (target, fields[0]), cap, loc)


def _as_series(builder: ModuleBuilder, value: str, owner: str, loc: Loc | None) -> str:
    t = builder.types[value]
    if t.kind == "series":
        return value
    if t.kind == "opaque":
        return builder.emit(builder.fresh(owner), "value_of", (value,), {}, loc)
    if t.kind == "frame":
        names = [c for c, _ in t.columns]
        pick = names[0] if len(names) == 1 else next((c for c in POSITION_COLUMNS if c in names), None)
        if pick is not None:
            return builder.emit(builder.fresh(owner), "column", (value,), {"name": pick}, loc)
        raise LoweringError("E106", f"acts on a frame with columns {names}: give it one column, or name "
                            f"the column {' or '.join(POSITION_COLUMNS)}", loc)
    raise LoweringError("E106", f"acts on a value of type {t}, not a series of positions or signals", loc)
