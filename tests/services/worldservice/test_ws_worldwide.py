"""Issue 8 section 2: evaluation is per world, not per request; allocations per world and across
worlds; rebalancing plan/apply (audited, run_id + etag).  Both profiles."""

from __future__ import annotations

import httpx

from tests.services.worldservice.test_ws_http import FP, apply, assert_error, make_world

AS_OF = "2024-06-01T00:00:00Z"


def evaluate(client: httpx.Client, wid: str, **metrics_by_id) -> dict:
    body = {"strategies": [{"strategy_id": sid, "metrics": m} for sid, m in metrics_by_id.items()],
            "as_of": AS_OF, "dataset_fingerprint": FP}
    r = client.post(f"/worlds/{wid}/evaluate", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def active(client: httpx.Client, wid: str) -> dict[str, float]:
    return {s["strategy_id"]: s["weight"] for s in client.get(f"/worlds/{wid}/activation").json()["strategies"]
            if s["active"]}


def test_submitting_b_never_drops_a(client: httpx.Client) -> None:
    make_world(client, "w1", preset="sandbox")
    evaluate(client, "w1", A={})
    assert apply(client, "w1", "r1").status_code == 200
    assert active(client, "w1") == {"A": 1.0}
    out = evaluate(client, "w1", B={})  # a request about B alone
    assert out["active"] == ["A", "B"] and set(out["results"]) == {"A", "B"}
    assert client.get("/worlds/w1/decide", params={"strategy_id": "A"}).json()["effective_mode"] == "paper"
    run = apply(client, "w1", "r2").json()  # the default plan keeps A
    assert run["plan"]["deactivate"] == [] and active(client, "w1") == {"A": 0.5, "B": 0.5}
    assert client.get("/worlds/w1/allocations").json()["allocations"] == {"A": 0.5, "B": 0.5}


def test_top_k_and_hysteresis_rank_the_whole_world(client: httpx.Client) -> None:
    make_world(client, "w1", policy={"top_k": {"metric": "sharpe", "k": 1},
                                     "hysteresis": {"metric": "sharpe", "enter": 1.5, "exit": 1.0}})
    assert evaluate(client, "w1", A={"sharpe": 2.0})["active"] == ["A"]
    out = evaluate(client, "w1", B={"sharpe": 1.8})  # passes on its own, but A ranks first world-wide
    assert out["active"] == ["A"]
    assert [r for r in out["results"]["B"]["rules"] if r["rule"] == "top_k:sharpe"][0]["passed"] is False
    out = evaluate(client, "w1", A={"sharpe": 1.2})  # A holds its band, but B (1.8, stored) now ranks first
    assert out["active"] == ["B"]  # the single place goes to B; A's result says why
    a_rules = {r["rule"]: r for r in out["results"]["A"]["rules"]}
    assert a_rules["hysteresis:sharpe"]["passed"] is True and a_rules["top_k:sharpe"]["passed"] is False
    assert client.get("/worlds/w1/decide", params={"strategy_id": "A"}).json()["effective_mode"] == "validate"


def test_allocations_across_worlds_and_rebalancing(client: httpx.Client) -> None:
    make_world(client, "w1", preset="sandbox")
    make_world(client, "w2", preset="sandbox")
    evaluate(client, "w1", A={}, B={})
    evaluate(client, "w2", A={})
    plan = client.post("/rebalancing/plan", json={}).json()["plans"]
    by_world = {p["world_id"]: p for p in plan}
    assert by_world["w1"]["target"] == {"A": 0.5, "B": 0.5} and by_world["w1"]["current"] == {}
    assert by_world["w2"]["target"] == {"A": 1.0} and by_world["w2"]["deltas"] == {"A": 1.0}
    done = client.post("/rebalancing/apply", json={"run_id": "rb1", "plans": [
        {k: p[k] for k in ("world_id", "etag", "target")} for p in plan]})
    assert done.status_code == 200, done.text
    again = client.post("/rebalancing/apply", json={"run_id": "rb1", "plans": [
        {"world_id": "w1", "etag": "stale", "target": {}}]})
    assert again.json() == done.json()  # idempotent by run_id
    overview = client.get("/allocations").json()
    assert overview["strategies"] == {"A": {"w1": 0.5, "w2": 1.0}, "B": {"w1": 0.5}}
    w1 = client.get("/worlds/w1/allocations").json()
    assert w1["source"] == "explicit"
    assert [(s["strategy_id"], s["rank"], s["contribution"]) for s in w1["strategies"]] == [("A", 1, 0.5), ("B", 2, 0.5)]
    audit = client.get("/worlds/w2/audit").json()["entries"][-1]
    assert audit["action"] == "rebalance.apply" and audit["after"]["run_id"] == "rb1"
    # a stale etag changes nothing, in any world of the run
    stale = client.post("/rebalancing/apply", json={"run_id": "rb2", "plans": [
        {"world_id": "w2", "etag": w1["etag"], "target": {"A": 0.5}},
        {"world_id": "w1", "etag": w1["etag"], "target": {"A": 1.0}}]})
    assert_error(stale, 409, "E_ETAG_MISMATCH", "w2")
    assert client.get("/worlds/w1/allocations").json()["allocations"] == {"A": 0.5, "B": 0.5}
    # capital only for what the decisions allow, and never for unknown ids
    client.put("/worlds/w1/policy", json={"max_mode": "validate"})
    etag = client.get("/worlds/w1/allocations").json()["etag"]
    denied = client.post("/rebalancing/apply", json={"run_id": "rb3", "plans": [
        {"world_id": "w1", "etag": etag, "target": {"A": 1.0}}]})
    assert_error(denied, 409, "E_ACTIVATION_DENIED", "A")
    unknown = client.post("/rebalancing/apply", json={"run_id": "rb4", "plans": [
        {"world_id": "w1", "etag": etag, "target": {"ghost": 1.0}}]})
    assert_error(unknown, 404, "E_UNKNOWN_STRATEGY", "ghost")
    replanned = client.post("/rebalancing/plan", json={"world_ids": ["w1"]}).json()["plans"][0]
    assert replanned["target"] == {} and set(replanned["excluded"]) == {"A", "B"}
    assert_error(client.post("/rebalancing/plan", json={"world_ids": ["nope"]}), 404, "E_UNKNOWN_WORLD")
    assert_error(client.post("/rebalancing/apply", json={"run_id": "x", "plans": []}), 400, "E_SCHEMA", "plans")


def test_re_ranking_does_not_refresh_another_strategys_decision(client: httpx.Client) -> None:
    """A's decision is as fresh as A's own metrics: B's evaluations re-rank A but never restart A's TTL."""
    import time

    make_world(client, "w1", preset="sandbox", decision_ttl=1)
    evaluate(client, "w1", A={})
    time.sleep(1.2)
    evaluate(client, "w1", B={})  # A is re-ranked (still active) on its stored, now old, metrics
    a = client.get("/worlds/w1/decide", params={"strategy_id": "A"}).json()
    b = client.get("/worlds/w1/decide", params={"strategy_id": "B"}).json()
    assert a["effective_mode"] == "compute-only" and "stale" in a["reason"]
    assert b["effective_mode"] == "paper"


def test_allocations_only_for_known_fundable_strategies(client: httpx.Client) -> None:
    """Issue 8: ``PUT /allocations`` took any id, submitted or not, allowed to trade or not."""
    make_world(client, "w1", policy={"thresholds": {"sharpe": {"min": 1.0}}})
    evaluate(client, "w1", good={"sharpe": 2.0}, weak={"sharpe": 0.1})
    client.post("/worlds/w1/bindings", json={"strategy_id": "bound"})  # submitted, never evaluated
    before = client.get("/worlds/w1/allocations").json()
    put = lambda weights: client.put("/worlds/w1/allocations", json={"allocations": weights})  # noqa: E731
    assert_error(put({"good": 0.5, "ghost": 0.5}), 404, "E_UNKNOWN_STRATEGY", "ghost")
    assert_error(put({"good": 0.5, "ghost": 0.0}), 404, "E_UNKNOWN_STRATEGY", "ghost")  # known means known
    assert_error(put({"good": 0.5, "weak": 0.5}), 409, "E_ACTIVATION_DENIED", "weak", "validate")
    assert_error(put({"bound": 1.0}), 409, "E_ACTIVATION_DENIED", "bound", "no decision")
    assert client.get("/worlds/w1/allocations").json() == before  # nothing was written
    assert [e["action"] for e in client.get("/worlds/w1/audit").json()["entries"]].count("allocations.update") == 0
    ok = put({"good": 1.0, "weak": 0.0, "bound": 0.0})  # a zero weight needs no permission to trade
    assert ok.status_code == 200 and ok.json()["allocations"] == {"good": 1.0, "weak": 0.0, "bound": 0.0}


def test_rebalance_apply_requires_every_target_id_known(client: httpx.Client) -> None:
    make_world(client, "w1", preset="sandbox")
    evaluate(client, "w1", A={})
    etag = client.get("/worlds/w1/allocations").json()["etag"]
    r = client.post("/rebalancing/apply", json={"run_id": "rb1", "plans": [
        {"world_id": "w1", "etag": etag, "target": {"A": 1.0, "ghost": 0.0}}]})
    assert_error(r, 404, "E_UNKNOWN_STRATEGY", "ghost")
    assert client.get("/worlds/w1/allocations").json()["allocations"] == {}
    r = client.post("/rebalancing/apply", json={"run_id": "rb1", "plans": [
        {"world_id": "w1", "etag": etag, "target": {"A": 1.0}}]})
    assert r.status_code == 200 and client.get("/worlds/w1/allocations").json()["allocations"] == {"A": 1.0}
