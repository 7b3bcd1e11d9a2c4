"""Relaying control-bus events to SDK clients: Server-Sent Events, and a plain JSON poll.

Both wait on the bus asynchronously (``Bus.aread``): an open stream holds no worker thread, so idle
streams cost nothing.  An SSE stream sends ``id: <seq>`` with each event, so a client that reconnects with
``Last-Event-ID`` (or ``after=``) resumes exactly after the last event it saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from ..bus import Bus, Event

# Each bus read waits at most this long, so a closed client is noticed promptly.
READ_WAIT_S = 1.0
KEEPALIVE_S = 15.0
TOPIC_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def sse_frame(event: Event) -> str:
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"


async def sse_stream(bus: Bus, topic: str, after: int, duration: float | None) -> AsyncIterator[str]:
    """Events of ``topic`` after ``after`` until ``duration`` seconds pass (forever when None)."""
    deadline = None if duration is None else time.monotonic() + duration
    last_sent = time.monotonic()
    yield ": connected\n\n"
    while deadline is None or time.monotonic() < deadline:
        wait = READ_WAIT_S if deadline is None else max(0.0, min(READ_WAIT_S, deadline - time.monotonic()))
        events = await bus.aread(topic, after, wait)
        for event in events:
            after = event.seq
            yield sse_frame(event)
        if events:
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(0)


async def poll(bus: Bus, topic: str, after: int, wait: float) -> dict[str, Any]:
    events = await bus.aread(topic, after, wait)
    return {"topic": topic, "events": [e.to_json() for e in events],
            "last_seq": events[-1].seq if events else after}
