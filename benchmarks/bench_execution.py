"""A backtest with execution nodes vs the same strategy without them, 2M bars.

Run: ``.venv/bin/python benchmarks/bench_execution.py [bars]``.  Both strategies compute the same
momentum signal (a traced node); the second adds ``RiskControl → TimingGate → Execution`` (a session
rule in a zone with daylight saving, fees and slippage), whose ops run in the same Numba kernels.
Each runs once untimed (kernels compiled), then alternately, best of 7, on a DataFrame already in
memory.  The ratio is what simulating positions, sessions, fills and costs bar by bar adds to a run:
the backtest simulator is these kernels, with no Python per bar.

When vectorbt is importable (it is not a dependency of the project: install it beside qmtl in a venv
of its own), the same rules also run through ``vectorbt.Portfolio.from_orders`` in the same
alternation, and the two equity curves are compared bar by bar.  ``from_orders`` with
``size_type="targetamount"`` is vectorbt's form of a target-position rule (``from_signals`` enters and
exits whole positions and cannot re-size to a per-bar notional cap); vectorbt has no session rule
or signal graph, so those are the same pandas code a vectorbt user would write.  Without vectorbt
the column is skipped and the reason printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import qmtl  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from qmtl.codegen.plan import Kernel, plan  # noqa: E402
from qmtl.runtime.sdk import Execution, Node, RiskControl, Strategy, StreamInput, TimingGate  # noqa: E402
from qmtl.runtime.synthetic import synthetic_bars  # noqa: E402


def _strategy(with_execution: bool) -> type:
    class Momo(Strategy):
        def setup(self):
            price = StreamInput(interval=60, period=30, name="price")
            momentum = price.close.pct_change().rolling(20).mean()
            signal = Node(expr={"signal": (momentum > 0).astype(float) * 2 - 1}, name="signal")
            nodes = [price, signal]
            if with_execution:
                risk = RiskControl(signal, max_position=5, max_notional=100_000, name="risk")
                timing = TimingGate(risk, sessions=["Mon-Fri 09:30-16:00 America/New_York",
                                                    "Sat,Sun 00:00-24:00 UTC"], name="timing")
                orders = Execution(timing, fee_bps=2, slippage_bps=1, name="orders")
                nodes += [risk, timing, orders]
            self.add_nodes(nodes)
    Momo.__name__ = "MomoExecuted" if with_execution else "Momo"
    return Momo


INITIAL_CASH = 100_000.0  # the strategy's max_notional, which Execution takes as its initial cash
UNBOUNDED_CASH = 1e6  # more than this strategy ever borrows (checked: the positions agree)


def _vectorbt() -> tuple[Any, str]:
    """The vectorbt module, or None and why it cannot be used."""
    try:
        import vectorbt
    except Exception as exc:  # not installed, or installed against libraries it cannot import
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return vectorbt, ""


def _vectorbt_portfolio(vbt: Any, data: pd.DataFrame) -> Any:
    """The executed strategy's rules with pandas + vectorbt (bars indexed by ``ts``).

    Signal and caps as the strategy computes them; the session rule on each bar's close instant
    (``ts + 60``) in New York time, weekends in UTC, outside which the last target stands; each bar's
    target is ordered at that bar's close and filled at the next bar's open, hence ``shift(1)``
    against ``price=open``.  vectorbt applies slippage to the fill price and the fee to the slipped
    value, as ``Execution`` does.  One rule differs: ``Execution`` lets cash go negative (it has no
    margin rule), while vectorbt cuts a buy down to the cash it has.  So vectorbt starts with
    ``UNBOUNDED_CASH`` (never binding here) and its equity is shifted back by the difference
    (``_vectorbt_equity``).
    """
    close = data["close"]
    momentum = close.pct_change().rolling(20).mean()
    target = np.where(momentum > 0, 1.0, -1.0) * 5
    target = np.sign(target) * np.minimum(np.abs(target), INITIAL_CASH / close.to_numpy())
    closes_at = pd.to_datetime(data["ts"] + 60, unit="s", utc=True)
    local = closes_at.dt.tz_convert("America/New_York")
    minute = local.dt.hour * 60 + local.dt.minute
    in_session = ((local.dt.weekday < 5) & (minute >= 570) & (minute < 960)) | (closes_at.dt.weekday >= 5)
    held = pd.Series(np.where(in_session, target, np.nan), index=data["ts"]).ffill().fillna(0.0)
    return vbt.Portfolio.from_orders(pd.Series(close.to_numpy(), index=data["ts"]), held.shift(1),
                                     size_type="targetamount", price=data["open"].to_numpy(),
                                     fees=2e-4, slippage=1e-4, init_cash=UNBOUNDED_CASH)


def _vectorbt_equity(portfolio: Any) -> pd.Series:
    return portfolio.value() - (UNBOUNDED_CASH - INITIAL_CASH)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(bars: int = 2_000_000) -> None:
    data = synthetic_bars(bars, seed=4).drop(columns="symbol")
    plain, executed = qmtl.compile(_strategy(False)), qmtl.compile(_strategy(True))
    in_kernels = {op.name for s in plan(executed.module).steps if isinstance(s, Kernel) for op in s.ops}
    assert {"risk_control", "timing_gate", "execution"} <= in_kernels
    plain.run(data), executed.run(data)
    vbt, why_not = _vectorbt()
    runs = [lambda: plain.run(data), lambda: executed.run(data)]
    if vbt is not None:
        _vectorbt_equity(_vectorbt_portfolio(vbt, data))  # compiles vectorbt's kernels, untimed like ours
        runs.append(lambda: _vectorbt_equity(_vectorbt_portfolio(vbt, data)))
    times = [[_timed(run) for run in runs] for _ in range(7)]
    a, b, *c = (min(column) for column in zip(*times))
    orders = executed.run(data).outputs["orders"]
    fills = int((orders["fill_qty"] != 0).sum())
    print(f"# backtest with execution nodes, {bars:,} bars ({machine()})")
    print("| strategy | s | bars/s |")
    print("|---|---|---|")
    print(f"| signal only | {a:.3f} | {bars / a / 1e6:.1f} M |")
    print(f"| + RiskControl, TimingGate, Execution ({fills:,} fills) | {b:.3f} | {bars / b / 1e6:.1f} M |")
    if vbt is not None:
        print(f"| vectorbt {vbt.__version__} `Portfolio.from_orders`, same rules (pandas signal and "
              f"session mask) | {c[0]:.3f} | {bars / c[0] / 1e6:.1f} M |")
    print(f"\nwith / without execution nodes = **{b / a:.2f}x**")
    if vbt is None:
        print(f"\nvectorbt column skipped: vectorbt is not importable here ({why_not})")
        return
    portfolio = _vectorbt_portfolio(vbt, data)
    theirs = _vectorbt_equity(portfolio).loc[orders.index]
    gap = (theirs - orders["equity"]).abs()
    moved = int((portfolio.assets().loc[orders.index] != orders["position"]).sum())
    print(f"\nvectorbt / qmtl with execution nodes = **{c[0] / b:.2f}x**; over the {len(gap):,} emitted "
          f"bars the positions differ at {moved} and the equity curves by at most {gap.max():.3g} "
          f"(final equity {orders['equity'].iloc[-1]:,.2f} vs {theirs.iloc[-1]:,.2f}); vectorbt counts "
          f"{int(portfolio.orders.count()):,} orders; pandas {pd.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
