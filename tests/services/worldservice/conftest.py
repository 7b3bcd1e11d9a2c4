"""Fixtures for the world-service suites: the REAL app under uvicorn, over SQLite or PostgreSQL+Redis.

``ws_backend`` yields a ``Backend`` that can start (and restart) the service on a free loopback port.
PostgreSQL runs get a schema of their own per test (dropped after); Redis runs a key prefix of their own.
Absent servers skip with the reason, or fail when ``QMTL_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from qmtl.services.bus import Bus, InProcessBus, RedisStreamBus
from qmtl.services.storage.sql import Database
from qmtl.services.worldservice.activation_cache import MemoryActivationCache, RedisActivationCache
from qmtl.services.worldservice.app import create_app
from tests.services.conftest import PG_BASE as PG
from tests.services.conftest import REDIS_URL as REDIS
from tests.services.conftest import unavailable
from tests.redis_support import delete_keys

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    server: uvicorn.Server
    thread: threading.Thread
    db: Database
    url: str


@dataclass
class Backend:
    name: str
    dsn: str
    bus: Bus
    cache: Any
    running: list[Running] = field(default_factory=list)

    def start(self, max_body_bytes: int = 1 << 20) -> str:
        """Start a fresh app instance (new Database connection) and return its base URL."""
        db = Database.connect(self.dsn)
        app = create_app(db, self.bus, self.cache, max_body_bytes=max_body_bytes)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        self.running.append(Running(server, thread, db, url))
        return url

    def stop(self) -> None:
        while self.running:
            r = self.running.pop()
            r.server.should_exit = True
            r.thread.join(timeout=10)
            r.db.close()


@pytest.fixture(params=["sqlite", "postgresql+redis"])
def ws_backend(request, tmp_path) -> Iterator[Backend]:
    if request.param == "sqlite":
        backend = Backend("sqlite", f"sqlite:///{tmp_path / 'ws.db'}", InProcessBus(), MemoryActivationCache())
        yield backend
        backend.stop()
        return
    try:
        import psycopg

        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except Exception as exc:
        unavailable(f"PostgreSQL not reachable at {PG}: {exc}")
    prefix = f"qmtl-test-ws:{uuid.uuid4().hex[:10]}"
    try:
        bus = RedisStreamBus(REDIS, prefix=f"{prefix}:bus")
    except Exception as exc:
        admin.close()
        unavailable(f"Redis not reachable at {REDIS}: {exc}")
    schema = f"qmtl_ws_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    cache = RedisActivationCache(REDIS, prefix=f"{prefix}:activation")
    backend = Backend("postgresql+redis", f"{PG}?options=-csearch_path%3D{schema}", bus, cache)
    try:
        yield backend
    finally:
        backend.stop()
        delete_keys(REDIS, prefix)
        bus.close()
        cache.close()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture
def client(ws_backend: Backend) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ws_backend.start(), timeout=30, headers={"X-Actor": "tester"}) as c:
        yield c
