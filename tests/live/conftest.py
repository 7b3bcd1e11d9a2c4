"""The real gateway + world service for the order gate's tests, under uvicorn on a free loopback port,
over SQLite with the in-process bus or PostgreSQL with Redis Streams (the parametrised ``db_backend``).

``world_stack`` keeps the world service at hand, so a test can hook its apply phases (``on_phase``).
"""

from __future__ import annotations

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
from tests.services.conftest import db_backend, pg_dsn, redis_url  # noqa: F401  (fixtures used here)


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
    if isinstance(bus, RedisStreamBus):  # Redis has no per-test schema: drop this test's streams
        import redis

        keys = redis.Redis.from_url(bus.url)
        found = list(keys.scan_iter(f"{prefix}:*"))
        if found:
            keys.delete(*found)
        keys.close()
    bus.close()
