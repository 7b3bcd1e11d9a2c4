"""Positions and PnL rebuilt from the log, never kept anywhere else.

``Exposure`` is what the live runner sizes orders against: per (strategy, Execution node,
instrument) the sum of the orders on the log — filled or still working — plus the keys already
logged, so a bar processed again after a restart finds its order there and does not send it twice.
``Book`` is what ``qmtl orders`` reports: per the same triple, the filled position, the cash the
fills cost (prices and fees) and the PnL marked at the latest fill price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .order_log import FillRecord, OrderRecord, Record

BookKey = tuple[str, str, str]  # strategy, node, instrument


@dataclass
class Exposure:
    """One strategy's orders in one domain: per (node id, instrument) its orders in bar order and
    their running sum, and the keys logged."""

    strategy: str
    units: dict[tuple[str, str], float] = field(default_factory=dict)
    orders: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)

    @classmethod
    def from_log(cls, strategy: str, records: Iterable[Record]) -> "Exposure":
        exposure = cls(strategy)
        for r in records:
            if isinstance(r, OrderRecord) and r.strategy == strategy:
                exposure.add(r)
        return exposure

    def position(self, node_id: str, instrument: str, before_ts: int) -> float:
        """The units ordered for bars before ``before_ts``.  The log may hold orders of later bars
        when bars run again from an older state (a process killed between logging a bar's orders
        and storing its state); they are not part of the position that bar is sized against.  The
        sum runs in log order, as the running total does, so both give the same float."""
        where = (node_id, instrument)
        orders = self.orders.get(where, [])
        if not orders or orders[-1][0] < before_ts:
            return self.units.get(where, 0.0)
        total = 0.0
        for ts, qty in orders:
            if ts >= before_ts:
                break
            total += qty
        return total

    def add(self, order: OrderRecord) -> None:
        if order.key in self.keys:
            return
        self.keys.add(order.key)
        where = (order.node_id, order.instrument)
        self.units[where] = self.units.get(where, 0.0) + order.qty
        self.orders.setdefault(where, []).append((order.bar_ts, order.qty))


@dataclass
class Position:
    qty: float = 0.0
    cash: float = 0.0
    fees: float = 0.0
    last_price: float | None = None
    fills: int = 0

    @property
    def pnl(self) -> float:
        """Cash plus the position marked at the latest fill price (a flat book is its cash)."""
        return self.cash + (self.qty * self.last_price if self.qty and self.last_price is not None else 0.0)


def book(records: Iterable[Record]) -> dict[BookKey, Position]:
    """Filled positions, cash, fees and PnL per (strategy, node, instrument), from fills (each key once)."""
    out: dict[BookKey, Position] = {}
    seen: set[str] = set()
    for r in records:
        if not isinstance(r, FillRecord) or r.key in seen:
            continue
        seen.add(r.key)
        p = out.setdefault((r.strategy, r.node, r.instrument), Position())
        p.qty += r.qty
        p.cash -= r.qty * r.price + r.fee
        p.fees += r.fee
        p.last_price = r.price
        p.fills += 1
    return out
