"""One live process per (world, strategy): a lock entry in a JetStream key-value bucket.

The order sizing assumes one writer (an order is the simulated target minus the exposure on the log;
two processes would each send it).  So a process holds ``{world}.{strategy}`` in ``qmtl_live_locks``
while it runs: created only if absent, refreshed every ``REFRESH_S`` with a compare-and-set on the
revision it wrote (so a holder that lost the entry knows it), removed on a clean stop.  The bucket's
entries expire ``LOCK_TTL_S`` after their last write, so the lock of a process killed with SIGKILL
frees itself.

A process that finds the entry taken waits, saying so, and watches it: a living holder rewrites it
within ``REFRESH_S``, and the waiter then refuses with one line (``LockHeld``) naming the holder; an
entry that stays unchanged until it expires was left by a dead process, and the waiter takes over.
So a restart after kill -9 waits at most ``LOCK_TTL_S`` (about the feed's redelivery wait,
``feed.ACK_WAIT_S``, which such a restart waits for anyway), and a second process beside a living one
is refused within about ``REFRESH_S``.  The expiry is five refresh periods: a holder whose refreshes
fail that long (its NATS connection gone) cannot prove it still holds the lock, stops sending orders
(``check``) and stops (``LockLost``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from pydantic import BaseModel, ValidationError

BUCKET = "qmtl_live_locks"
#: seconds after its last refresh a holder's entry expires (the bucket's TTL)
LOCK_TTL_S = 5.0
#: seconds between a holder's refreshes
REFRESH_S = 1.0
#: how often a waiting process looks at the entry again
_POLL_S = 0.2

log = logging.getLogger("qmtl.live")


class NotExclusive(RuntimeError):
    """This process may not (or may no longer) run the world's strategy."""


class LockHeld(NotExclusive):
    """Another living process runs this world's strategy."""


class LockLost(NotExclusive):
    """This process's lock was taken or could not be refreshed in time: it must stop trading."""


class Holder(BaseModel):
    """Who holds a lock: the entry's value, read back by a process refused or waiting."""

    pid: int
    host: str
    started_at: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))
        return f"pid {self.pid} on {self.host}, started {started}"


def lock_key(world: str, strategy: str) -> str:
    """The bucket key of (world, strategy): KV keys allow ``[-/_=.a-zA-Z0-9]``."""
    return f"{world}.{strategy.removeprefix('blake3:')[:32]}"


class ProcessLock:
    """The lock of one (world, strategy), once ``acquire`` returned it."""

    def __init__(self, kv: Any, key: str, holder: Holder, revision: int, what: str) -> None:
        self._kv, self.key, self.holder, self._revision, self._what = kv, key, holder, revision, what
        self._confirmed = time.monotonic()

    @classmethod
    async def acquire(cls, js: Any, world: str, strategy: str) -> "ProcessLock":
        """Take the lock, waiting for the entry of a dead holder to expire; ``LockHeld`` when a living
        process holds it (it refreshed the entry while this one waited)."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
        kv = await _bucket(js)
        key, what = lock_key(world, strategy), f"world {world} strategy {strategy}"
        me = Holder(pid=os.getpid(), host=socket.gethostname(), started_at=time.time())
        seen: int | None = None
        deadline = time.monotonic() + LOCK_TTL_S + 2 * REFRESH_S  # an entry outliving this is refreshed
        while True:
            try:
                revision = await kv.create(key, me.model_dump_json().encode())
                log.info("live: %s: this process holds the lock (%s)", what, me.describe())
                return cls(kv, key, me, revision, what)
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue  # expired or released just now: create again
            other = _holder(entry.value)
            if seen is None:
                seen = entry.revision
                log.warning("live: %s is held by another process (%s); waiting up to %g s: a process "
                            "killed without stopping leaves its lock until it expires", what, other,
                            LOCK_TTL_S)
            elif entry.revision != seen or time.monotonic() > deadline:
                raise LockHeld(f"another live process runs {what} ({other}): stop it first, "
                               f"one process per world and strategy sends its orders")
            await asyncio.sleep(_POLL_S)

    def check(self) -> None:
        """``LockLost`` unless the lock was confirmed within its expiry: no order is sent on a lock
        this process cannot prove it holds."""
        since = time.monotonic() - self._confirmed
        if since >= LOCK_TTL_S:
            raise LockLost(f"{self._what}: the lock was not refreshed for {since:.1f} s "
                           f"(it expires after {LOCK_TTL_S:g} s); stopping so two processes never trade it")

    async def refresh(self) -> None:
        """Rewrite the entry if it is still this process's; ``LockLost`` if another took it."""
        from nats.js.errors import KeyWrongLastSequenceError
        try:
            self._revision = await self._kv.update(self.key, self.holder.model_dump_json().encode(),
                                                   last=self._revision)
        except KeyWrongLastSequenceError:
            raise LockLost(f"{self._what}: the lock was taken by another process after this one failed "
                           f"to refresh it within {LOCK_TTL_S:g} s; stopping") from None
        self._confirmed = time.monotonic()

    async def keep(self) -> None:
        """Refresh until cancelled; a failed refresh is retried until the lock is lost (``LockLost``)."""
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except LockLost:
                raise
            except Exception as exc:  # NATS away for a moment: the next refresh may work
                log.warning("live: %s: refreshing the lock failed: %s: %s", self._what, type(exc).__name__, exc)
                self.check()

    async def release(self) -> None:
        """Remove the entry if it is still this process's (a clean stop frees the lock at once)."""
        from nats.js.errors import KeyWrongLastSequenceError
        try:
            await self._kv.delete(self.key, last=self._revision)
        except KeyWrongLastSequenceError:
            pass  # not ours any more
        except Exception as exc:  # NATS away: the entry expires by itself; the stop's own error matters
            log.warning("live: %s: releasing the lock failed (%s: %s); it expires within %g s", self._what,
                        type(exc).__name__, exc, LOCK_TTL_S)


async def _bucket(js: Any) -> Any:
    """The lock bucket, with entries expiring ``LOCK_TTL_S`` after their last write.

    A bucket made otherwise (by hand, or by another tool, without a TTL or with a longer one) is set
    to that TTL before use: without it the entry of a holder killed with SIGKILL would never expire and
    every restart would be refused until someone deleted it by hand."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError
    try:
        kv = await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=LOCK_TTL_S))
    stream = f"KV_{BUCKET}"  # the stream JetStream keeps a bucket in
    config = (await js.stream_info(stream)).config
    if not config.max_age or abs(config.max_age - LOCK_TTL_S) > 1e-3:
        log.warning("live: the lock bucket %s expired entries after %s; setting it to %g s", BUCKET,
                    f"{config.max_age:g} s" if config.max_age else "never", LOCK_TTL_S)
        config.max_age = LOCK_TTL_S
        await js.update_stream(config)
    return kv


def _holder(value: bytes | None) -> str:
    try:
        return Holder.model_validate_json(value or b"").describe()
    except ValidationError:
        return "a holder this version cannot describe"
