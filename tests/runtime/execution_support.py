"""What the Execution-node tests share (tests/runtime/test_execution_nodes.py, test_total_cap*.py):
the RiskControl rule written independently with pandas, the hand-built RiskControl → TimingGate →
Execution module (optionally with the portfolio-total cap between RiskControl and TimingGate), and
bars with a ``signal`` column for it to read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.codegen.modules import Builder

#: the session that is always open: TimingGate passes every position
ALWAYS = ("00:00-24:00 UTC",)


def pandas_risk(signal: pd.Series, close: pd.Series, max_position: float, max_notional: float | None):
    """clip(signal, -1, 1) * max_position, |target * close| capped to max_notional (NaN where the
    close cannot price it)."""
    target = signal.clip(-1, 1) * max_position
    if max_notional is None:
        return target
    cap = (max_notional / close).where(close > 0)
    return np.sign(target) * np.minimum(target.abs(), cap)


def exec_module(name: str, risk: dict, execution: dict, sessions: tuple[str, ...] = ALWAYS,
                cap: float | None = None, orders_period: int = 1):
    """signal/open/close columns of one source → ``risk`` (RiskControl's op, capped by ``total_cap``
    when ``cap`` is given) → ``timing`` (TimingGate) → ``orders`` (Execution)."""
    b = Builder(name)
    src = b.source()
    signal, open_, close = (b.op("column", src, name=f) for f in ("signal", "open", "close"))
    target = b.op("risk_control", signal, close, **risk)
    if cap is not None:
        target = b.op("total_cap", target, close, max_total_notional=cap)
    r = b.out("risk", target, 1)
    g = b.out("timing", b.op("timing_gate", r, sessions=sessions), 1)
    b.out("orders", b.op("execution", g, open_, close, **execution), orders_period)
    return b.module()


def signal_bars(ts: np.ndarray, rng: np.random.Generator, level: float = 100.0, vol: float = 0.01,
                nan_share: float = 0.1, **columns) -> pd.DataFrame:
    """Bars at ``ts``: a random walk around ``level``, opens near the closes, and a ``signal``
    column in [-1.5, 1.5] with a share of NaNs (bars where the strategy decides nothing)."""
    n = len(ts)
    close = level * np.exp(np.cumsum(rng.normal(0, vol, n)))
    signal = rng.uniform(-1.5, 1.5, n)
    signal[rng.random(n) < nan_share] = np.nan
    return pd.DataFrame({"ts": ts, **columns, "open": close * (1 + rng.normal(0, vol / 5, n)),
                         "high": close * (1 + 2 * vol), "low": close * (1 - 2 * vol), "close": close,
                         "volume": 1.0, "signal": signal})


def live_instants(kernels, live: pd.DataFrame) -> dict:
    """Warm ``kernels`` (a capped ``LiveKernels``) up on their history, then feed ``live``'s bars one
    close instant at a time, as the live runner does: each key's emitted rows, warm-up first."""
    from qmtl.live.bars import Bar

    seen = {k: [rows] for k, rows in kernels.warm_up_all().items()}
    for ts in sorted(live.ts.unique()):
        bars = {kernels.key_for(r.symbol): Bar(symbol=r.symbol, ts=int(r.ts), open=r.open, high=r.high, low=r.low,
                                               close=r.close, volume=r.volume)
                for r in live[live.ts == ts].itertuples()}
        for key, rows in kernels.step_instant(bars).items():
            seen[key].append(rows)
    return seen
