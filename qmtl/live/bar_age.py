"""How old a bar may be for its orders to be sent (docs/design.md "Live runs").

A process started on a stream that holds days of bars, or one catching up after an outage, runs every
bar through the kernels (state must equal a backtest's), but an order decided on a bar that closed
long ago would be executed at today's prices on yesterday's reasons.  So no order is sent for a bar
whose close (``ts`` + the feed's interval) is more than ``max_age_s`` before this machine's clock; it
is counted as gated with the reason ``stale_bar`` and logged, like an order the world's gate held
back.  The live book follows the simulated one, so the first order of a fresh bar takes the position
to the simulated target in one step.

The default is ``DEFAULT_MAX_AGE_BARS`` feed intervals (3 minutes for 1-minute bars): a bar arriving on
time is milliseconds old, a bar redelivered after a restart a few seconds; anything older than three
bars is a backlog.  ``math.inf`` turns the rule off (replaying an archive into paper on purpose).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

#: the default maximum age of a bar whose orders are sent, in feed intervals
DEFAULT_MAX_AGE_BARS = 3
#: the ``qmtl_live_orders_gated`` reason of an order not sent because its bar is too old
STALE_REASON = "stale_bar"


def checked_max_age(value: float | None, interval: int) -> float:
    """``value`` seconds (positive; ``math.inf``: no limit), or the default for bars of ``interval``
    seconds when None; ``ValueError`` naming the option otherwise."""
    if value is None:
        return float(DEFAULT_MAX_AGE_BARS * interval)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(f"--max-bar-age {value!r}: expected a positive number of seconds (inf: no limit)")
    return float(value)


@dataclass(frozen=True)
class BarAge:
    """The age rule for bars of ``interval`` seconds: ``stale(ts)`` says why a bar opening at ``ts`` is
    too old for its orders, or "" when it is not."""

    interval: int
    max_age_s: float
    clock: Callable[[], float] = time.time

    def stale(self, ts: int) -> str:
        close = ts + self.interval
        age = self.clock() - close
        if age <= self.max_age_s:
            return ""
        return f"the bar closed {age:.0f} s ago (at ts={close}), more than --max-bar-age {self.max_age_s:g} s"
