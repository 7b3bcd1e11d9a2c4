"""A live bar as it arrives on a feed: JSON validated at the boundary into a ``Bar``.

A message is one bar of one instrument: ``{"ts": <bar open, epoch seconds>, "open": …, "high": …,
"low": …, "close": …, "volume": …}``, optionally ``"symbol"`` (else the subject's last token, so
``bars.BTC`` carries BTC) and further numeric fields a strategy reads.  Its prices must be a bar's:
``low <= open, close <= high`` (``qmtl.runtime.bar_shape``, the rule the backtest's data loader applies
too).  Anything else is a ``BadBar`` with the reason a metric counts it under; the runner drops it,
never crashes on it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError, model_validator

from qmtl.runtime.bar_shape import ohlc_problem


class BadBar(ValueError):
    """A message that is not a bar; ``reason`` labels the drop metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Bar(BaseModel):
    """One validated bar.  Prices are finite and positive, volume finite and not negative; extra
    fields are kept (as floats) for strategies that read them."""

    model_config = ConfigDict(frozen=True, extra="allow")

    symbol: str
    ts: StrictInt
    open: float
    high: float
    low: float
    close: float
    volume: float

    @model_validator(mode="after")
    def _numbers(self) -> "Bar":
        for name in ("open", "high", "low", "close"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a finite price > 0")
        if not (math.isfinite(self.volume) and self.volume >= 0):
            raise ValueError(f"volume={self.volume!r} must be finite and >= 0")
        problem = ohlc_problem(self.open, self.high, self.low, self.close)
        if problem is not None:
            raise ValueError(problem)
        for name, value in (self.model_extra or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"extra field {name}={value!r} must be a number")
        return self

    def field(self, name: str) -> float:
        """A bar field by name (the five prices and volume, or an extra field)."""
        return float(getattr(self, name)) if name in type(self).model_fields else float(self.model_extra[name])

    def has(self, name: str) -> bool:
        return name in type(self).model_fields or name in (self.model_extra or {})


def parse_bar(payload: bytes, subject: str) -> Bar:
    """``payload`` (JSON) received on ``subject`` as a ``Bar``, or ``BadBar`` saying why not."""
    try:
        data: Any = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBar("malformed", f"{subject}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BadBar("malformed", f"{subject}: a bar is a JSON object, got {type(data).__name__}")
    data.setdefault("symbol", subject.rsplit(".", 1)[-1])
    try:
        return Bar.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "bar"
        raise BadBar("malformed", f"{subject}: field {where}: {first['msg']}") from None
