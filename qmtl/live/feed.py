"""Where live bars come from: the ``Feed`` interface and its NATS JetStream implementation.

A feed hands out messages one at a time and is told when each is done with (``ack``): delivery is
at least once, so a message not acknowledged before the process dies comes again after a restart.
The live runner acknowledges a bar only after its orders and its state are durably stored
(docs/design.md "Live runs").  ``BarRef`` says where a bar sits on its feed, so a broker can find
the bar after it (the one an order fills at) without keeping bars of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

#: seconds the server waits for an acknowledgement before delivering a bar again: how long a bar
#: taken by a process that died waits for its restart (a bar takes milliseconds; one still running
#: when this expires is delivered again and dropped as a duplicate once the first run stored it)
ACK_WAIT_S = 5.0


class FeedError(ValueError):
    """A feed that cannot be used as given (bad address, no stream holding the subject)."""


class BarRef(BaseModel):
    """A bar's place on its feed: JetStream stream, sequence number and subject."""

    model_config = ConfigDict(frozen=True)

    stream: str
    seq: int
    subject: str


@dataclass(frozen=True)
class FeedMessage:
    payload: bytes
    ref: BarRef
    ack: Callable[[], Awaitable[None]]


class Feed(Protocol):
    async def next(self, timeout: float) -> FeedMessage | None:
        """The next message, or None when none came within ``timeout`` seconds."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class FeedAddress:
    """``nats://host:port/subject``: the server and the subject bars are published on."""

    server: str
    subject: str

    @classmethod
    def parse(cls, url: str) -> "FeedAddress":
        parts = urlsplit(url)
        subject = parts.path.lstrip("/")
        if parts.scheme not in ("nats", "tls") or not parts.hostname or not subject:
            raise FeedError(f"--feed {url!r}: expected nats://HOST:PORT/SUBJECT, e.g. "
                            "nats://127.0.0.1:4222/bars.BTC")
        if any(c in subject for c in " \t/") or ".." in subject or subject.startswith("."):
            raise FeedError(f"--feed {url!r}: {subject!r} is not a NATS subject")
        return cls(f"{parts.scheme}://{parts.netloc}", subject)


def stream_subjects(subject: str) -> str:
    """The subjects a stream for ``subject``'s bars could hold: its first token's whole tree
    (``bars.BTC`` -> ``bars.>``), or the subject itself when it has one token."""
    first = subject.split(".", 1)[0]
    return f"{first}.>" if "." in subject and first not in ("*", ">") else subject


async def stream_of(js, subject: str) -> str:
    """The JetStream stream holding ``subject``; ``FeedError`` saying how to make one when none does."""
    from nats.js.errors import NotFoundError
    try:
        return await js.find_stream_name_by_subject(subject)
    except NotFoundError:
        raise FeedError(f"no JetStream stream holds subject {subject!r}: create one for the feed first, "
                        f"e.g. nats stream add BARS --subjects {stream_subjects(subject)!r}") from None


async def check_feed(address: FeedAddress) -> str:
    """The stream ``address``'s bars are on, asked before a process warms up and follows its world, so a
    missing server or stream is one line at once (``NatsUnreachable``, ``FeedError``)."""
    from .connection import connect
    nc = await connect(address.server, "qmtl-live-check")
    try:
        return await stream_of(nc.jetstream(), address.subject)
    finally:
        await nc.close()


class JetStreamFeed:
    """Bars from a JetStream durable pull consumer on one subject (wildcards allowed): the consumer
    remembers on the server what was acknowledged, so a restarted process resumes where it was."""

    def __init__(self, sub, stream: str) -> None:
        self._sub, self.stream = sub, stream

    @classmethod
    async def open(cls, js, subject: str, durable: str, start: int | None = None) -> "JetStreamFeed":
        """The durable consumer ``durable`` on ``subject``'s stream; when it does not exist yet it is
        made to start at messages the server stored at or after epoch second ``start`` (None: the
        first).  An existing consumer resumes where it was, whatever ``start`` says."""
        from datetime import datetime, timezone
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        stream = await stream_of(js, subject)
        where = dict(deliver_policy=DeliverPolicy.ALL) if start is None else dict(
            deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=datetime.fromtimestamp(start, timezone.utc))
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_ack_pending=1,
                                filter_subject=subject, **where)
        sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        return cls(sub, stream)

    async def next(self, timeout: float) -> FeedMessage | None:
        from nats.errors import TimeoutError as NatsTimeout
        try:
            msgs = await self._sub.fetch(1, timeout=timeout)
        except (NatsTimeout, asyncio.TimeoutError):
            return None
        msg = msgs[0]
        ref = BarRef(stream=self.stream, seq=msg.metadata.sequence.stream, subject=msg.subject)
        return FeedMessage(msg.data, ref, msg.ack)

    async def close(self) -> None:
        await self._sub.unsubscribe()
