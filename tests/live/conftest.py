"""Live-run fixtures: the real NATS JetStream server (127.0.0.1:4222) — a connection per test, and a
scope of unique names (bars stream and subject, world) whose streams and state entries are deleted
after the test; and the real gateway + world service under uvicorn on a free loopback port, over
SQLite with the in-process bus or PostgreSQL with Redis Streams (the parametrised ``db_backend``),
with the world service at hand so a test can hook its apply phases (``on_phase``).  No server:
skipped with the reason, failed under ``QMTL_REQUIRE_SERVICES=1``."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Iterator

import httpx
import pytest

from qmtl.services.app import ServerThread
from qmtl.services.bus import Bus, InProcessBus, RedisStreamBus
from qmtl.services.gateway.app import create_app as create_gateway
from qmtl.services.gsg import SqlGraphStore
from qmtl.services.worldservice.app import create_app as create_world
from qmtl.services.worldservice.service import WorldService
from tests.services.conftest import db_backend, pg_dsn, redis_url, unavailable  # noqa: F401  (fixtures used here)
from tests.redis_support import delete_keys

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
    from qmtl.live.lock import BUCKET as LOCK_BUCKET
    from qmtl.live.state_store import BUCKET
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for name in (scope.stream, f"QMTL_{scope.world}_paper", f"QMTL_{scope.world}_live"):
        try:
            await js.delete_stream(name)
        except NotFoundError:
            pass
    for bucket in (BUCKET, LOCK_BUCKET):
        try:
            kv = await js.key_value(bucket)
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


@dataclass
class WorldStack:
    url: str
    client: httpx.Client
    world_service: WorldService


@pytest.fixture
def world_stack(request: pytest.FixtureRequest, db_backend) -> Iterator[WorldStack]:  # noqa: F811
    kind = request.node.callspec.params["db_backend"]
    prefix = f"qmtl:test-gate:{uuid.uuid4().hex[:8]}"
    bus: Bus = RedisStreamBus(request.getfixturevalue("redis_url"), prefix=prefix) \
        if kind == "postgresql" else InProcessBus()
    world_app = create_world(db_backend("world"), bus)
    gateway_db = db_backend("gateway")
    app = create_gateway(gateway_db, bus, SqlGraphStore(gateway_db), world_app)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield WorldStack(url, client, world_app.state.world_service)
    if isinstance(bus, RedisStreamBus):
        delete_keys(bus.url, prefix)
    bus.close()
