"""What a strategy earned over a run: per-bar returns, the equity and drawdown they compound to, the
metrics, monthly returns and a rolling Sharpe — the one place a run's outputs become performance.

``strategy_performance`` derives the returns (``qmtl.runtime.returns``: a ``returns`` column as is,
else a ``signal``/``position`` priced on the next bar's close) from a run's outputs and the data it
read; ``Runner.submit`` takes its precheck metrics from it, ``RunResult.performance()`` and
``SubmitResult`` hand it to users, and the tear sheet draws it.  Annualisation follows the bar
interval of the output the returns came from and a ``Calendar`` (``qmtl.runtime.metrics``).
Series handed to users are indexed by UTC timestamps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from qmtl.ir.diagnostics import CompileError, Diagnostic

from .metrics import (Calendar, Metrics, annual_return, annual_volatility, calendar_of, compute_metrics,
                      sortino_ratio)
from .returns import closes_from_dataset, derive_returns


@dataclass(frozen=True)
class Performance:
    """Per-bar ``returns`` (epoch-second index, as derived) of bars of ``interval`` seconds under
    ``calendar``; ``source`` says which output and column they came from (None: no output has a
    returns, signal or position column, and the returns are empty)."""

    raw_returns: pd.Series
    interval: int
    calendar: Calendar
    source: str | None = None
    trades: int | None = None
    strategy: str | None = None  # the strategy's name, for titles

    @property
    def periods_per_year(self) -> float:
        return self.calendar.periods_per_year(self.interval)

    @cached_property
    def returns(self) -> pd.Series:
        """Per-bar strategy returns indexed by UTC timestamps (the bar where each is earned)."""
        return _utc(self.raw_returns.astype("float64")).rename("returns")

    @cached_property
    def equity(self) -> pd.Series:
        """Wealth compounded from 1: ``cumprod(1 + r)``."""
        return (1.0 + self.returns.fillna(0.0)).cumprod().rename("equity")

    @cached_property
    def drawdown(self) -> pd.Series:
        """Fall from the running peak of ``equity`` (the start, wealth 1, counts as a peak): ≤ 0."""
        wealth = self.equity.to_numpy(dtype=np.float64)
        peak = np.maximum.accumulate(np.maximum(wealth, 1.0))
        return pd.Series(wealth / peak - 1.0, index=self.equity.index, name="drawdown", dtype="float64")

    @cached_property
    def metrics(self) -> Metrics:
        return compute_metrics(self.raw_returns, self.interval, self.trades, self.calendar)

    @cached_property
    def extra_metrics(self) -> dict[str, float | None]:
        """Report-only metrics (not sent to a world): Sortino, annual return (CAGR), annual volatility."""
        r, ann = self.raw_returns.to_numpy(dtype=np.float64), self.periods_per_year
        return {"sortino": sortino_ratio(r, ann), "annual_return": annual_return(r, ann),
                "annual_volatility": annual_volatility(r, ann)}

    def monthly_returns(self) -> pd.DataFrame:
        """Compounded return of each calendar month (UTC): rows are years, columns months 1–12."""
        r = self.returns.dropna()
        if r.empty:
            return pd.DataFrame(columns=range(1, 13), dtype="float64")
        grouped = (1.0 + r).groupby([r.index.year, r.index.month]).prod() - 1.0
        table = grouped.unstack(level=1).reindex(columns=range(1, 13))
        table.index.name, table.columns.name = "year", "month"
        return table

    def rolling_sharpe(self, window: int | None = None) -> pd.Series:
        """Sharpe of the last ``window`` bars at each bar, annualised (default window: a month of
        bars under the calendar, at most a third of the run and at least 10 bars)."""
        n = self.rolling_window() if window is None else int(window)
        r = self.returns
        mean, std = r.rolling(n).mean(), r.rolling(n).std(ddof=1)
        return (mean / std.where(std > 0) * math.sqrt(self.periods_per_year)).rename("rolling_sharpe")

    def rolling_window(self) -> int:
        month = int(round(self.periods_per_year / 12))
        return max(10, min(month, len(self.returns) // 3 or 10))

    def report(self, path: str | Path, title: str | None = None) -> Path:
        """Write a self-contained HTML tear sheet (``qmtl.runtime.tearsheet``) and return its path."""
        from .tearsheet import write_tearsheet
        return write_tearsheet(self, Path(path), title=title or self.strategy)


def strategy_performance(compiled: Any, outputs: Mapping[str, pd.DataFrame], datasets: list[tuple[str | None, Any]],
                         loaded: Any, calendar: "str | Calendar | None" = None) -> tuple[Performance, list[Diagnostic]]:
    """The returns of a run of ``compiled`` over ``datasets`` (``(tag, Dataset)`` pairs of the data
    ``loaded`` was made of) and what they earned; E511 (a warning) when no returns could be derived
    from the outputs that were there."""
    intervals = {o.name: o.interval for o in compiled.module.outputs}
    closes: dict[str | None, pd.Series] = {}
    for tag, dataset in datasets:
        for key, series in closes_from_dataset(dataset).items():
            closes[key if key is not None else tag] = series
    closes = _closes_read(compiled, loaded, closes, outputs)
    found: list[Diagnostic] = []
    try:
        derived = derive_returns(outputs, closes, intervals)
    except KeyError as exc:
        found.append(Diagnostic("E511", f"cannot derive returns: {exc.args[0]}", severity="warning"))
        derived = derive_returns({}, closes)
    interval = returns_interval(compiled, derived.source) or 60
    return Performance(derived.returns, interval, calendar_of(calendar), derived.source, derived.trades,
                       getattr(compiled, "name", None)), found


def returns_interval(compiled: Any, returns_source: str | None) -> int | None:
    """Bar length of the output the returns came from (it sets the annualisation)."""
    by_name = {o.name: o.interval for o in compiled.module.outputs}
    if returns_source is not None:
        name = returns_source.split(".", 1)[0]
        if name in by_name:
            return by_name[name]
    return min(by_name.values()) if by_name else None


def datasets_of(source: Any) -> list[tuple[str | None, Any]]:
    """``(tag, Dataset)`` for each part of what a run was given (a ``{tag: data}`` mapping, else one
    untagged dataset)."""
    from .data import load
    if isinstance(source, Mapping):
        return [(str(tag), load(part)) for tag, part in source.items()]
    return [(None, load(source))]


def _closes_read(compiled: Any, loaded: Any, closes: dict[str | None, pd.Series],
                 outputs: Mapping[str, pd.DataFrame]) -> dict[str | None, pd.Series]:
    """The closes of the streams the strategy's inputs read: a ``StreamInput(tags=["btc"])`` over
    several symbols prices its signal on BTC (its rows carry no symbol: it read one stream).  Only
    then is it worth binding again to find out."""
    if len(closes) <= 1 or all("symbol" in frame.columns for frame in outputs.values()):
        return closes
    from .binding import bind
    try:
        bindings = bind(compiled.module, loaded)
    except CompileError:
        return closes
    read = {s.key for sb in bindings.sources.values() if sb.op.name == "stream_input" for s in sb.streams}
    kept = {k: v for k, v in closes.items() if k in read}
    return kept or closes


def _utc(series: pd.Series) -> pd.Series:
    ts = pd.to_datetime(series.index.to_numpy(dtype=np.int64), unit="s", utc=True)
    return series.set_axis(pd.DatetimeIndex(ts, name="ts"), axis=0)
