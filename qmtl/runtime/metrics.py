"""Performance metrics of a per-bar return series: what a world's policy judges a strategy by.

Conventions (the world service's thresholds are written against these, so they are the contract):

* ``sharpe``: mean / sample std (ddof=1) of per-bar returns × sqrt(periods per year), risk-free 0.
* ``max_drawdown``: the worst peak-to-trough fall of compounded wealth ``cumprod(1 + r)``, starting
  from wealth 1 (the start counts as a peak); a number ≤ 0 (``-0.25`` is a 25 % drawdown).
* ``total_return``: ``prod(1 + r) - 1``.
* ``win_rate``: positive bars / bars with a non-zero return.
* ``profit_factor``: sum of positive returns / |sum of negative returns|.
* ``trades``: number of position changes (given by whoever knows the positions).

A metric that is undefined for the data (Sharpe of one bar or of a constant series, win rate with no
non-zero bar, profit factor with no losing bar) is ``None`` rather than NaN/inf, so that it travels
through JSON and a policy can tell "unknown" from a number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from qmtl.calendars import CALENDARS, DEFAULT_CALENDAR, SECONDS_PER_DAY, TRADING_DAYS_PER_YEAR, Calendar, calendar_of

__all__ = ["CALENDARS", "DEFAULT_CALENDAR", "SECONDS_PER_DAY", "TRADING_DAYS_PER_YEAR", "Calendar", "Metrics",
           "annual_return", "annual_volatility", "calendar_of", "compute_metrics", "max_drawdown",
           "periods_per_year", "profit_factor", "sharpe_ratio", "sortino_ratio", "total_return", "win_rate"]


class Metrics(BaseModel):
    """The precheck metrics of a run (see the module docstring for each definition)."""

    model_config = ConfigDict(frozen=True)

    sharpe: float | None = None
    max_drawdown: float | None = None
    total_return: float | None = None
    win_rate: float | None = None
    profit_factor: float | None = None
    trades: int | None = None
    bars: int = 0
    periods_per_year: float | None = None

    def policy_values(self) -> dict[str, float]:
        """The defined metrics as plain floats — what ``POST /worlds/{id}/evaluate`` receives."""
        return {k: float(v) for k, v in self.model_dump(exclude={"periods_per_year"}).items()
                if v is not None}


def periods_per_year(interval_seconds: int, calendar: "str | Calendar | None" = None) -> float:
    """Bars per year for annualising, under ``calendar`` (default ``252x24h``: 252 trading days,
    intraday bars around the clock on those days, so a 60 s bar gives 252 × 1440 and a daily bar 252,
    the usual daily convention and empyrical's default)."""
    return calendar_of(calendar).periods_per_year(interval_seconds)


def sharpe_ratio(returns: np.ndarray, annualization: float) -> float | None:
    r = _finite(returns)
    if r.size < 2:
        return None
    std = float(np.std(r, ddof=1))
    # Identical values can leave a ~1e-18 residue; treat "no dispersion" as undefined, not 1e15.
    if std == 0.0 or std <= 1e-14 * max(1.0, float(np.max(np.abs(r)))):
        return None
    return _defined(float(np.mean(r)) / std * math.sqrt(annualization))


def sortino_ratio(returns: np.ndarray, annualization: float) -> float | None:
    """Mean return over downside deviation (the root mean square of the losses, gains counted as 0),
    annualised; None without a losing bar."""
    r = _finite(returns)
    if r.size < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return _defined(float(np.mean(r)) / downside * math.sqrt(annualization))


def annual_return(returns: np.ndarray, annualization: float) -> float | None:
    """The compounded growth rate per year: ``prod(1 + r) ** (periods per year / bars) - 1``; None
    when that exceeds what a float holds."""
    r = _finite(returns)
    if r.size == 0:
        return None
    wealth = float(np.prod(1.0 + r))
    if wealth <= 0.0:
        return -1.0
    growth = math.log(wealth) * annualization / r.size
    # a few hours of lucky minute bars compound to more than a float holds: undefined, not inf
    return math.expm1(growth) if growth < 700.0 else None


def annual_volatility(returns: np.ndarray, annualization: float) -> float | None:
    r = _finite(returns)
    if r.size < 2:
        return None
    return _defined(float(np.std(r, ddof=1)) * math.sqrt(annualization))


def max_drawdown(returns: np.ndarray) -> float | None:
    r = _finite(returns)
    if r.size == 0:
        return None
    wealth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peaks = np.maximum.accumulate(wealth)
    return _defined(float(np.min((wealth - peaks) / peaks)))


def total_return(returns: np.ndarray) -> float | None:
    r = _finite(returns)
    return _defined(float(np.prod(1.0 + r) - 1.0)) if r.size else None


def win_rate(returns: np.ndarray) -> float | None:
    r = _finite(returns)
    moved = r[r != 0.0]
    return float(np.count_nonzero(moved > 0.0) / moved.size) if moved.size else None


def profit_factor(returns: np.ndarray) -> float | None:
    r = _finite(returns)
    losses = -float(r[r < 0.0].sum())
    return _defined(float(r[r > 0.0].sum()) / losses) if losses > 0.0 else None


def compute_metrics(returns: pd.Series | np.ndarray, interval_seconds: int,
                    trades: int | None = None, calendar: "str | Calendar | None" = None) -> Metrics:
    """All metrics of ``returns`` (per-bar, bars of ``interval_seconds``, annualised by ``calendar``)."""
    r = np.asarray(returns, dtype=np.float64)
    annualization = periods_per_year(interval_seconds, calendar)
    return Metrics(sharpe=sharpe_ratio(r, annualization), max_drawdown=max_drawdown(r),
                   total_return=total_return(r), win_rate=win_rate(r),
                   profit_factor=profit_factor(r), trades=trades, bars=int(_finite(r).size),
                   periods_per_year=annualization)


def _finite(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    return r[~np.isnan(r)]


def _defined(x: float) -> float | None:
    return x if math.isfinite(x) else None
