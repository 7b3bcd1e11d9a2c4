"""Market calendars for annualising per-bar metrics (``qmtl.runtime.metrics``): how many bars a year
holds depends on the bar interval *and* on when the market trades.  Shared vocabulary of the runtime
and the world service's policies (which name one), kept free of heavy imports so the CLI can list
the choices at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

TRADING_DAYS_PER_YEAR = 252
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Calendar:
    """When a market trades, for annualising: ``days_per_year`` trading days of ``session_seconds``
    each.  Bars shorter than a day count ``session_seconds / interval`` bars a day; a bar of a day or
    more counts as ``interval / 86400`` of those days.  Set by a world's policy (``calendar:``) or by
    the user (``Runner.submit(calendar=)``, ``qmtl submit --calendar``, ``RunResult.performance(calendar=)``)."""

    name: str
    days_per_year: float
    session_seconds: int = SECONDS_PER_DAY

    def periods_per_year(self, interval_seconds: int) -> float:
        if interval_seconds <= 0:
            raise ValueError(f"bar interval must be a positive number of seconds, got {interval_seconds}")
        if interval_seconds >= SECONDS_PER_DAY:
            return self.days_per_year * SECONDS_PER_DAY / interval_seconds
        return self.days_per_year * min(self.session_seconds, SECONDS_PER_DAY) / interval_seconds


#: the calendars a name selects.  ``252x24h`` — 252 days of bars around the clock — is the default:
#: the convention world thresholds were written against (a daily bar gives 252, as empyrical does);
#: ``24/7`` is a market that never closes (crypto: 365 days of 24 h); ``exchange`` one that trades
#: 252 sessions of 6.5 h (a US equity exchange, 09:30–16:00).
CALENDARS = {
    "252x24h": Calendar("252x24h", TRADING_DAYS_PER_YEAR),
    "24/7": Calendar("24/7", 365),
    "exchange": Calendar("exchange", TRADING_DAYS_PER_YEAR, int(6.5 * 3600)),
}
DEFAULT_CALENDAR = "252x24h"
#: the names a world policy (``calendar:``) or the CLI accepts
CalendarName = Literal["252x24h", "24/7", "exchange"]
assert set(get_args(CalendarName)) == set(CALENDARS)


def calendar_of(spec: "str | Calendar | None") -> Calendar:
    """The ``Calendar`` a name (or None: the default) stands for; an unknown name is a ValueError
    listing the known ones."""
    if isinstance(spec, Calendar):
        return spec
    name = DEFAULT_CALENDAR if spec is None else str(spec)
    try:
        return CALENDARS[name]
    except KeyError:
        raise ValueError(f"unknown calendar {name!r}: expected one of {', '.join(CALENDARS)}") from None
