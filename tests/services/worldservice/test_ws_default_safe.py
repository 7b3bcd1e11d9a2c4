"""Issue 8, section 1: the holes in default-safe, each reproduced over HTTP on both profiles.

Every case starts from a world where live WOULD be decided (allow_live, a policy the strategy passes)
and shows what keeps it from trading.
"""

from __future__ import annotations

import httpx
import pytest

from qmtl.services.bus import InProcessBus
from qmtl.services.storage.sql import Database
from qmtl.services.worldservice.schemas import ApplyRequest
from qmtl.services.worldservice.service import WorldService
from qmtl.services.worldservice.store import WorldStore

from tests.services.worldservice.test_ws_http import FP, GOOD, apply, assert_error, make_world

AS_OF = "2024-06-01T00:00:00Z"


def live_world(client: httpx.Client, wid: str = "w1") -> None:
    make_world(client, wid, allow_live=True, policy={"thresholds": {"sharpe": {"min": 1.0}}})


def evaluate(client: httpx.Client, sid: str, wid: str = "w1", **evidence) -> dict:
    body = {"strategies": [{"strategy_id": sid, "metrics": GOOD}], "as_of": AS_OF,
            "dataset_fingerprint": FP, **evidence}
    r = client.post(f"/worlds/{wid}/evaluate", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def decide(client: httpx.Client, sid: str, wid: str = "w1") -> dict:
    return client.get(f"/worlds/{wid}/decide", params={"strategy_id": sid}).json()


@pytest.mark.parametrize("evidence, why", [
    ({"as_of": " "}, "as_of is missing"),
    ({"as_of": "not-a-date"}, "not an ISO 8601 time"),
    ({"as_of": "2999-01-01T00:00:00Z"}, "lies in the future"),
    ({"dataset_fingerprint": " "}, "dataset_fingerprint is missing"),
    ({"dataset_fingerprint": "fp-1"}, "not of the form the runtime produces"),
    ({"dataset_fingerprint": FP + "\n"}, "not of the form the runtime produces"),  # '$' matched before it
])
def test_malformed_evidence_is_compute_only(client: httpx.Client, evidence: dict, why: str) -> None:
    live_world(client)
    out = evaluate(client, "s", **evidence)
    assert out["active"] == []  # never takes a place in the active set
    evidence_rule = out["results"]["s"]["rules"][0]
    assert evidence_rule["rule"] == "evidence" and not evidence_rule["passed"] and why in evidence_rule["detail"]
    env = decide(client, "s")
    assert (env["effective_mode"], env["execution_domain"], env["orders_gated"]) == ("compute-only", "backtest", True)
    assert why in env["reason"]


def test_well_formed_evidence_reaches_live(client: httpx.Client) -> None:
    """The control: the same world and metrics with real evidence are live (the cases above are not)."""
    live_world(client)
    evaluate(client, "s")
    assert decide(client, "s")["effective_mode"] == "live"


@pytest.mark.parametrize("change", [
    ("PUT", "/worlds/w1/policy", {"max_mode": "paper"}),
    ("PUT", "/worlds/w1/policy", {"thresholds": {"sharpe": {"min": 1.5}}}),
    ("PUT", "/worlds/w1", {"policy": {"thresholds": {"sharpe": {"min": 1.5}}}}),
    ("PUT", "/worlds/w1", {"allow_live": False}),
])
def test_policy_or_allow_live_change_voids_decisions_at_once(client: httpx.Client, change) -> None:
    live_world(client)
    evaluate(client, "s")
    assert decide(client, "s")["effective_mode"] == "live"
    method, path, body = change
    assert client.request(method, path, json=body).status_code == 200
    env = decide(client, "s")  # well inside the 300 s TTL
    assert env["effective_mode"] == "compute-only" and "invalidated" in env["reason"]
    entries = client.get("/worlds/w1/audit").json()["entries"]
    assert entries[-1]["action"] == "decisions.invalidate" and entries[-1]["after"]["strategies"] == ["s"]


def test_unchanged_policy_keeps_decisions(client: httpx.Client) -> None:
    live_world(client)
    evaluate(client, "s")
    client.put("/worlds/w1/policy", json={"thresholds": {"sharpe": {"min": 1.0}}})
    client.put("/worlds/w1", json={"allow_live": True, "description": "same rules"})
    assert decide(client, "s")["effective_mode"] == "live"


def test_synthetic_data_is_capped_at_backtest(client: httpx.Client) -> None:
    live_world(client)
    out = evaluate(client, "s", synthetic_data=True)
    assert out["active"] == [] and "synthetic" in out["results"]["s"]["rules"][0]["detail"]
    env = decide(client, "s")
    assert (env["effective_mode"], env["execution_domain"], env["orders_gated"]) == ("validate", "backtest", True)
    assert "synthetic" in env["reason"]
    assert_error(client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "s"}],
                                                          "synthetic_data": "yes"}), 400, "E_SCHEMA",
                 "synthetic_data")


def test_activation_only_for_what_decisions_allow(client: httpx.Client) -> None:
    live_world(client)
    evaluate(client, "good")
    client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "weak", "metrics": {"sharpe": 0.1}}],
                                             "as_of": AS_OF, "dataset_fingerprint": FP})
    assert decide(client, "weak")["effective_mode"] == "validate"
    assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "weak", "active": True}),
                 409, "E_ACTIVATION_DENIED", "weak", "validate")
    assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "ghost", "active": True}),
                 404, "E_UNKNOWN_STRATEGY", "ghost")
    assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "ghost", "active": False}),
                 404, "E_UNKNOWN_STRATEGY", "ghost")
    ok = client.put("/worlds/w1/activation", json={"strategy_id": "good", "active": True})
    assert ok.status_code == 200 and ok.json()["active"] is True
    # deactivating is always allowed for a known strategy
    assert client.put("/worlds/w1/activation", json={"strategy_id": "weak", "active": False}).status_code == 200
    active = [s["strategy_id"] for s in client.get("/worlds/w1/activation").json()["strategies"] if s["active"]]
    assert active == ["good"]


