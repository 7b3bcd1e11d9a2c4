"""The clock rule, in one place: which interval a value ticks on (docs/design.md "Clocks").

A source ticks on its declared interval (and a value read from the artifact store on the clock it had).  Any other op ticks on the *fastest* clock among its
operands (constants have none): operands on that clock are joined on their timestamps (the union,
missing entries NaN — what pandas does with ts-indexed series), and operands on slower clocks are
read as of their last *closed* bar, so a 5m bar never shows before its close.  Mixing clocks is
therefore legal and never changes which clock a value has: the builder, the NodeID, the verifier and
the code generator all call ``clock_of``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from . import ops as opreg
from .module import Module, Op


def clock_of(op: Op, operand_clocks: Iterable[int | None]) -> int | None:
    """``op``'s interval in seconds given its operands' intervals (None: a constant)."""
    opdef = opreg.REGISTRY.get(op.name)
    if opdef is not None and opdef.kind in ("source", "stored"):  # a stored value keeps its clock
        interval = op.attr("interval")
        return interval if type(interval) is int else None
    ticking = [c for c in operand_clocks if c is not None]
    return min(ticking) if ticking else None


def clocks(module: Module) -> dict[str, int | None]:
    """value → its interval (None for constants), for every op of ``module``."""
    out: dict[str, int | None] = {}
    for op in module.ops:
        out[op.result] = clock_of(op, (out.get(s) for s in op.operands))
    return out


def is_slower(operand_clock: int | None, result_clock: int | None) -> bool:
    """Whether an operand is read as of its last closed bar (it ticks slower than the result)."""
    return operand_clock is not None and result_clock is not None and operand_clock > result_clock


def same_clock(operand_clock: int | None, result_clock: int | None) -> bool:
    """Whether an operand is joined on timestamps with the result (it ticks on the result's clock)."""
    return operand_clock is not None and operand_clock == result_clock


def close_times(ts, interval: int | None):
    """When each bar opening at ``ts`` on ``interval`` closes: the instant its value is known."""
    return ts + (interval or 0)


def node_clock(inputs: Iterable[str], clocks_: Mapping[str, int | None], declared: int) -> int:
    """The clock an SDK node fires on (docs/design.md "Emission"): the fastest of its inputs'
    clocks, an input without one (a constant) counting as the node's ``declared`` interval."""
    return min((clocks_.get(v) or declared for v in inputs), default=declared)


def fastest(clocks_: Mapping[str, int | None], values: Iterable[str]) -> int | None:
    ticking = [clocks_.get(v) for v in values if clocks_.get(v) is not None]
    return min(ticking) if ticking else None
