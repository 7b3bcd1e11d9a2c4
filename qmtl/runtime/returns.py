"""Strategy returns derived from a run's outputs and the input prices — without look-ahead.

A strategy says what it earns in one of three ways, in this order of preference:

* an ``Execution`` node's output (docs/design.md "Execution nodes"): its per-bar ``pnl`` over the
  equity before it, ``pnl[t] / (equity[t] - pnl[t])`` — fills at the next bar's open, slippage and
  fees included, exactly as the kernels simulated them; trades are its fills;
* an output with a ``returns`` column: those are the strategy's per-bar returns, used as they are;
* an output with a ``signal`` (or ``position``) column: the position it wants to hold. A position
  decided at the close of bar t is held until the close of bar t+1, so it earns that NEXT bar's price
  return ``r[t+1] = close[t+1] / close[t] - 1``. Indexed by the bar where it is earned, the strategy
  return is ``position.shift(1) * close.pct_change()`` — a signal computed from bar t+1's price can
  therefore never be paid for bar t+1's move.

Positions live on the output's clock (its ``interval``): input closes are bucketed to that interval
(last close of each bucket, bucket ``ts = floor(ts / I) * I``, the same rule the runtime uses) and the
position is carried forward between the timestamps where the node emitted. Returns start at the
bar after the first emission: warm-up bars, where nothing could be held, are not counted. With several symbols the computation runs per symbol and the
strategy return is the equal-weight average over the symbols trading at that bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from qmtl.ir.ops import EXECUTION_COLUMNS

from .binding import bucket
from .data import Stream

#: Columns read as a position, in order of preference.
POSITION_COLUMNS = ("signal", "position")
RETURNS_COLUMN = "returns"


@dataclass(frozen=True)
class StrategyReturns:
    """Per-bar strategy returns (indexed by ``ts``) and where they came from.

    ``source`` says which output and column produced them (``None`` when no output has a returns,
    signal or position column — then ``returns`` is empty). ``positions`` holds the per-symbol
    position series on the price clock (empty when the output gave returns directly); ``trades`` the
    number of position changes summed over symbols (``None`` when there were no positions).
    """

    returns: pd.Series
    source: str | None
    positions: Mapping[str | None, pd.Series] = field(default_factory=dict)
    trades: int | None = None


def derive_returns(outputs: Mapping[str, pd.DataFrame], closes: Mapping[str | None, pd.Series],
                   intervals: Mapping[str, int] | None = None) -> StrategyReturns:
    """Strategy returns from a run's ``outputs`` and the input ``closes`` (per symbol, indexed by ts).

    ``intervals`` maps output names to their bar interval in seconds (used to bucket closes onto the
    output's clock); an output missing from it is taken to be on the closes' own clock. When several
    outputs qualify, the LAST one in ``outputs`` order wins: strategies add their terminal node last.
    """
    executed = _execution_output(outputs)
    if executed is not None:
        return _execution_returns(executed, outputs[executed])
    picked = _pick_output(outputs)
    if picked is None:
        return StrategyReturns(returns=_empty_returns(), source=None)
    name, column = picked
    frame = outputs[name]
    if column == RETURNS_COLUMN:
        per_symbol = {key: series.astype("float64") for key, series in _by_symbol(frame, column)}
        return StrategyReturns(returns=_average(per_symbol.values()), source=f"{name}.{column}")
    interval = (intervals or {}).get(name)
    positions: dict[str | None, pd.Series] = {}
    earned: dict[str | None, pd.Series] = {}
    for key, signal in _by_symbol(frame, column):
        close = _close_for(closes, key, name)
        bars = bucket_closes(close, interval) if interval else close
        position = align_position(signal, bars.index)
        positions[key] = position
        earned[key] = _since_first_emission(
            position.shift(1, fill_value=0.0) * bars.pct_change().fillna(0.0), signal)
    trades = sum(count_trades(p) for p in positions.values())
    return StrategyReturns(returns=_average(earned.values()),
                           source=f"{name}.{column} x next-bar close return",
                           positions=positions, trades=trades)


def _execution_output(outputs: Mapping[str, pd.DataFrame]) -> str | None:
    """The last output that is an execution frame (every column ``execution`` produces)."""
    for name in reversed(list(outputs)):
        frame = outputs[name]
        if isinstance(frame, pd.DataFrame) and set(EXECUTION_COLUMNS) <= set(frame.columns):
            return name
    return None


def _execution_returns(name: str, frame: pd.DataFrame) -> StrategyReturns:
    earned: dict[str | None, pd.Series] = {}
    positions: dict[str | None, pd.Series] = {}
    trades = 0
    for key, pnl in _by_symbol(frame, "pnl"):
        part = frame if key is None else frame[frame["symbol"].astype(str) == key]
        before = part["equity"].astype("float64") - pnl.astype("float64")
        earned[key] = (pnl.astype("float64") / before).rename("returns")
        positions[key] = part["position"].astype("float64")
        trades += int(np.count_nonzero(part["fill_qty"].to_numpy(dtype=np.float64)))
    return StrategyReturns(returns=_average(earned.values()), source=f"{name}.pnl / equity (execution)",
                           positions=positions, trades=trades)


def bucket_closes(close: pd.Series, interval: int) -> pd.Series:
    """Last close of each ``interval``-second bucket, indexed by the bucket's start ``ts``.

    Bucketed by the runtime's own ``binding.bucket``, so positions are priced on exactly the bars the
    strategy saw."""
    close = close.sort_index(kind="stable")  # bucket() groups adjacent bars; keep duplicates' order
    stream = Stream({"ts": close.index.to_numpy(dtype=np.int64),
                     "close": close.to_numpy(dtype=np.float64)})
    bars = bucket(stream, interval)
    return pd.Series(bars.columns["close"], index=pd.Index(bars.ts, name="ts"), name=close.name,
                     dtype="float64")


def align_position(signal: pd.Series, bar_ts: pd.Index) -> pd.Series:
    """The position on the price clock: the latest emitted signal at or before each bar, 0 before
    the first emission (warm-up is flat). NaN signals count as flat."""
    signal = signal.astype("float64").fillna(0.0)
    signal = signal[~signal.index.duplicated(keep="last")].sort_index()
    held = signal.reindex(bar_ts.union(signal.index)).ffill().reindex(bar_ts)
    return held.fillna(0.0).rename("position")


def count_trades(position: pd.Series) -> int:
    """Number of position changes, starting flat (entering the first position is a trade)."""
    values = position.to_numpy(dtype=np.float64)
    previous = np.concatenate(([0.0], values[:-1]))
    return int(np.count_nonzero(values != previous))


def closes_from_dataset(dataset: object) -> dict[str | None, pd.Series]:
    """Close prices per stream key of a ``qmtl.runtime.data.Dataset`` (key ``None`` for one stream
    without a symbol)."""
    streams = getattr(dataset, "streams")
    out: dict[str | None, pd.Series] = {}
    for stream in streams:
        if "close" not in stream.columns:
            continue
        key = stream.key if len(streams) > 1 or stream.symbol is not None else None
        out[key] = pd.Series(np.asarray(stream.columns["close"], dtype=np.float64),
                             index=pd.Index(np.asarray(stream.ts, dtype=np.int64), name="ts"),
                             name="close")
    return out


def _pick_output(outputs: Mapping[str, pd.DataFrame]) -> tuple[str, str] | None:
    for wanted in (RETURNS_COLUMN, *POSITION_COLUMNS):
        for name in reversed(list(outputs)):
            frame = outputs[name]
            if isinstance(frame, pd.DataFrame) and wanted in frame.columns:
                return name, wanted
    return None


def _by_symbol(frame: pd.DataFrame, column: str) -> Iterable[tuple[str | None, pd.Series]]:
    if "symbol" not in frame.columns:
        yield None, frame[column]
        return
    for symbol, part in frame.groupby("symbol", sort=True):
        yield str(symbol), part[column]


def _close_for(closes: Mapping[str | None, pd.Series], key: str | None, output: str) -> pd.Series:
    if key in closes:
        return closes[key]
    if key is None and len(closes) == 1:
        return next(iter(closes.values()))
    raise KeyError(f"output {output!r} has rows for symbol {key!r} but the input data has no close "
                   f"prices for it (have {sorted(map(str, closes))})")


def _since_first_emission(earned: pd.Series, signal: pd.Series) -> pd.Series:
    """The returns a strategy is accountable for: from the bar after its first emitted position
    (warm-up bars, where it could not yet hold anything, would only dilute the statistics)."""
    if signal.empty:
        return earned.iloc[:0]
    return earned[earned.index > signal.index.min()]


def _average(series: Iterable[pd.Series]) -> pd.Series:
    parts = list(series)
    if not parts:
        return _empty_returns()
    joined = pd.concat(parts, axis=1).sort_index()
    averaged = joined.mean(axis=1, skipna=True)
    averaged.index = pd.Index(averaged.index.to_numpy(dtype=np.int64), name="ts")
    return averaged.rename("returns")


def _empty_returns() -> pd.Series:
    return pd.Series([], index=pd.Index([], dtype=np.int64, name="ts"), dtype="float64",
                     name="returns")
