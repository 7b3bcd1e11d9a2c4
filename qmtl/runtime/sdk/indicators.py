"""Indicator helpers: ``sma ema rsi macd bollinger atr zscore``.

Each helper works on three kinds of argument and means the same thing on all of them:

* a symbolic series (inside a traced compute function, or the expression API on node handles):
  it builds the ops ``rolling_mean``, ``ema``, ``rsi``, ``macd`` + ``column``, ``rolling_std``,
  ``atr`` and arithmetic — the same trees either way, hence the same NodeIDs;
* a concrete pandas Series / numpy array (inside an opaque compute function at run time): it runs the
  op registry's reference implementation, so the numbers match the compiled kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qmtl.ir.ops import REGISTRY

from .errors import SDKArgumentError
from .expr import Expr, Frame, as_expr, is_symbolic
from .source_location import user_location


def sma(x: Any, n: int) -> Any:
    """Simple moving average over ``n`` bars (pandas ``rolling(n).mean()``)."""
    n = _length(n, "n")
    if is_symbolic(x):
        return Expr("rolling_mean", (_series(x),), {"window": n}, loc=user_location(2))
    return _concrete("rolling_mean", x, window=n)


def ema(x: Any, n: int) -> Any:
    """TA-Lib EMA (seeded with the SMA of the first ``n`` values; k = 2/(n+1))."""
    n = _length(n, "n")
    if is_symbolic(x):
        return Expr("ema", (_series(x),), {"period": n}, loc=user_location(2))
    return _concrete("ema", x, period=n)


def rsi(x: Any, n: int = 14) -> Any:
    """TA-Lib RSI (Wilder smoothing)."""
    n = _length(n, "n")
    if is_symbolic(x):
        return Expr("rsi", (_series(x),), {"period": n}, loc=user_location(2))
    return _concrete("rsi", x, period=n)


def macd(x: Any, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Any, Any, Any]:
    """TA-Lib MACD → ``(macd, signal, hist)``."""
    attrs = {"fast": _length(fast, "fast"), "slow": _length(slow, "slow"),
             "signal": _length(signal, "signal")}
    if is_symbolic(x):
        whole = Expr("macd", (_series(x),), attrs, loc=user_location(2))
        return whole.column("macd"), whole.column("macdsignal"), whole.column("macdhist")
    out = REGISTRY["macd"].reference(_floats(x), **attrs)
    return tuple(_like(x, out[k]) for k in ("macd", "macdsignal", "macdhist"))  # type: ignore[return-value]


def bollinger(x: Any, n: int = 20, k: float = 2.0) -> tuple[Any, Any, Any]:
    """Bollinger bands → ``(upper, middle, lower)``: middle = SMA, band = k × population std (ddof 0)."""
    n = _length(n, "n")
    if is_symbolic(x):
        s = _series(x)
        middle = Expr("rolling_mean", (s,), {"window": n}, loc=user_location(2))
        band = Expr("rolling_std", (s,), {"window": n, "ddof": 0}, loc=user_location(2)) * float(k)
        return middle + band, middle, middle - band
    middle = _concrete("rolling_mean", x, window=n)
    band = _concrete("rolling_std", x, window=n, ddof=0) * float(k)
    return middle + band, middle, middle - band


def atr(bars_or_high: Any, low: Any = None, close: Any = None, n: int = 14) -> Any:
    """TA-Lib ATR, from bars/a frame with ``high low close`` or from three series."""
    n = _length(n, "n")
    if (low is None) != (close is None):
        raise SDKArgumentError("atr() takes either bars (one argument) or high, low and close")
    if low is None:
        high, low, close = (_field(bars_or_high, c) for c in ("high", "low", "close"))
    else:
        high = bars_or_high
    if any(is_symbolic(v) for v in (high, low, close)):
        return Expr("atr", (_series(high), _series(low), _series(close)), {"period": n},
                    loc=user_location(2))
    out = REGISTRY["atr"].reference(_floats(high), _floats(low), _floats(close), period=n)
    return _like(close, out)


def zscore(x: Any, n: int) -> Any:
    """``(x − rolling mean) / rolling std`` over ``n`` bars (sample std, ddof 1)."""
    n = _length(n, "n")
    if is_symbolic(x):
        s = _series(x)
        mean = Expr("rolling_mean", (s,), {"window": n}, loc=user_location(2))
        std = Expr("rolling_std", (s,), {"window": n, "ddof": 1}, loc=user_location(2))
        return (s - mean) / std
    mean = _concrete("rolling_mean", x, window=n)
    std = _concrete("rolling_std", x, window=n, ddof=1)
    return (_like(x, _floats(x)) - mean) / std


# --- helpers -------------------------------------------------------------------------------------

def _length(n: Any, field: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) <= 0:
        raise SDKArgumentError(f"{field}={n!r} must be a positive whole number of bars")
    return int(n)


def _series(x: Any) -> Expr:
    if isinstance(x, Frame):
        raise SDKArgumentError("indicator helpers take a series: select a column (frame['close'])")
    return as_expr(x)


def _field(bars: Any, name: str) -> Any:
    if is_symbolic(bars):
        if isinstance(bars, Expr) and bars.op not in ("node_ref",):
            raise SDKArgumentError("atr(bars): pass bars or a frame with high, low, close columns")
        return bars[name]
    if isinstance(bars, pd.DataFrame) or isinstance(bars, dict):
        if name not in bars:
            raise SDKArgumentError(f"atr(bars): bars have no {name!r} column")
        return bars[name]
    raise SDKArgumentError(f"atr() cannot read {name!r} from a {type(bars).__name__}")


def _floats(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _like(template: Any, values: np.ndarray) -> Any:
    """Concrete results keep the caller's container: a Series with its index, else an array."""
    if isinstance(template, pd.Series):
        return pd.Series(values, index=template.index, name=template.name)
    return values


def _concrete(op: str, x: Any, **attrs: Any) -> Any:
    if not isinstance(x, (pd.Series, np.ndarray, list, tuple)):
        raise SDKArgumentError(f"{op}: expected a series or array, got {type(x).__name__}")
    return _like(x, np.asarray(REGISTRY[op].reference(_floats(x), **attrs), dtype=float))
