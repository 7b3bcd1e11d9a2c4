"""Shared fixtures for the service tests: real backends, never mocks.

* ``pg_dsn`` — a PostgreSQL DSN whose ``search_path`` is a schema made for this test session (and
  dropped after), on 127.0.0.1:5432 (user postgres, db ``test``).
* ``redis_url`` — Redis on 127.0.0.1:6379.
* ``db_backend`` — parametrised over ``sqlite`` and ``postgresql``; yields a ``Database`` factory.

When a server is absent the test is skipped with the reason, unless ``QMTL_REQUIRE_SERVICES=1``, in
which case it fails: CI must not pass by skipping everything.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

PG_BASE = os.environ.get("QMTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QMTL_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unavailable(reason: str) -> None:
    """Skip (or fail, when services are required) because a backend is not there."""
    if os.environ.get("QMTL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing (QMTL_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    try:
        import psycopg

        conn = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except Exception as exc:  # any failure to connect means "no server here"
        unavailable(f"PostgreSQL not reachable at {PG_BASE}: {exc}")
    schema = f"qmtl_e2_{uuid.uuid4().hex[:10]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    conn.close()
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:  # a fresh connection: a test may have restarted the server meanwhile
        with psycopg.connect(PG_BASE, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], object]]:
    """``make(name, pool_size=1)`` opens a fresh database of the parametrised kind; all are closed after the test.

    PostgreSQL tables are made unique per call by a fresh schema, so tests never see each other's rows.
    """
    from qmtl.services.storage.sql import Database

    opened: list = []
    schemas: list[str] = []
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_dsn")

    def make(name: str = "db", pool_size: int = 1) -> object:
        if request.param == "sqlite":
            db = Database.connect(f"sqlite:///{tmp_path / (name + '.db')}")
        else:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            admin = Database.connect(base)
            admin.execute(f'CREATE SCHEMA "{schema}"')
            admin.close()
            schemas.append(schema)
            db = Database.connect(base.split("?")[0] + f"?options=-csearch_path%3D{schema}",
                                  pool_size=pool_size)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()
    if schemas:
        admin = Database.connect(base)
        for schema in schemas:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def prod_config(home: Path, label: str) -> Iterator["QmtlConfig"]:
    """A prod-profile config (PostgreSQL + Redis) whose schemas and keys are this caller's own: yielded
    once, then dropped when the generator is finished.  Skips (or fails under QMTL_REQUIRE_SERVICES=1)
    when either server is absent."""
    from qmtl.config import QmtlConfig

    try:
        import psycopg
        import redis

        admin = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
        rds = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        rds.ping()
    except Exception as exc:  # any failure to connect means "no server here"
        unavailable(f"PostgreSQL/Redis not reachable ({PG_BASE}, {REDIS_URL}): {exc}")
    tag = uuid.uuid4().hex[:10]
    schemas = [f"qmtl_{label}_gw_{tag}", f"qmtl_{label}_ws_{tag}"]
    for schema in schemas:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    prefix = f"qmtl-{label}:{tag}"
    dsn = [f"{PG_BASE}?options=-csearch_path%3D{schema}" for schema in schemas]
    try:
        yield QmtlConfig.model_validate({
            "profile": "prod", "home": str(home), "redis_prefix": prefix,
            "gateway": {"database_dsn": dsn[0], "redis_dsn": REDIS_URL},
            "worldservice": {"database_dsn": dsn[1], "redis_dsn": REDIS_URL}})
    finally:
        for schema in schemas:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
        keys = list(rds.scan_iter(f"{prefix}:*"))
        if keys:
            rds.delete(*keys)
        rds.close()
