"""The end-to-end suite runs twice: on the dev profile (SQLite files in a temp dir, in-process bus) and
on the prod profile (PostgreSQL + Redis Streams + the Redis activation cache on their default local
ports).  Both go through ``build_services`` — the code ``qmtl serve`` runs — under uvicorn on a free
port, and the tests drive them over HTTP.

The prod run skips with its reason when a server is absent, and fails under
``QMTL_REQUIRE_SERVICES=1`` (``tests/services/conftest.py`` holds the shared rule).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from qmtl.config import QmtlConfig
from qmtl.services.app import EmbeddedServices
from tests.services.conftest import PG_BASE, REDIS_URL, unavailable

BACKENDS = ["sqlite", "postgresql+redis"]


def _pg_admin():
    try:
        import psycopg

        return psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except Exception as exc:  # any failure to connect means "no server here"
        unavailable(f"PostgreSQL not reachable at {PG_BASE}: {exc}")


def _redis_client():
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        return client
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")


def _dsn_for(schema: str) -> str:
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="module", params=BACKENDS)
def service_config(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[QmtlConfig]:
    """A config for one backend; PostgreSQL schemas and Redis keys are this module's own, removed after."""
    home = tmp_path_factory.mktemp("e2e-home")
    if request.param == "sqlite":
        yield QmtlConfig(home=home)
        return
    admin, rds = _pg_admin(), _redis_client()
    tag = uuid.uuid4().hex[:10]
    schemas = [f"qmtl_e2e_gw_{tag}", f"qmtl_e2e_ws_{tag}"]
    for schema in schemas:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    prefix = f"qmtl-e2e:{tag}"
    try:
        yield QmtlConfig.model_validate({
            "profile": "prod", "home": str(home), "redis_prefix": prefix,
            "gateway": {"database_dsn": _dsn_for(schemas[0]), "redis_dsn": REDIS_URL},
            "worldservice": {"database_dsn": _dsn_for(schemas[1]), "redis_dsn": REDIS_URL}})
    finally:
        for schema in schemas:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
        keys = list(rds.scan_iter(f"{prefix}:*"))
        if keys:
            rds.delete(*keys)
        rds.close()


@pytest.fixture(scope="module")
def services(service_config: QmtlConfig) -> Iterator[str]:
    """The gateway URL of the running pair (world routes behind it)."""
    with EmbeddedServices(service_config) as url:
        yield url


@pytest.fixture
def backend(service_config: QmtlConfig) -> str:
    return "postgresql+redis" if service_config.profile == "prod" else "sqlite"


@pytest.fixture
def home(service_config: QmtlConfig) -> Path:
    return service_config.home
