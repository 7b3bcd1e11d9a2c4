"""Where a live process keeps its kernels' state between bars: a JetStream key-value bucket on the
same server as its feed and its log, so a process restarted anywhere resumes from it.

One entry per (world, strategy, instrument), rewritten after every bar: ``LiveKernels.digest`` (the
generated module's and the snapshot layout's: a snapshot of other kernels is never restored), the
last feed bar processed and ``LiveKernels.snapshot()`` (the ``KeyRuntime``'s state and the sources'
open buckets).  A strategy with a portfolio-total cap keeps one entry for all its instruments
instead (``book_state_key``), written after every bar: an instant is decided for all of them at once,
so their states, the held book and the bars waiting for their instant are stored together.  The value is a pickle: it holds numpy state arrays, the opaque functions' windows and
the open buckets' feed bars, and is only ever read back by the process that wrote it or its restart.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from typing import Any

BUCKET = "qmtl_live_state"


@dataclass(frozen=True)
class KeyState:
    digest: str
    last_ts: int
    snapshot: dict


def state_key(world: str, strategy: str, instrument: Any) -> str:
    """The bucket key of one instrument's state (KV keys allow ``[-/_=.a-zA-Z0-9]``)."""
    token = "_" if instrument is None else re.sub(r"[^A-Za-z0-9_-]", lambda m: f"={ord(m.group()):x}", str(instrument))
    return f"{world}.{strategy.removeprefix('blake3:')[:32]}.{token}"


def book_state_key(world: str, strategy: str) -> str:
    """The bucket key of a capped run's one state entry (every instrument, the held book and the
    waiting bars, ``LiveRunner``): ``==book`` is no instrument's token (``=`` only starts a hex escape)."""
    return f"{world}.{strategy.removeprefix('blake3:')[:32]}.==book"


class StateStore:
    def __init__(self, kv: Any) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: Any) -> "StateStore":
        from nats.js.errors import BucketNotFoundError
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(bucket=BUCKET, history=1)
        return cls(kv)

    async def load(self, key: str) -> KeyState | None:
        from nats.js.errors import KeyNotFoundError
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return pickle.loads(entry.value) if entry.value else None

    async def save(self, key: str, state: KeyState) -> None:
        await self._kv.put(key, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    async def delete(self, key: str) -> None:
        await self._kv.purge(key)
