"""Live-run fixtures on the real NATS JetStream server (127.0.0.1:4222): a connection per test, and a
scope of unique names (bars stream and subject, world) whose streams and state entries are deleted
after the test.  No server: skipped with the reason, failed under ``QMTL_REQUIRE_SERVICES=1``."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

import pytest

from tests.services.conftest import unavailable

NATS_URL = os.environ.get("QMTL_TEST_NATS", "nats://127.0.0.1:4222")


@dataclass(frozen=True)
class Scope:
    """Names one test owns: a bars stream holding ``{prefix}.bars.>``, and a world."""

    prefix: str
    stream: str
    world: str

    def subject(self, symbol: str) -> str:
        return f"{self.prefix}.bars.{symbol}"

    def feed(self, symbol: str) -> str:
        return f"{NATS_URL}/{self.subject(symbol)}"


async def _reachable() -> str | None:
    import nats
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    except Exception as exc:  # any failure to connect means "no server here"
        return f"NATS not reachable at {NATS_URL}: {exc}"
    try:
        await nc.jetstream().account_info()
    except Exception as exc:
        return f"NATS at {NATS_URL} has no JetStream: {exc}"
    finally:
        await nc.close()
    return None


async def _cleanup(scope: Scope) -> None:
    import nats
    from nats.js.errors import NotFoundError
    from qmtl.live.state_store import BUCKET
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for name in (scope.stream, f"QMTL_{scope.world}_paper", f"QMTL_{scope.world}_live"):
        try:
            await js.delete_stream(name)
        except NotFoundError:
            pass
    try:
        kv = await js.key_value(BUCKET)
        for key in await kv.keys():
            if key.startswith(scope.world + "."):
                await kv.purge(key)
    except Exception:  # no bucket, or no keys: nothing of this test's to remove
        pass
    await nc.close()


@pytest.fixture
def scope() -> Scope:
    reason = asyncio.run(_reachable())
    if reason:
        unavailable(reason)
    tag = uuid.uuid4().hex[:10]
    s = Scope(prefix=f"t{tag}", stream=f"TBARS_{tag}", world=f"w{tag}")
    yield s
    asyncio.run(_cleanup(s))
