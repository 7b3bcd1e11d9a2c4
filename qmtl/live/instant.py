"""The bars of one instant a capped live run waits for (docs/design.md "Live runs").

With a portfolio-total cap, an instrument's order at a bar time depends on every other instrument's
target at that time, so a bar cannot be decided alone: its instant (the feed bars of one ``ts``)
collects the bars of every instrument, and is decided as a whole — once every instrument's bar is
there, or when a bar of a later ``ts`` arrives (an instrument without a bar there has a gap, which
a backtest over the same bars has too).  A bar of an instant already decided is late.

The waiting bars are part of the stored state, so a bar is acknowledged once it is stored, not when
its instant is decided (the feed's consumer has one bar in flight at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .bars import Bar
from .feed import BarRef


@dataclass
class Instant:
    """The bars of one ``ts`` so far, per run key, with where each sits on the feed."""

    ts: int | None = None
    bars: dict[Any, tuple[Bar, BarRef]] = field(default_factory=dict)

    def add(self, key: Any, bar: Bar, ref: BarRef) -> None:
        if self.ts is not None and bar.ts != self.ts:
            raise ValueError(f"a bar of ts={bar.ts} in the instant of ts={self.ts}")
        self.ts = bar.ts
        self.bars[key] = (bar, ref)

    def complete(self, keys: Iterable[Any]) -> bool:
        """Whether every one of ``keys`` has its bar here."""
        return all(k in self.bars for k in keys)

    def snapshot(self) -> dict:
        return {"ts": self.ts, "bars": dict(self.bars)}

    @classmethod
    def restored(cls, snapshot: dict | None) -> "Instant":
        return cls() if not snapshot else cls(snapshot["ts"], dict(snapshot["bars"]))
