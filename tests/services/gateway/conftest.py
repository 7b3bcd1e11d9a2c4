"""The real gateway + world service under uvicorn, over SQLite (temp dir) or PostgreSQL + Redis."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest

from qmtl.config import DEFAULT_GATEWAY_POOL_SIZE
from qmtl.services.app import ServerThread
from qmtl.services.bus import Bus, InProcessBus, RedisStreamBus
from qmtl.services.gateway.app import create_app as create_gateway
from qmtl.services.gsg import SqlGraphStore
from qmtl.services.worldservice.app import create_app as create_world
from tests.redis_support import delete_keys

BODY_LIMIT = 256 * 1024


@dataclass
class Stack:
    url: str
    client: httpx.Client
    bus: Bus
    gateway_app: Any
    backend: str
    body_limit: int = BODY_LIMIT

    def make_world(self, world_id: str, **extra: Any) -> dict:
        resp = self.client.post("/worlds", json={"id": world_id, **extra})
        assert resp.status_code == 201, resp.text
        return resp.json()


@pytest.fixture
def stack(request: pytest.FixtureRequest, db_backend) -> Iterator[Stack]:
    """Parametrised through ``db_backend``: SQLite + in-process bus, PostgreSQL + Redis Streams."""
    kind = request.node.callspec.params["db_backend"]
    prefix = f"qmtl:test:{uuid.uuid4().hex[:8]}"
    if kind == "postgresql":
        bus: Bus = RedisStreamBus(request.getfixturevalue("redis_url"), prefix=prefix)
    else:
        bus = InProcessBus()
    world_app = create_world(db_backend("world"), bus)
    gateway_db = db_backend("gateway", pool_size=DEFAULT_GATEWAY_POOL_SIZE)  # as build_services does
    app = create_gateway(gateway_db, bus, SqlGraphStore(gateway_db), world_app, max_body_bytes=BODY_LIMIT)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield Stack(url, client, bus, app, kind)
    if isinstance(bus, RedisStreamBus):
        delete_keys(bus.url, prefix)
    bus.close()
