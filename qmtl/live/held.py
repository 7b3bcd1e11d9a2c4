"""The held book of a live run with a portfolio-total cap (RiskControl ``max_total_notional``).

A backtest caps every instrument's targets in one step over the whole run, merged by close instant
(``qmtl.runtime.cross``).  A live run meets the instants one at a time, so what that step carries
from one instant to the next is kept here: per cap op and instrument, its held *capped* target
(units) and its last usable close — the book every instrument not deciding at an instant counts at
``|held| x close``, leaving the deciding ones a pro rata share of the rest (docs/design.md
"Execution nodes").  Each instant goes through the very step the backtest runs
(``cross.capped`` with ``cross.jitted_step``, the rule ``qmtl.ir.ops.total_cap_step``), started from
these arrays and leaving them updated, so history + live bars give the backtest's capped targets bit
for bit.  The book is part of the live run's per-bar state (``LiveKernels.snapshot_book``): a
process killed and restarted continues from it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qmtl.ir.module import Op
from qmtl.runtime import cross
from qmtl.runtime.artifacts import Series

#: recorded rows of one instant: cap value → run key → (bar-open ts, {0: targets, 1: closes})
Recorded = dict[str, dict[Any, tuple[np.ndarray, dict]]]


class HeldBook:
    """Per cap op, the held capped target and last close of each instrument it caps.

    ``keys``: cap value → its run keys in the backtest's order (None: one series, a single
    instrument); ``clock``: value → its clock (s).  The arrays are in the order of ``keys`` — the
    order the backtest's step merges entries of one instant in, which fixes its float sums."""

    def __init__(self, caps: list[Op], keys: Mapping[str, Any], clock: Mapping[str, int | None]) -> None:
        self.caps = list(caps)
        self.keys = {op.result: keys.get(op.result) for op in caps}
        self.clock = dict(clock)
        self.books = {op.result: (np.zeros(self._size(op.result)), np.full(self._size(op.result), np.nan))
                      for op in caps}

    def _size(self, value: str) -> int:
        order = self.keys[value]
        return 1 if order is None else len(order)

    def cap(self, recorded: Recorded) -> dict[str, Series]:
        """Each cap op's capped targets of one instant's entries (or the warm-up's: any stretch of
        instants after the last one capped), as the backtest's step gives them.  Every instrument of
        the op must be in ``recorded`` (empty entries where it has none), so the step counts the
        instruments in the backtest's order."""
        for value, per_key in recorded.items():
            order = self.keys.get(value)
            if order is not None and any(k not in per_key for k in order):
                missing = [k for k in order if k not in per_key]
                raise ValueError(f"held book of %{value}: no entries (not even empty ones) for {missing}")
        return cross.capped(self.caps, recorded, self.keys, self.clock, books=self.books)

    def on_windows(self, recorded: Recorded, timelines: Mapping[Any, Any]) -> dict[Any, dict[str, Any]]:
        """``cap`` of one instant's entries, placed on each key's window (``timelines``: run key →
        its ``KeyTimeline`` of the instant) as the stored values pass 2 reads: run key → cap value →
        ``StoredColumns``."""
        return cross.on_timelines(self.cap(recorded), self.keys, timelines, self.clock)

    def held(self, value: str, key: Any) -> tuple[float, float]:
        """(held capped target, last close) of ``key`` under the cap op ``value`` (NaN close: none yet)."""
        order = self.keys[value]
        i = 0 if order is None else list(order).index(key)
        held, mark = self.books[value]
        return float(held[i]), float(mark[i])

    def snapshot(self) -> dict:
        """The book's arrays, copied (a snapshot must not change when the next instant runs)."""
        return {v: (held.copy(), mark.copy()) for v, (held, mark) in self.books.items()}

    def restore(self, snapshot: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Continue from a ``snapshot`` of the same caps over the same instruments."""
        if set(snapshot) != set(self.books) or any(len(snapshot[v][0]) != len(self.books[v][0]) for v in self.books):
            raise ValueError("the held book snapshot is of other caps or instruments")
        self.books = {v: (np.array(held, dtype=np.float64), np.array(mark, dtype=np.float64))
                      for v, (held, mark) in snapshot.items()}
