"""The rule for late, duplicate and out-of-order bars (docs/design.md "Live runs").

Per instrument, bars are processed in strictly increasing ``ts``.  A bar whose ``ts`` equals the last
one processed is a ``duplicate`` (a redelivery, or the feed sending it twice); one with an earlier
``ts`` is ``late`` (out of order, or already covered by the warm-up history).  Both are dropped and
counted: a kernel's state only moves forward, and replaying an older bar would change values a
backtest over the same bars would not have.  The rule applies to feed bars, at the feed's interval
(the history's, ``kernels``): a bar whose ``ts`` is not on that grid is ``off_grid``.
"""

from __future__ import annotations

from typing import Any, Mapping


class BarSequence:
    """The last processed bar time per instrument, and the verdict on the next bar."""

    def __init__(self, interval: int, last: Mapping[Any, int] | None = None) -> None:
        self.interval = interval
        self.last: dict[Any, int] = dict(last or {})

    def reject(self, key: Any, ts: int) -> str | None:
        """Why the bar of ``key`` at ``ts`` is dropped, or None when it is next in line."""
        if ts % self.interval:
            return "off_grid"
        last = self.last.get(key)
        if last is None or ts > last:
            return None
        return "duplicate" if ts == last else "late"

    def advance(self, key: Any, ts: int) -> None:
        self.last[key] = ts
