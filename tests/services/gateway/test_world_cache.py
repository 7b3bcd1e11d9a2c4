"""The gateway's cache of world existence: saves a round trip per submission, never a decision.

Only "this world exists" is remembered, for ``exists_ttl`` seconds; a change to the world through the
gateway's proxy drops it at once.  A world deleted behind the gateway's back within the TTL still gets
a default-safe answer, because decisions are always asked afresh.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmtl.services.bus import InProcessBus
from qmtl.services.gateway.errors import ApiError
from qmtl.services.gateway.sample_dags import chain_dag
from qmtl.services.gateway.world_client import WorldClient
from qmtl.services.storage.sql import Database
from qmtl.services.worldservice.app import create_app as create_world


class CountingApp:
    """The world app, counting the requests that reach it."""

    def __init__(self, app: Any) -> None:
        self.app, self.paths = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.paths.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def _run(coro):
    return asyncio.run(coro)


@pytest.fixture
def world(tmp_path: Path) -> CountingApp:
    return CountingApp(create_world(Database.connect(f"sqlite:///{tmp_path / 'w.db'}"), InProcessBus()))


def test_existence_is_asked_once_per_ttl_and_decisions_every_time(world: CountingApp) -> None:
    async def scenario() -> list[dict]:
        client = WorldClient(world, exists_ttl=60)
        await client._http().post("/worlds", json={"id": "w"})
        answers = []
        for sid in ("s1", "s2", "s3"):
            await client.require_world("w")
            answers.append(await client.decision("w", sid, None))
        await client.aclose()
        return answers

    answers = _run(scenario())
    assert world.paths.count(("GET", "/worlds/w")) == 1
    assert world.paths.count(("GET", "/worlds/w/decide")) == 3
    assert all(a["execution_domain"] == "backtest" for a in answers)


def test_deleted_behind_the_gateways_back_is_default_safe_then_unknown(world: CountingApp) -> None:
    async def scenario() -> tuple[dict, ApiError | None]:
        client = WorldClient(world, exists_ttl=60)
        http = client._http()
        await http.post("/worlds", json={"id": "w", "allow_live": True})
        await client.require_world("w")
        await httpx.AsyncClient(transport=httpx.ASGITransport(app=world),
                                base_url="http://ws").delete("/worlds/w")
        await client.require_world("w")  # still believed to exist (within the TTL)
        decision = await client.decision("w", "s1", "live")
        client._exists_ttl = 0  # the TTL runs out
        try:
            await client.require_world("w")
            error = None
        except ApiError as exc:
            error = exc
        await client.aclose()
        return decision, error

    decision, error = _run(scenario())
    assert decision["execution_domain"] == "backtest" and decision["orders_gated"] is True
    assert "default-safe" in decision["reason"]
    assert error is not None and error.code == "E_UNKNOWN_WORLD"


def test_a_change_through_the_proxy_is_seen_at_once(stack) -> None:
    stack.make_world("gone")
    dag = chain_dag("c", 6, seed=3)
    ok = stack.client.post("/strategies", json={"dag": dag, "world_ids": ["gone"]})
    assert ok.status_code == 201, ok.text
    assert stack.client.delete("/worlds/gone").status_code == 204
    again = stack.client.post("/strategies", json={"dag": chain_dag("d", 6, seed=4), "world_ids": ["gone"]})
    assert again.status_code == 404 and again.json()["error"]["code"] == "E_UNKNOWN_WORLD"
