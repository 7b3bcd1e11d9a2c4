"""The end-to-end suite runs twice: on the dev profile (SQLite files in a temp dir, in-process bus) and
on the prod profile (PostgreSQL + Redis Streams + the Redis activation cache on their default local
ports).  Both go through ``build_services`` — the code ``qmtl serve`` runs — under uvicorn on a free
port, and the tests drive them over HTTP.

The prod run skips with its reason when a server is absent, and fails under
``QMTL_REQUIRE_SERVICES=1`` (``tests/services/conftest.py`` holds the shared rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from qmtl.config import QmtlConfig
from qmtl.services.app import EmbeddedServices
from tests.services.conftest import prod_config

BACKENDS = ["sqlite", "postgresql+redis"]


@pytest.fixture(scope="module", params=BACKENDS)
def service_config(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[QmtlConfig]:
    """A config for one backend; PostgreSQL schemas and Redis keys are this module's own, removed after."""
    home = tmp_path_factory.mktemp("e2e-home")
    if request.param == "sqlite":
        yield QmtlConfig(home=home)
        return
    yield from prod_config(home, "e2e")


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
