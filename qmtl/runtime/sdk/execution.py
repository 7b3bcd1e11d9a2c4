"""The execution node family: ``RiskControl`` → ``TimingGate`` → ``Execution``.

Each is a declaration, like every SDK node: its parameters are checked here (a bad one is an E304
error at the line that built the node, never a traceback at run time) and the frontend lowers it to
one IR op (``risk_control``, ``timing_gate``, ``execution``) whose attributes are those parameters, so
they are part of its NodeID and it runs in a kernel.  docs/design.md "Execution nodes" defines them.

The price an op needs (RiskControl's close for the notional cap, Execution's next open and close)
comes from a ``StreamInput``: ``price=`` when given, else the one ``StreamInput`` upstream of the
node's input.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from qmtl.ir.sessions import SessionError, canonical_sessions

from .errors import SDKArgumentError
from .nodes import Node, StreamInput


class ExecutionStage(Node):
    """A node of the execution family: one input (a position or signal node) and a price stream."""

    #: the IR op this node lowers to
    op = ""

    def _init_stage(self, input: Any, price: StreamInput | None, name: str | None) -> None:
        self._init_common(name, None, None)
        self.tags = ()
        if not isinstance(input, Node) or isinstance(input, StreamInput):
            raise SDKArgumentError(f"{type(self).__name__} takes the node whose value it acts on (a signal "
                                   f"or position node), got {type(input).__name__}", self.loc)
        if price is None:
            price = _upstream_stream(input, type(self).__name__, self.loc)
        elif not isinstance(price, StreamInput):
            raise SDKArgumentError(f"{type(self).__name__}(price=...) must be a StreamInput, got "
                                   f"{type(price).__name__}", self.loc)
        self.source = input
        self.price = price
        self.inputs = (input,) if price is input else (input, price)

    def attrs(self) -> dict[str, Any]:
        """The op's attributes (its NodeID's parameters)."""
        raise NotImplementedError

    def cap_attrs(self) -> dict[str, Any] | None:
        """A cross-instrument cap applied after the op (``total_cap``), or None: RiskControl's only."""
        return None


class RiskControl(ExecutionStage):
    """Target position in units: ``clip(signal, -1, 1) * max_position``, its notional
    ``|position * close|`` capped to ``max_notional`` (per instrument); with
    ``max_total_notional``, the targets of every instrument of the run are then scaled so the book's
    gross notional stays within it (docs/design.md "Execution nodes")."""

    kind = "risk_control"
    op = "risk_control"

    def __init__(self, input: Node, max_position: float, max_notional: float | None = None, *,
                 max_total_notional: float | None = None, price: StreamInput | None = None,
                 name: str | None = None):
        self._init_stage(input, price, name)
        self.max_position = _positive(max_position, "max_position", self.loc)
        self.max_notional = None if max_notional is None else _positive(max_notional, "max_notional", self.loc)
        self.max_total_notional = (None if max_total_notional is None else
                                   _positive(max_total_notional, "max_total_notional", self.loc))

    def cap_attrs(self) -> dict[str, Any] | None:
        """The ``total_cap`` op's attributes, or None when there is no portfolio-total cap."""
        if self.max_total_notional is None:
            return None
        return {"max_total_notional": self.max_total_notional}

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_position": self.max_position}
        if self.max_notional is not None:
            out["max_notional"] = self.max_notional
        return out


class TimingGate(ExecutionStage):
    """The position where the bar's close instant lies in a session window; outside, the last one
    accepted (the position is left unchanged)."""

    kind = "timing_gate"
    op = "timing_gate"

    def __init__(self, input: Node, sessions: str | Iterable[str] = ("00:00-24:00 UTC",), *,
                 price: StreamInput | None = None, name: str | None = None):
        self._init_stage(input, price, name)
        try:
            self.sessions = canonical_sessions(sessions)
        except SessionError as err:
            raise SDKArgumentError(str(err), self.loc) from None

    def attrs(self) -> dict[str, Any]:
        return {"sessions": self.sessions}


class Execution(ExecutionStage):
    """Orders from position changes, filled at the next bar's open with slippage and fees; per bar a
    frame of position, order_qty, fill_qty, fill_price, fee, cash, equity and pnl."""

    kind = "execution"
    op = "execution"

    def __init__(self, input: Node, order_type: str = "market", fee_bps: float = 0.0,
                 slippage_bps: float = 0.0, initial_cash: float | None = None, *,
                 price: StreamInput | None = None, name: str | None = None):
        self._init_stage(input, price, name)
        if order_type != "market":
            raise SDKArgumentError(f"order_type={order_type!r}: only 'market' orders are simulated "
                                   "(filled at the next bar's open)", self.loc)
        self.order_type = order_type
        self.fee_bps = _non_negative(fee_bps, "fee_bps", self.loc)
        self.slippage_bps = _non_negative(slippage_bps, "slippage_bps", self.loc)
        if initial_cash is None:
            initial_cash = _upstream_notional(input)
            if initial_cash is None:
                raise SDKArgumentError("Execution needs initial_cash= (no upstream RiskControl has a "
                                       "max_notional to take it from)", self.loc)
        self.initial_cash = _positive(initial_cash, "initial_cash", self.loc)

    def attrs(self) -> dict[str, Any]:
        return {"initial_cash": self.initial_cash, "fee_bps": self.fee_bps,
                "slippage_bps": self.slippage_bps, "order_type": self.order_type}


def _number(value: Any, field: str, loc) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SDKArgumentError(f"{field}={value!r} must be a finite number", loc)
    return float(value)


def _positive(value: Any, field: str, loc) -> float:
    x = _number(value, field, loc)
    if x <= 0:
        raise SDKArgumentError(f"{field}={value!r} must be greater than 0", loc)
    return x


def _non_negative(value: Any, field: str, loc) -> float:
    x = _number(value, field, loc)
    if x < 0:
        raise SDKArgumentError(f"{field}={value!r} must not be negative (costs are charged against the "
                               "trader)", loc)
    return x + 0.0  # -0.0 → 0.0: one spelling, one NodeID


def _upstream_stream(node: Node, who: str, loc) -> StreamInput:
    found: dict[int, StreamInput] = {}
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, StreamInput):
            found[id(n)] = n
        stack.extend(n.inputs)
    if len(found) != 1:
        what = "no StreamInput" if not found else f"{len(found)} StreamInputs"
        raise SDKArgumentError(f"{who} reads prices from the StreamInput upstream of its input, which has "
                               f"{what}: pass price=<the StreamInput>", loc)
    return next(iter(found.values()))


def _upstream_notional(node: Node) -> float | None:
    while isinstance(node, ExecutionStage):
        if isinstance(node, RiskControl) and node.max_notional is not None:
            return node.max_notional
        node = node.source
    return None
