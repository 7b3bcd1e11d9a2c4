"""The rule for late, duplicate and out-of-order bars (docs/design.md "Live runs").

Per instrument, bars are processed in strictly increasing ``ts``.  A bar whose ``ts`` equals the last
one processed is a ``duplicate`` (a redelivery, or the feed sending it twice); one with an earlier
``ts`` is ``late`` (out of order, or already covered by the warm-up history).  Both are dropped and
counted: a kernel's state only moves forward, and replaying an older bar would change values a
backtest over the same bars would not have.  The rule applies to feed bars, at the feed's interval
(the history's, ``kernels``): a bar whose ``ts`` is not on that grid is ``off_grid``.  A bar is
published once it has closed, so one that opens more than ``FUTURE_SKEW_S`` (or one interval, if
longer) after the wall clock is ``future``: accepted, it would make every real bar after it late.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

#: how far ahead of this machine's clock a bar may open (clocks of feed and host disagree a little)
FUTURE_SKEW_S = 60


class BarSequence:
    """The last processed bar time per instrument, and the verdict on the next bar."""

    def __init__(self, interval: int, last: Mapping[Any, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.clock = clock
        self.last: dict[Any, int] = dict(last or {})

    def reject(self, key: Any, ts: int) -> str | None:
        """Why the bar of ``key`` at ``ts`` is dropped, or None when it is next in line."""
        if ts % self.interval:
            return "off_grid"
        if ts > self.clock() + max(FUTURE_SKEW_S, self.interval):
            return "future"
        last = self.last.get(key)
        if last is None or ts > last:
            return None
        return "duplicate" if ts == last else "late"

    def advance(self, key: Any, ts: int) -> None:
        self.last[key] = ts
