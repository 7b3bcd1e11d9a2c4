"""Reading the gateway's server-sent events (``GET /events``) as the SSE format defines them: ``id``,
``event`` and ``data`` fields, ``:`` comments (the gateway's keep-alives), a blank line ending an event.

Kept apart from what a reader does with the events, so the format is parsed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator


@dataclass(frozen=True)
class ServerEvent:
    """One event of a stream: ``id`` is the bus sequence the gateway sends as the SSE id."""

    id: str | None
    type: str
    data: str


async def server_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerEvent]:
    """The events in a stream's lines (an event cut off by the end of the stream is dropped)."""
    event_id: str | None = None
    event_type = "message"
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield ServerEvent(event_id, event_type, "\n".join(data))
            event_id, event_type, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
