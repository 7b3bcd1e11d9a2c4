"""What an order gate answers: may this process send orders now, into which domain, and why (not).

The live runner asks an ``OrderGate`` before it publishes each order; the gate that follows the
world's decision and activation is one implementation, ``StaticGate`` (a fixed answer, for tests and
for runs with no world) another.  Default-safe: anything that cannot say "open" is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GateState:
    """One answer of a gate.  ``domain`` is where open orders go (``"paper"`` or ``"live"``); it is
    ``None`` when the gate is closed for want of a decision.  ``reason`` is a short code from a small
    fixed set (``open``, ``frozen``, ``inactive``, …): it labels metrics, so it never carries
    details; ``detail`` says the rest, for logs."""

    open: bool
    domain: str | None
    reason: str
    detail: str = ""


class OrderGate(Protocol):
    """Anything that can tell the live runner whether orders may flow right now."""

    def state(self) -> GateState:
        """The gate's current answer; cheap (called once per order), never blocking on the network."""
        ...


@dataclass(frozen=True)
class StaticGate:
    """A gate with a fixed answer."""

    fixed: GateState

    def state(self) -> GateState:
        return self.fixed
