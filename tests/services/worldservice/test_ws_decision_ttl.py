"""Issue 8: lowering a world's ``decision_ttl`` shortens the decisions already made, at once.

Over HTTP on both profiles (SQLite + in-process bus, PostgreSQL + Redis): the stored decisions are cut,
the cut is audited and announced on the decision topic (a live order gate re-reads and closes), and
every reader (``decide``, activation, apply) reads decisions with ``effective_ttl``.
"""

from __future__ import annotations

import time

import httpx
import pytest

from qmtl.services.bus import TOPIC_DECISION, InProcessBus
from qmtl.services.storage.sql import Database
from qmtl.services.worldservice.envelopes import effective_ttl
from qmtl.services.worldservice.schemas import EvaluateRequest, WorldCreate
from qmtl.services.worldservice.service import WorldService
from qmtl.services.worldservice.store import WorldStore

from tests.services.worldservice.test_ws_http import FP, GOOD, assert_error, evaluate, make_world
from tests.redis_support import delete_keys

PASS = {"thresholds": {"sharpe": {"min": 1.0}}}


def decide(client: httpx.Client, sid: str) -> dict:
    r = client.get("/worlds/w1/decide", params={"strategy_id": sid})
    assert r.status_code == 200, r.text
    return r.json()


def test_effective_ttl_is_never_longer_than_the_world_allows() -> None:
    assert [effective_ttl(300, 1), effective_ttl(1, 300), effective_ttl(60, 60)] == [1, 1, 60]


def test_lowering_ttl_closes_a_paper_decision_at_once(client: httpx.Client, ws_backend) -> None:
    make_world(client, "w1", policy=PASS)  # allow_live off: the decision is paper
    evaluate(client, "w1", [{"strategy_id": "s", "metrics": GOOD}, {"strategy_id": "t", "metrics": GOOD}])
    before = decide(client, "s")
    assert (before["effective_mode"], before["ttl"]) == ("paper", 300)
    seen = ws_backend.bus.last_seq(TOPIC_DECISION)

    r = client.put("/worlds/w1", json={"decision_ttl": 1})
    assert r.status_code == 200 and r.json()["decision_ttl"] == 1
    assert decide(client, "s")["ttl"] == 1  # shortened (paper or already stale: the machine may be slow)

    # announced: one DecisionUpdated per cut decision, carrying the new ttl (what a live gate re-reads on)
    events = ws_backend.bus.read(TOPIC_DECISION, seen, timeout=2.0)
    assert sorted((e.type, e.data["world_id"], e.data["strategy_id"], e.data["ttl"]) for e in events) == [
        ("DecisionUpdated", "w1", "s", 1), ("DecisionUpdated", "w1", "t", 1)]
    # audited, with what the ttl was
    entry = client.get("/worlds/w1/audit").json()["entries"][-1]
    assert entry["action"] == "decisions.ttl_cut"
    assert entry["before"] == {"decision_ttl": 300}
    assert entry["after"] == {"decision_ttl": 1, "strategies": ["s", "t"]}

    time.sleep(1.3)
    stale = decide(client, "s")
    assert (stale["effective_mode"], stale["orders_gated"]) == ("compute-only", True)
    assert "stale" in stale["reason"] and "ttl 1s" in stale["reason"]
    assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "s", "active": True}),
                 409, "E_ACTIVATION_DENIED", "stale")

    # raising the ttl again does not revive a decision made under the shorter promise
    seen = ws_backend.bus.last_seq(TOPIC_DECISION)
    assert client.put("/worlds/w1", json={"decision_ttl": 600}).status_code == 200
    assert decide(client, "s")["effective_mode"] == "compute-only"
    assert ws_backend.bus.read(TOPIC_DECISION, seen, timeout=0.2) == []  # nothing was cut
    assert client.get("/worlds/w1/audit").json()["entries"][-1]["action"] == "world.update"


def test_readers_apply_the_worlds_ttl_to_a_longer_stored_one(ws_backend) -> None:
    """``effective_ttl`` at every read: a decision row with a longer ttl than the world's (written before
    the cut existed, or by a process that missed it) is still read with the world's."""
    db = Database.connect(ws_backend.dsn)
    try:
        clock = [time.time()]
        ws = WorldService(WorldStore(db), InProcessBus(), clock=lambda: clock[0])
        ws.create_world(WorldCreate(id="w1", policy=PASS, decision_ttl=60), "t")
        ws.evaluate("w1", EvaluateRequest.model_validate(
            {"strategies": [{"strategy_id": "s", "metrics": GOOD}], "as_of": "2024-06-01T00:00:00Z",
             "dataset_fingerprint": FP}), "t")
        row = ws.store.get_decision("w1", "s")
        ws.store.put_decision("w1", "s", {**row, "ttl": 3600})  # longer than the world allows
        clock[0] += 30
        assert (ws.decide("w1", "s").effective_mode, ws.decide("w1", "s").ttl) == ("paper", 60)
        clock[0] += 31
        env = ws.decide("w1", "s")
        assert env.effective_mode == "compute-only" and "stale" in env.reason
        assert ws.denials(ws.store.get_world("w1"), ["s"], clock[0]) != {}
    finally:
        db.close()


