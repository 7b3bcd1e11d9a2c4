"""The two ways the gateway asks the world service (over HTTP, or directly when it is embedded) give
the same answers: existence, decisions (including the default-safe one) and bindings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qmtl.services.bus import InProcessBus
from qmtl.services.gateway.errors import ApiError
from qmtl.services.gateway.world_client import EmbeddedWorldClient, WorldClient, make_world_client
from qmtl.services.storage.sql import Database
from qmtl.services.worldservice.app import create_app as create_world


class Wrapped:
    """Any other ASGI app (here the world app behind a pass-through): asked over HTTP."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


def test_same_answers_both_ways(tmp_path: Path) -> None:
    world = create_world(Database.connect(f"sqlite:///{tmp_path / 'w.db'}"), InProcessBus())
    embedded, http = make_world_client(world), make_world_client(Wrapped(world))
    assert isinstance(embedded, EmbeddedWorldClient) and type(http) is WorldClient

    async def ask(client: WorldClient, sid: str) -> dict:
        await client.require_world("w")
        with pytest.raises(ApiError) as unknown:
            await client.require_world("nope")
        decision = await client.decision("w", sid, "live")
        missing = await client.decision("nope", sid, None)
        bound = await client.bind("w", sid), await client.bind("w", sid), await client.bind("nope", sid)
        await client.aclose()
        return {"unknown": (unknown.value.status, unknown.value.code), "decision": decision,
                "missing": missing, "bound": bound}

    async def scenario() -> tuple[dict, dict, list]:
        await http._http().post("/worlds", json={"id": "w", "allow_live": True})
        a, b = await ask(embedded, "s1"), await ask(http, "s2")
        listing = await WorldClient(Wrapped(world))._http().get("/worlds/w/bindings")
        return a, b, [x["strategy_id"] for x in listing.json()["bindings"]]

    a, b, bound = asyncio.run(scenario())
    assert a == b
    assert a["unknown"] == (404, "E_UNKNOWN_WORLD")
    assert a["missing"]["execution_domain"] == "backtest" and "default-safe" in a["missing"]["reason"]
    assert a["bound"] == (True, True, False)
    assert bound == ["s1", "s2"]
