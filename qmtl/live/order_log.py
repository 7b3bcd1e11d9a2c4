"""The commit log of a world: orders and fills on JetStream, one stream per world and domain.

Subjects ``{world}.{domain}.orders`` and ``{world}.{domain}.fills`` (stream ``QMTL_{world}_{domain}``).
Every record carries an idempotency key: an order's is derived from (strategy, node, instrument, bar
ts), a fill's from its order's; it is sent as ``Nats-Msg-Id`` so the server drops a repeat inside its
duplicate window, and the writers also read the log before sending (``keys``), so a restart long
after that window still never sends a record twice (docs/design.md "Live runs").
"""

from __future__ import annotations

import json
import re
from typing import Any, AsyncIterator, Literal

import blake3
from pydantic import BaseModel, ConfigDict, ValidationError

from .feed import BarRef

#: world and domain names become subject tokens and stream names
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: records read per request when reading a log through
_READ_BATCH = 256

Kind = Literal["orders", "fills"]


class LogError(ValueError):
    """A world or domain that cannot name a log."""


class OrderRecord(BaseModel):
    """One order: ``qty`` units (signed) of ``instrument`` decided at the close of the bar at
    ``bar_ts`` by the Execution node ``node`` of ``strategy``, to reach ``target``."""

    model_config = ConfigDict(frozen=True)

    key: str
    strategy: str
    node: str
    node_id: str
    instrument: str
    bar_ts: int
    #: the feed's bar interval (s): a fill's bar is on its grid
    interval: int
    qty: float
    target: float
    world: str
    domain: str
    fee_bps: float
    slippage_bps: float
    bar: BarRef
    sent_at: float
    #: the Execution node's bar interval (s), a multiple of ``interval``: the order fills at the
    #: first feed bar opening at or after ``bar_ts + clock`` (None, in records written before
    #: feeds served coarser sources: ``interval``)
    clock: int | None = None


class FillRecord(BaseModel):
    """One fill of an order: ``qty`` at ``price`` with ``fee``, at the open of the bar at ``bar_ts``."""

    model_config = ConfigDict(frozen=True)

    key: str
    order_key: str
    strategy: str
    node: str
    instrument: str
    bar_ts: int
    qty: float
    price: float
    fee: float
    world: str
    domain: str
    filled_at: float


Record = OrderRecord | FillRecord


def order_key(strategy: str, node_id: str, instrument: str, bar_ts: int) -> str:
    """The idempotency key of the order a node decides for an instrument at a bar."""
    return "o-" + blake3.blake3(json.dumps([strategy, node_id, instrument, int(bar_ts)]).encode()).hexdigest()[:40]


def fill_key(order_key_: str) -> str:
    """The idempotency key of an order's fill (one fill per market order)."""
    return "f-" + blake3.blake3(("fill:" + order_key_).encode()).hexdigest()[:40]


def check_token(value: str, what: str) -> str:
    if not _TOKEN.fullmatch(value or ""):
        raise LogError(f"{what} {value!r}: use 1-64 letters, digits, '_' or '-' (it names a JetStream "
                       "subject and stream)")
    return value


class OrderLog:
    """A world's orders and fills on a JetStream context ``js``."""

    def __init__(self, js: Any, world: str) -> None:
        self.js = js
        self.world = check_token(world, "world")
        self._ensured: set[str] = set()

    def subject(self, domain: str, kind: Kind) -> str:
        return f"{self.world}.{check_token(domain, 'domain')}.{kind}"

    def stream(self, domain: str) -> str:
        return f"QMTL_{self.world}_{check_token(domain, 'domain')}"

    async def ensure(self, domain: str) -> str:
        """The domain's stream, created (file storage, default duplicate window) when missing; an
        existing stream is used as it is configured."""
        name = self.stream(domain)
        if domain in self._ensured:
            return name
        from nats.js.errors import NotFoundError
        try:
            await self.js.stream_info(name)
        except NotFoundError:
            from nats.js.api import StreamConfig
            await self.js.add_stream(StreamConfig(name=name, subjects=[f"{self.world}.{domain}.orders",
                                                                       f"{self.world}.{domain}.fills"]))
        self._ensured.add(domain)
        return name

    async def append(self, record: Record) -> bool:
        """Append ``record`` once acknowledged by the server (stored durably); False when the server
        recognised its key as a duplicate and kept the first one."""
        kind: Kind = "orders" if isinstance(record, OrderRecord) else "fills"
        await self.ensure(record.domain)
        ack = await self.js.publish(self.subject(record.domain, kind), record.model_dump_json().encode(),
                                    stream=self.stream(record.domain), headers={"Nats-Msg-Id": record.key})
        return not ack.duplicate

    async def records(self, domain: str, kind: Kind | None = None) -> list[Record]:
        """Every record of the domain's log (one kind, or both in log order), read through now."""
        return [r async for r in self.read(domain, kind, follow=False)]

    async def read(self, domain: str, kind: Kind | None = None, follow: bool = False,
                   idle: float = 1.0) -> AsyncIterator[Record]:
        """The domain's records in log order; with ``follow``, then each new one as it is appended
        (until the caller stops iterating).  A record that does not parse is skipped."""
        from nats.js.errors import NotFoundError
        subject = self.subject(domain, kind) if kind else f"{self.world}.{domain}.*"
        stream = self.stream(domain)
        try:  # reading never creates a log, except to wait on it for what comes
            info = await self.js.stream_info(stream, subjects_filter=subject)
            empty = not sum((info.state.subjects or {}).values())
        except NotFoundError:
            empty = True
        if empty and not follow:
            return
        await self.ensure(domain)
        sub = await self.js.subscribe(subject, stream=stream, ordered_consumer=True)
        try:
            from nats.errors import TimeoutError as NatsTimeout
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle)
                except NatsTimeout:
                    if follow:
                        continue
                    return
                record = parse_record(msg.data, msg.subject)
                if record is not None:
                    yield record
                if not follow and msg.metadata.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()


def parse_record(payload: bytes, subject: str) -> Record | None:
    model = FillRecord if subject.endswith(".fills") else OrderRecord
    try:
        return model.model_validate_json(payload)
    except ValidationError:
        return None