@pytest.mark.parametrize("plan", [{"deactivate": ["s"]}, None])  # explicit, and the default plan
def test_apply_deactivates_every_side_of_a_strategy(client: httpx.Client, plan: dict | None) -> None:
    """A strategy activated on one side (long/short) is off after an apply that deactivates it: the plan
    names strategies, and a side left on kept the strategy trading and allocated."""
    live_world(client)
    evaluate(client, "s")
    for side in ("long", "short"):
        assert client.put("/worlds/w1/activation",
                          json={"strategy_id": "s", "side": side, "active": True, "weight": 0.5}).status_code == 200
    if plan is None:  # s's evidence is replaced by unusable evidence: the latest evaluation drops it
        evaluate(client, "s", dataset_fingerprint="fp-1")
    etag = client.get("/worlds/w1/activation").json()["etag"]
    r = client.post("/worlds/w1/apply", json={"run_id": "r1", "etag": etag, **({"plan": plan} if plan else {})})
    assert r.status_code == 200 and r.json()["plan"]["deactivate"] == ["s"], r.text
    world = client.get("/worlds/w1/activation").json()
    assert world["active"] is False and world["weight"] == 0
    for side in ("long", "short"):
        one = client.get("/worlds/w1/activation", params={"strategy_id": "s", "side": side}).json()
        assert (one["active"], one["weight"]) == (False, 0.0)
    assert client.get("/worlds/w1/allocations").json()["allocations"] == {}


def test_apply_refuses_disallowed_unknown_and_stale_etag(client: httpx.Client) -> None:
    live_world(client)
    evaluate(client, "good")
    client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "weak", "metrics": {"sharpe": 0.1}}],
                                             "as_of": AS_OF, "dataset_fingerprint": FP})
    assert_error(apply(client, "w1", "r1", {"activate": ["good", "weak"]}), 409, "E_ACTIVATION_DENIED", "weak")
    assert_error(apply(client, "w1", "r2", {"activate": ["never-submitted"]}), 404, "E_UNKNOWN_STRATEGY",
                 "never-submitted")
    stale = client.get("/worlds/w1/activation").json()["etag"]
    client.put("/worlds/w1/activation", json={"freeze": False})  # any change moves the etag
    r = client.post("/worlds/w1/apply", json={"run_id": "r3", "etag": stale})
    assert_error(r, 409, "E_ETAG_MISMATCH", stale)
    assert_error(client.post("/worlds/w1/apply", json={"run_id": "r3"}), 400, "E_SCHEMA", "etag")
    # nothing was activated by the refused runs; the default plan holds only what may trade
    assert [s for s in client.get("/worlds/w1/activation").json()["strategies"] if s["active"]] == []
    run = apply(client, "w1", "r4")
    assert run.status_code == 200, run.text
    assert run.json()["plan"]["activate"] == ["good"]


def test_default_plan_skips_strategies_whose_decision_was_voided(client: httpx.Client) -> None:
    live_world(client)
    evaluate(client, "good")
    client.put("/worlds/w1/policy", json={"thresholds": {"sharpe": {"min": 1.0}}, "max_mode": "paper"})
    run = apply(client, "w1", "r1")
    assert run.status_code == 200 and run.json()["plan"]["activate"] == []


class Crash(Exception):
    pass


def test_apply_interrupted_between_phases_is_completed_by_a_retry(ws_backend) -> None:
    """A run that dies after freeze leaves the world frozen (orders stop); the same run_id resumes it."""
    db = Database.connect(ws_backend.dsn)
    try:
        def crash_after_freeze(world_id: str, run_id: str, phase: str) -> None:
            if phase == "freeze":
                raise Crash

        store = WorldStore(db)
        from qmtl.services.worldservice.schemas import EvaluateRequest, WorldCreate
        first = WorldService(store, InProcessBus(), on_phase=crash_after_freeze)
        first.create_world(WorldCreate(id="w1", preset="sandbox"), "t")
        first.evaluate("w1", EvaluateRequest.model_validate(
            {"strategies": [{"strategy_id": "a", "metrics": {}}], "as_of": AS_OF, "dataset_fingerprint": FP}), "t")
        etag = first.activation("w1")["etag"]
        with pytest.raises(Crash):
            first.apply("w1", ApplyRequest(run_id="r1", etag=etag), "t")
        mid = first.activation("w1")
        assert (mid["phase"], mid["freeze"], mid["drain"], mid["run_id"]) == ("freeze", True, True, "r1")
        assert first.apply_run("w1", "r1")["status"] == "running"

        restarted = WorldService(WorldStore(db), InProcessBus())  # a new process on the same database
        done = restarted.apply("w1", ApplyRequest(run_id="r1", etag="whatever: the run already started"), "t")
        assert done["status"] == "completed"
        assert [p["phase"] for p in done["phases"]] == ["freeze", "switch", "unfreeze"]  # freeze not re-run
        after = restarted.activation("w1")
        assert (after["phase"], after["freeze"], after["drain"]) == ("idle", False, False)
        assert [s["strategy_id"] for s in after["strategies"] if s["active"]] == ["a"]
    finally:
        db.close()
