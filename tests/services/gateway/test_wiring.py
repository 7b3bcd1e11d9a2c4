"""build_services / EmbeddedServices: the dev pair starts with nothing configured; prod refuses to
start with a missing DSN or a server that does not answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from qmtl.config import QmtlConfig
from qmtl.services.app import EmbeddedServices, StartupError, build_services
from qmtl.services.gateway.sample_dags import chain_dag


def test_embedded_services_round_trip(tmp_path: Path) -> None:
    config = QmtlConfig(home=tmp_path / "home")
    with EmbeddedServices(config) as url:
        assert httpx.post(f"{url}/worlds", json={"id": "dev"}).status_code == 201
        resp = httpx.post(f"{url}/strategies", json={"dag": chain_dag("a", 5), "world_ids": ["dev"]})
        assert resp.status_code == 201, resp.text
        sid = resp.json()["strategy_id"]
    assert (tmp_path / "home" / "gateway.db").exists()
    assert (tmp_path / "home" / "worldservice.db").exists()
    with EmbeddedServices(config) as url:  # same home: state is still there
        assert httpx.get(f"{url}/strategies/{sid}").status_code == 200
        assert httpx.get(f"{url}/worlds/dev").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


def test_prod_without_dsns_refuses_to_start() -> None:
    with pytest.raises(StartupError) as info:
        build_services(QmtlConfig(profile="prod"))
    text = str(info.value)
    assert "gateway.database_dsn is required" in text and "worldservice.redis_dsn is required" in text


def test_prod_with_unreachable_servers_fails_clearly(tmp_path: Path) -> None:
    config = QmtlConfig.model_validate({
        "profile": "prod", "home": str(tmp_path),
        "gateway": {"database_dsn": "postgresql://postgres@127.0.0.1:1/none",
                    "redis_dsn": "redis://127.0.0.1:1/0"},
        "worldservice": {"database_dsn": "postgresql://postgres@127.0.0.1:1/none",
                         "redis_dsn": "redis://127.0.0.1:1/0"}})
    with pytest.raises(StartupError, match="not usable"):
        build_services(config)


def test_unreachable_neo4j_fails_clearly(tmp_path: Path) -> None:
    config = QmtlConfig.model_validate({
        "home": str(tmp_path),
        "gateway": {"neo4j_uri": "bolt://127.0.0.1:1", "neo4j_user": "neo4j", "neo4j_password": "x"}})
    with pytest.raises(StartupError, match="Neo4j at bolt://127.0.0.1:1 did not answer"):
        build_services(config)
