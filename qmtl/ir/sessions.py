"""Trading-session windows: the values a ``timing_gate`` op's ``sessions`` attribute holds.

A window is written ``"[DAYS ]HH:MM-HH:MM TZ"``: ``"00:00-24:00 UTC"``, ``"Mon-Fri 09:30-16:00
America/New_York"``, ``"Sat,Sun 10:00-14:00 Europe/London"``.  Times are local to ``TZ`` (an IANA
name, through ``zoneinfo``, so daylight saving is applied); a window is ``[start, end)``; an end before
its start wraps past midnight (``"22:00-02:00 UTC"``); DAYS (the local weekday of the instant itself)
is a range ``Mon-Fri`` or a list ``Mon,Wed``, all days when omitted.

The canonical form (``Session.text``) is what the IR stores, so two spellings of the same window give
the same NodeID.  Kernels cannot call ``zoneinfo``: ``utc_offsets`` tabulates a zone's offset changes
once, and the generated code looks an instant's offset up in that table (docs/design.md
"Execution nodes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW = re.compile(r"^\s*(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
                     r"\s+(?P<tz>\S+)\s*$")
#: the span ``utc_offsets`` tabulates (an instant outside it uses the nearest end's offset)
TABLE_YEARS = (1970, 2100)


class SessionError(ValueError):
    """A session string that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class Session:
    """One window: weekdays (0 = Monday), minutes after local midnight [start, end), a zone."""

    days: tuple[int, ...]
    start: int
    end: int
    tz: str

    @property
    def text(self) -> str:
        days = "" if self.days == tuple(range(7)) else ",".join(DAYS[d] for d in self.days) + " "
        return f"{days}{_hhmm(self.start)}-{_hhmm(self.end)} {self.tz}"

    @property
    def day_mask(self) -> int:
        return sum(1 << d for d in self.days)


def parse_session(text: str) -> Session:
    """Read one window (see the module docstring); ``SessionError`` says why it cannot be read."""
    if not isinstance(text, str):
        raise SessionError(f"session {text!r} must be a string like '09:30-16:00 America/New_York'")
    m = _WINDOW.match(text)
    if m is None:
        raise SessionError(f"session {text!r} is not '[DAYS ]HH:MM-HH:MM TZ' "
                           "(e.g. 'Mon-Fri 09:30-16:00 America/New_York')")
    start, end = _minutes(m["start"], text, allow_24=False), _minutes(m["end"], text, allow_24=True)
    if start == end:
        raise SessionError(f"session {text!r} is empty (start equals end)")
    tz = m["tz"]
    _zone(tz, text)
    days = _days(m["days"], text) if m["days"] else tuple(range(7))
    return Session(days, start, end, "UTC" if tz.upper() == "UTC" else tz)


def canonical_sessions(texts) -> tuple[str, ...]:
    """The canonical, sorted, de-duplicated form of several windows (the IR attribute)."""
    if isinstance(texts, str):
        texts = [texts]
    sessions = [parse_session(t) for t in texts]
    if not sessions:
        raise SessionError("sessions= needs at least one window")
    return tuple(sorted({s.text for s in sessions}))


def in_session(close: np.ndarray, texts) -> np.ndarray:
    """Whether each instant (epoch seconds, UTC) lies in any window — computed with pandas' time zone
    conversion, independently of the kernels' offset table."""
    import pandas as pd
    close = np.asarray(close, dtype=np.int64)
    out = np.zeros(len(close), dtype=bool)
    utc = pd.to_datetime(close, unit="s", utc=True)
    for s in (parse_session(t) for t in texts):
        local = utc.tz_convert(s.tz)
        minute = np.asarray(local.hour * 60 + local.minute)
        weekday = np.asarray(local.day_of_week)
        inside = (minute >= s.start) & (minute < s.end) if s.start < s.end else (minute >= s.start) | (minute < s.end)
        out |= inside & np.isin(weekday, s.days)
    return out


@lru_cache(maxsize=64)
def utc_offsets(tz: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(instants, offsets): from ``instants[i]`` on, local time = UTC + ``offsets[i]`` seconds, over
    ``TABLE_YEARS``.  Found by stepping a day at a time and bisecting to the second at each change."""
    zone = _zone(tz, tz)
    lo = int(datetime(TABLE_YEARS[0], 1, 1, tzinfo=timezone.utc).timestamp())
    hi = int(datetime(TABLE_YEARS[1], 1, 1, tzinfo=timezone.utc).timestamp())

    def offset(t: int) -> int:
        d = datetime.fromtimestamp(t, timezone.utc).astimezone(zone).utcoffset() or timedelta(0)
        return int(d.total_seconds())

    instants, offsets = [lo], [offset(lo)]
    day = 86_400
    t = lo
    while t < hi:
        nxt = min(t + day, hi)
        if offset(nxt) != offsets[-1]:
            a, b = t, nxt  # offset(a) == offsets[-1] != offset(b)
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == offsets[-1]:
                    a = mid
                else:
                    b = mid
            instants.append(b)
            offsets.append(offset(b))
        t = nxt
    return tuple(instants), tuple(offsets)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(hhmm: str, text: str, allow_24: bool) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    if m > 59 or h > 24 or (h == 24 and (m or not allow_24)):
        raise SessionError(f"session {text!r}: {hhmm} is not a time of day (00:00 to 24:00)")
    return h * 60 + m


def _zone(tz: str, text: str) -> ZoneInfo:
    try:
        return ZoneInfo("UTC" if tz.upper() == "UTC" else tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SessionError(f"session {text!r}: unknown time zone {tz!r} (an IANA name such as "
                           "'UTC', 'Europe/London' or 'America/New_York')") from None


def _days(spec: str, text: str) -> tuple[int, ...]:
    names = {d.lower(): i for i, d in enumerate(DAYS)}
    out: set[int] = set()
    for part in spec.split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(e.lower() not in names for e in ends):
            raise SessionError(f"session {text!r}: days {spec!r} are not like 'Mon-Fri' or 'Sat,Sun'")
        a, b = names[ends[0].lower()], names[ends[-1].lower()]
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(sorted(out))
