"""Issue 8 section 3: schemathesis against the served OpenAPI of both services, on both profiles.

Each service runs for real (``build_services``, the code ``qmtl serve`` runs, under uvicorn on a free
port): the gateway with the world routes behind its proxy, and the world service on a port of its own.
Every operation documented in the served schema gets generated requests (valid and invalid); none may
answer with a server error, and every answer must match its documented status and body.

The example count per operation is bounded (``QMTL_SCHEMATHESIS_EXAMPLES``, default 15) to keep the
suite fast; raise it for a deeper run.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from qmtl.config import QmtlConfig  # noqa: E402
from qmtl.services.app import ServerThread, build_services, close_services  # noqa: E402
from tests.services.conftest import prod_config  # noqa: E402

EXAMPLES = int(os.environ.get("QMTL_SCHEMATHESIS_EXAMPLES", "15"))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.fixture(scope="module", params=["sqlite", "postgresql+redis"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Base URLs of the gateway and of the world service, both served by one ``build_services``."""
    home = tmp_path_factory.mktemp("st-home")
    configs = iter([QmtlConfig(home=home)]) if request.param == "sqlite" else prod_config(home, "st")
    config = next(configs)
    gateway_app, world_app = build_services(config)
    try:
        with ServerThread(gateway_app) as gateway_url, ServerThread(world_app) as world_url:
            # Something to find: generated requests then also reach past the 404s.
            import httpx
            httpx.post(f"{gateway_url}/worlds", json={"id": "w1", "preset": "sandbox"}, timeout=10)
            yield {"gateway": gateway_url, "world": world_url}
    finally:
        close_services(gateway_app)
        for _ in configs:  # finish the generator: drop schemas and keys
            pass


def _short_waits(case):
    """The event routes wait by design (a long-poll up to 30 s, a stream until ``duration``): cap how
    long a generated request may hold the connection, whatever else was generated."""
    if case.path in ("/events", "/events/poll") and isinstance(case.query, dict):
        for key in ("wait", "duration"):
            value = case.query.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0.2:
                case.query[key] = 0.2
        if case.path == "/events":
            case.query.setdefault("duration", 0.2)
    return case


@pytest.mark.parametrize("service", ["gateway", "world"])
def test_no_server_error_and_answers_match_the_schema(running: dict[str, str], service: str) -> None:
    """Every documented operation, ``EXAMPLES`` generated cases each (positive and negative)."""
    api = schemathesis.openapi.from_url(f"{running[service]}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy().map(_short_waits))
        def run(case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations >= (28 if service == "gateway" else 23)
    assert not failures, "\n\n".join(failures)
