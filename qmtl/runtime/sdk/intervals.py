"""Intervals and periods as users write them: ``60``, ``"60s"``, ``"1m"``, ``"1h"``, ``"1d"``."""

from __future__ import annotations

import re

from .errors import SDKArgumentError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_interval(value: object, field: str = "interval") -> int:
    """Seconds in ``value``; raises ``SDKArgumentError`` naming the value when it is not an interval."""
    if isinstance(value, bool):
        raise SDKArgumentError(f"{field}={value!r} is not an interval (use seconds or '60s', '1m', '1h', '1d')", None)
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _PATTERN.match(value)):
        seconds = int(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise SDKArgumentError(
            f"{field}={value!r} is not an interval (use seconds or '60s', '1m', '1h', '1d')", None)
    if seconds <= 0:
        raise SDKArgumentError(f"{field}={value!r} must be a positive number of seconds", None)
    return seconds


def parse_period(value: object, field: str = "period") -> int:
    """A window length in bars: a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SDKArgumentError(f"{field}={value!r} must be a positive whole number of bars", None)
    return value