@pytest.mark.parametrize("ttl", [300, 301])
def test_keeping_or_raising_the_ttl_cuts_nothing(client: httpx.Client, ttl: int) -> None:
    make_world(client, "w1", policy=PASS)
    evaluate(client, "w1", [{"strategy_id": "s", "metrics": GOOD}])
    assert client.put("/worlds/w1", json={"decision_ttl": ttl}).status_code == 200
    assert decide(client, "s")["ttl"] == 300
    assert "decisions.ttl_cut" not in [e["action"] for e in client.get("/worlds/w1/audit").json()["entries"]]


def test_a_following_gate_closes_at_once_when_the_ttl_is_cut(request: pytest.FixtureRequest,
                                                             db_backend) -> None:
    """The announcement is what closes a live process's order gate: its periodic read is set to a minute
    here, so only the ``DecisionUpdated`` of the cut can make it re-read the decision in time."""
    import uuid

    from qmtl.live.gate import WorldGate
    from qmtl.services.app import ServerThread
    from qmtl.services.bus import RedisStreamBus
    from qmtl.services.gateway.app import create_app as create_gateway
    from qmtl.services.gsg import SqlGraphStore
    from qmtl.services.worldservice.app import create_app as create_world
    from tests.live.worlds import trading_world

    prefix = f"qmtl:test-ttl-cut:{uuid.uuid4().hex[:8]}"
    postgres = request.node.callspec.params["db_backend"] == "postgresql"
    bus = RedisStreamBus(request.getfixturevalue("redis_url"), prefix=prefix) if postgres else InProcessBus()
    gateway_db = db_backend("gateway")
    app = create_gateway(gateway_db, bus, SqlGraphStore(gateway_db), create_world(db_backend("world"), bus))
    try:
        with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as gw:
            trading_world(gw, "w", "s")  # paper, active, ttl 300 s
            with WorldGate(url, "w", "s", grace_s=1.0, resync_s=60.0, backoff_base_s=0.1,
                           backoff_cap_s=0.5) as gate:
                assert gate.state().open, gate.state()
                time.sleep(1.2)  # the decision is now older than the ttl about to be set
                started = time.monotonic()
                assert gw.put("/worlds/w", json={"decision_ttl": 1}).status_code == 200
                while gate.state().open and time.monotonic() - started < 5.0:
                    time.sleep(0.02)
                closed = gate.state()
                assert not closed.open and closed.reason == "decision_expired", closed
                assert time.monotonic() - started < 5.0
    finally:
        if postgres:
            delete_keys(bus.url, prefix)
        bus.close()


def test_raising_ttl_does_not_let_another_evaluation_revive_a_stale_decision(client: httpx.Client) -> None:
    """A raised ``decision_ttl`` never stretches a decision; re-ranking the strategy in another one's
    evaluation (same metrics, same evidence) must not stretch it either, or a stale decision would come
    back live without any new evidence."""
    make_world(client, "w1", policy=PASS, allow_live=True, decision_ttl=1)
    evaluate(client, "w1", [{"strategy_id": "a", "metrics": GOOD}])
    time.sleep(1.3)
    assert decide(client, "a")["effective_mode"] == "compute-only"  # stale
    assert client.put("/worlds/w1", json={"decision_ttl": 3600}).status_code == 200
    assert decide(client, "a")["effective_mode"] == "compute-only"  # not stretched by the raise

    evaluate(client, "w1", [{"strategy_id": "b", "metrics": GOOD}])  # re-ranks a on its stored metrics
    a, b = decide(client, "a"), decide(client, "b")
    assert (a["effective_mode"], a["ttl"]) == ("compute-only", 1) and "stale" in a["reason"]
    assert (b["effective_mode"], b["ttl"]) == ("live", 3600)  # new evidence gets the new ttl

    evaluate(client, "w1", [{"strategy_id": "a", "metrics": GOOD}])  # a's own new evidence: the new ttl
    assert (decide(client, "a")["effective_mode"], decide(client, "a")["ttl"]) == ("live", 3600)
