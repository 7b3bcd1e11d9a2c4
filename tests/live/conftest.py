"""The real gateway + world service for the order gate's tests, under uvicorn on a free loopback port,
over SQLite with the in-process bus or PostgreSQL with Redis Streams (the parametrised ``db_backend``).

``world_stack`` keeps the world service at hand, so a test can hook its apply phases (``on_phase``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest

from qmtl.services.app import ServerThread
from qmtl.services.bus import Bus, InProcessBus, RedisStreamBus
from qmtl.services.gateway.app import create_app as create_gateway
from qmtl.services.gsg import SqlGraphStore
from qmtl.services.worldservice.app import create_app as create_world
from qmtl.services.worldservice.service import WorldService
from tests.services.conftest import db_backend, pg_dsn, redis_url  # noqa: F401  (fixtures used here)

GOOD = {"sharpe": 2.0, "max_drawdown": 0.05, "trades": 100, "win_rate": 0.6, "profit_factor": 2.0}
FP = "blake3:" + "f1" * 32


@dataclass
class WorldStack:
    url: str
    client: httpx.Client
    world_service: WorldService

    def trading_world(self, world: str, strategy: str, *, live: bool = False, **extra: Any) -> None:
        """A world whose decision for ``strategy`` is paper (sandbox) or live, with it active."""
        body: dict[str, Any] = {"id": world, **extra}
        if live:
            body |= {"allow_live": True, "policy": {"thresholds": {"sharpe": {"min": 1.0}}}}
        assert self.client.post("/worlds", json=body).status_code == 201
        self.evaluate(world, strategy)
        self.activate(world, strategy, True)

    def evaluate(self, world: str, strategy: str) -> None:
        resp = self.client.post(f"/worlds/{world}/evaluate", json={
            "strategies": [{"strategy_id": strategy, "metrics": GOOD}],
            "as_of": "2024-06-01T00:00:00Z", "dataset_fingerprint": FP})
        assert resp.status_code == 200, resp.text

    def activate(self, world: str, strategy: str, active: bool) -> None:
        resp = self.client.put(f"/worlds/{world}/activation", json={"strategy_id": strategy, "active": active})
        assert resp.status_code == 200, resp.text


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
