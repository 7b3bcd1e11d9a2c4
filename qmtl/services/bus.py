"""The control bus: ordered, idempotent event topics between the services and their clients.

Two implementations behind one ``Bus`` seam:

* ``InProcessBus`` (dev profile): lists in memory guarded by a condition variable, nothing to start.
* ``RedisStreamBus`` (prod profile): one Redis Stream per topic.  The stream entry ID is ``<seq>-0``, so
  Redis itself enforces the strictly increasing per-topic ``seq`` and ``XREAD`` after ``<seq>-0`` is
  exactly "events after seq".  Sequence allocation, the idempotency check and the append run in one Lua
  script, so two publishers racing with the same key still produce a single event.

Idempotency is scoped per topic: publishing the same ``idempotency_key`` on a topic again returns the
original event (its original ``type``/``data``/``seq``) and appends nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

TOPIC_ACTIVATION = "activation"  # ActivationUpdated, WorldDeleted
TOPIC_DECISION = "decision"  # DecisionUpdated
TOPIC_APPLY = "apply"  # ApplyPhase


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    type: str
    data: dict[str, Any]
    idempotency_key: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "type": self.type, "data": self.data,
                "idempotency_key": self.idempotency_key, "seq": self.seq}


class BusError(Exception):
    """Bad publish arguments or an unusable bus backend."""


def _checked_payload(topic: str, type: str, data: dict[str, Any], idempotency_key: str) -> str:
    """Validate publish arguments and return ``data`` as JSON (both buses store the same bytes)."""
    if not topic or not isinstance(topic, str):
        raise BusError("topic must be a non-empty string")
    if not type or not isinstance(type, str):
        raise BusError("event type must be a non-empty string")
    if not idempotency_key or not isinstance(idempotency_key, str):
        raise BusError("idempotency_key must be a non-empty string")
    if not isinstance(data, dict):
        raise BusError(f"event data must be a dict, got {data.__class__.__name__}")
    try:
        return json.dumps(data, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BusError(f"event data for {topic}/{type} is not JSON-serialisable: {exc}") from exc


class Bus(ABC):
    @abstractmethod
    def publish(self, topic: str, type: str, data: dict[str, Any], idempotency_key: str) -> Event:
        """Append an event (or return the one already published under ``idempotency_key``)."""

    @abstractmethod
    def read(self, topic: str, after_seq: int = 0, timeout: float = 0.0) -> list[Event]:
        """Events of ``topic`` with ``seq > after_seq`` in order; wait up to ``timeout`` s for the first."""

    @abstractmethod
    def last_seq(self, topic: str) -> int:
        """The seq of ``topic``'s latest event (0 when it has none): where a reader that wants only
        what is published from now on starts."""

    async def aread(self, topic: str, after_seq: int = 0, timeout: float = 0.0) -> list[Event]:
        """``read`` for the event loop: waiting holds no thread, so an idle stream costs nothing.
        This fallback runs ``read`` in a worker thread; both buses here wait natively."""
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.read, topic, after_seq, timeout)

    def close(self) -> None:
        """Release connections; the in-process bus has none."""


class InProcessBus(Bus):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: dict[str, list[Event]] = {}
        self._by_key: dict[tuple[str, str], Event] = {}
        # Event-loop readers waiting on a topic: woken from whichever thread publishes.
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def publish(self, topic: str, type: str, data: dict[str, Any], idempotency_key: str) -> Event:
        payload = _checked_payload(topic, type, data, idempotency_key)
        with self._cond:
            existing = self._by_key.get((topic, idempotency_key))
            if existing is not None:
                return existing
            events = self._events.setdefault(topic, [])
            # Store a JSON round-trip copy: later mutation of the caller's dict cannot rewrite history.
            event = Event(topic, type, json.loads(payload), idempotency_key, len(events) + 1)
            events.append(event)
            self._by_key[(topic, idempotency_key)] = event
            self._cond.notify_all()
            waiters = list(self._waiters.get(topic, ()))
        for loop, ready in waiters:
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # that loop has closed: its reader is gone
                pass
        return event

    def last_seq(self, topic: str) -> int:
        with self._cond:
            return len(self._events.get(topic, []))

    async def aread(self, topic: str, after_seq: int = 0, timeout: float = 0.0) -> list[Event]:
        ready = asyncio.Event()
        waiter = (asyncio.get_running_loop(), ready)
        with self._cond:
            events = self._events.get(topic, [])
            if len(events) > after_seq or timeout <= 0:
                return events[max(after_seq, 0):]
            self._waiters.setdefault(topic, set()).add(waiter)
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._cond:
                self._waiters.get(topic, set()).discard(waiter)
        with self._cond:
            return self._events.get(topic, [])[max(after_seq, 0):]

    def read(self, topic: str, after_seq: int = 0, timeout: float = 0.0) -> list[Event]:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while True:
                events = self._events.get(topic, [])
                if len(events) > after_seq:
                    return events[max(after_seq, 0):]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)


# KEYS: stream, counter, idempotency hash.  ARGV: key, type, data.
# Returns the seq of the event for this key (new or original).
_PUBLISH_LUA = """
local seq = redis.call('HGET', KEYS[3], ARGV[1])
if seq then return tonumber(seq) end
seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], tostring(seq) .. '-0', 'type', ARGV[2], 'data', ARGV[3], 'key', ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], seq)
return seq
"""


#: The largest event sequence number (a signed 64-bit integer, what SQL columns and Redis IDs can hold).
MAX_SEQ = 2**63 - 1
#: One blocking XREAD waits at most this long (well below the client's socket timeout).
BLOCK_SLICE_S = 2.0
#: Async connections per event loop: each waiting stream holds one while its XREAD blocks.
MAX_ASYNC_CONNECTIONS = 1000


class RedisStreamBus(Bus):
    def __init__(self, url: str, prefix: str = "qmtl:bus") -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                           socket_timeout=BLOCK_SLICE_S + 5)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise BusError(f"cannot reach Redis for the control bus at {url}: {exc}") from exc
        self._publish_script = self._redis.register_script(_PUBLISH_LUA)
        self._async_clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def _keys(self, topic: str) -> list[str]:
        base = f"{self.prefix}:{topic}"
        return [f"{base}:stream", f"{base}:seq", f"{base}:keys"]

    def publish(self, topic: str, type: str, data: dict[str, Any], idempotency_key: str) -> Event:
        payload = _checked_payload(topic, type, data, idempotency_key)
        keys = self._keys(topic)
        seq = int(self._publish_script(keys=keys, args=[idempotency_key, type, payload]))
        entries = self._redis.xrange(keys[0], f"{seq}-0", f"{seq}-0")
        if not entries:
            raise BusError(f"event {topic}#{seq} is missing from its Redis stream (was it trimmed?)")
        return self._event(topic, *entries[0])

    def last_seq(self, topic: str) -> int:
        return int(self._redis.get(self._keys(topic)[1]) or 0)

    def read(self, topic: str, after_seq: int = 0, timeout: float = 0.0) -> list[Event]:
        """Blocks in slices of at most ``BLOCK_SLICE_S``: the client's socket timeout (a few seconds,
        so a dead server is noticed) must never cut a long wait short."""
        if after_seq > MAX_SEQ:
            raise BusError(f"after_seq {after_seq} is beyond the largest sequence number {MAX_SEQ}")
        stream = self._keys(topic)[0]
        start = f"{max(after_seq, 0)}-0"
        entries = self._redis.xrange(stream, f"({start}", "+")
        deadline = time.monotonic() + max(timeout, 0.0)
        while not entries and (remaining := deadline - time.monotonic()) > 0:
            block_ms = max(int(min(remaining, BLOCK_SLICE_S) * 1000), 1)
            found = self._redis.xread({stream: start}, block=block_ms)
            entries = found[0][1] if found else []
        return [self._event(topic, entry_id, fields) for entry_id, fields in entries]

    async def aread(self, topic: str, after_seq: int = 0, timeout: float = 0.0) -> list[Event]:
        """As ``read``, over ``redis.asyncio``: a blocked XREAD holds a socket, not a thread."""
        if after_seq > MAX_SEQ:
            raise BusError(f"after_seq {after_seq} is beyond the largest sequence number {MAX_SEQ}")
        client = self._async_client()
        stream = self._keys(topic)[0]
        start = f"{max(after_seq, 0)}-0"
        entries = await client.xrange(stream, f"({start}", "+")
        deadline = time.monotonic() + max(timeout, 0.0)
        while not entries and (remaining := deadline - time.monotonic()) > 0:
            block_ms = max(int(min(remaining, BLOCK_SLICE_S) * 1000), 1)
            found = await client.xread({stream: start}, block=block_ms)
            entries = found[0][1] if found else []
        return [self._event(topic, entry_id, fields) for entry_id, fields in entries]

    def _async_client(self) -> Any:
        """One ``redis.asyncio`` client per event loop (a client's connections belong to one loop)."""
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=5,
                                                  socket_timeout=BLOCK_SLICE_S + 5,
                                                  max_connections=MAX_ASYNC_CONNECTIONS)
            self._async_clients[loop] = client
        return client

    @staticmethod
    def _event(topic: str, entry_id: str, fields: dict[str, str]) -> Event:
        return Event(topic, fields["type"], json.loads(fields["data"]), fields["key"],
                     int(entry_id.split("-", 1)[0]))

    def close(self) -> None:
        self._redis.close()


def make_bus(config: Any = None) -> Bus:
    """Pick the bus for a config: a Redis Stream bus when a Redis DSN is configured, else in-process.

    ``config`` may be a ``QmtlConfig`` (uses ``worldservice.redis_dsn``, then ``gateway.redis_dsn``), a
    Redis URL string, or ``None``/``""`` for the in-process bus.  A prod profile without a Redis DSN is an
    error rather than a silent in-memory fallback.
    """
    if config is None or isinstance(config, str):
        return RedisStreamBus(config) if config else InProcessBus()
    dsn = _redis_dsn(config)
    if dsn:
        return RedisStreamBus(dsn, prefix=f"{getattr(config, 'redis_prefix', 'qmtl')}:bus")
    if getattr(config, "profile", "dev") == "prod":
        raise BusError("profile 'prod' needs worldservice.redis_dsn (or gateway.redis_dsn) for the bus")
    return InProcessBus()


def _redis_dsn(config: Any) -> str | None:
    for section in ("worldservice", "gateway"):
        dsn = getattr(getattr(config, section, None), "redis_dsn", None)
        if dsn:
            return str(dsn)
    return None
