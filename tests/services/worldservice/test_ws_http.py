"""End-to-end: the real world service under uvicorn, driven over HTTP, on SQLite and PostgreSQL+Redis."""

from __future__ import annotations

import time

import httpx

from qmtl.services.bus import TOPIC_ACTIVATION, TOPIC_APPLY, TOPIC_DECISION

GOOD = {"sharpe": 2.0, "max_drawdown": 0.05, "trades": 100, "win_rate": 0.6, "profit_factor": 2.0}
BAD = {"sharpe": 0.1, "max_drawdown": 0.5, "trades": 3}
RET_A = [0.01, -0.02, 0.03, 0.0, 0.02, -0.01]
RET_B = [0.02, 0.01, -0.01, 0.03, -0.02, 0.0]
FP = "blake3:" + "f1" * 32


def make_world(client: httpx.Client, wid: str = "w1", **extra) -> dict:
    r = client.post("/worlds", json={"id": wid, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def evaluate(client: httpx.Client, wid: str, strategies: list[dict], **extra) -> dict:
    body = {"strategies": strategies, "as_of": "2024-06-01T00:00:00Z", "dataset_fingerprint": FP, **extra}
    r = client.post(f"/worlds/{wid}/evaluate", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def apply(client: httpx.Client, wid: str, run_id: str, plan: dict | None = None) -> httpx.Response:
    """POST an apply against the world's current activation etag (what a careful client does)."""
    etag = client.get(f"/worlds/{wid}/activation").json()["etag"]
    return client.post(f"/worlds/{wid}/apply", json={"run_id": run_id, "etag": etag,
                                                      **({"plan": plan} if plan is not None else {})})


def assert_error(r: httpx.Response, status: int, code: str, *fragments: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    for frag in fragments:
        assert frag in err["message"], err["message"]


def test_world_crud(client: httpx.Client) -> None:
    w = make_world(client, "alpha", name="Alpha", description="d", preset="moderate")
    assert w["allow_live"] is False and w["policy"]["hysteresis"]["enter"] == 1.0
    assert client.get("/worlds/alpha").json()["name"] == "Alpha"
    make_world(client, "beta")
    assert [x["id"] for x in client.get("/worlds").json()["worlds"]] == ["alpha", "beta"]
    assert client.get("/worlds/beta").json()["policy"]["max_mode"] == "paper"  # sandbox default
    r = client.put("/worlds/alpha", json={"allow_live": True, "decision_ttl": 60})
    assert r.status_code == 200 and r.json()["allow_live"] is True and r.json()["name"] == "Alpha"
    assert client.delete("/worlds/beta").status_code == 204
    assert_error(client.get("/worlds/beta"), 404, "E_UNKNOWN_WORLD", "beta")
    assert_error(client.post("/worlds", json={"id": "alpha"}), 409, "E_WORLD_EXISTS")


def test_unknown_world_is_404_on_every_route(client: httpx.Client) -> None:
    calls = [("GET", "/worlds/nope", None), ("PUT", "/worlds/nope", {"name": "x"}),
             ("DELETE", "/worlds/nope", None), ("GET", "/worlds/nope/policy", None),
             ("POST", "/worlds/nope/evaluate", {"strategies": [{"strategy_id": "s", "metrics": {}}]}),
             ("GET", "/worlds/nope/decide?strategy_id=s", None), ("GET", "/worlds/nope/activation", None),
             ("PUT", "/worlds/nope/activation", {"freeze": True}),
             ("POST", "/worlds/nope/apply", {"run_id": "r", "etag": "x"}), ("GET", "/worlds/nope/apply/r", None),
             ("GET", "/worlds/nope/audit", None), ("POST", "/worlds/nope/bindings", {"strategy_id": "s"}),
             ("GET", "/worlds/nope/bindings", None), ("GET", "/worlds/nope/allocations", None),
             ("PUT", "/worlds/nope/allocations", {"allocations": {}})]
    for method, path, body in calls:
        assert_error(client.request(method, path, json=body), 404, "E_UNKNOWN_WORLD")
    r = client.put("/worlds/nope/policy", content=b"{}", headers={"content-type": "application/json"})
    assert_error(r, 404, "E_UNKNOWN_WORLD")


def test_schema_errors(client: httpx.Client) -> None:
    make_world(client)
    bad_json = client.post("/worlds", content=b'{"id": ', headers={"content-type": "application/json"})
    assert_error(bad_json, 400, "E_SCHEMA", "not valid JSON")
    assert_error(client.post("/worlds", json=[1, 2]), 400, "E_SCHEMA", "JSON object")
    assert_error(client.post("/worlds", json={"id": "bad id!"}), 400, "E_SCHEMA", "id")
    assert_error(client.post("/worlds", json={"id": "x", "allow_live": "maybe"}), 400, "E_SCHEMA", "allow_live")
    assert_error(client.post("/worlds", json={"id": "x", "colour": 1}), 400, "E_SCHEMA", "colour")
    r = client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "s", "metrics": {"sharpe": "hi"}}]})
    assert_error(r, 400, "E_SCHEMA", "strategies.0.metrics.sharpe")
    assert_error(client.post("/worlds/w1/evaluate", json={"strategies": []}), 400, "E_SCHEMA", "strategies")
    dup = [{"strategy_id": "s", "metrics": {}}] * 2
    assert_error(client.post("/worlds/w1/evaluate", json={"strategies": dup}), 400, "E_SCHEMA", "duplicate")
    assert_error(client.get("/worlds/w1/decide"), 400, "E_SCHEMA", "strategy_id")
    assert_error(client.put("/worlds/w1/activation", json={}), 400, "E_SCHEMA", "nothing to change")
    assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "s"}), 400, "E_SCHEMA", "active")
    assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "s", "active": True, "weight": 2}),
                 400, "E_SCHEMA", "weight")
    assert_error(client.post("/worlds/w1/apply", json={}), 400, "E_SCHEMA", "run_id")
    assert_error(client.post("/worlds/w1/apply", json={"run_id": "r", "plan": {"activate": ["a"], "deactivate": ["a"]}}),
                 400, "E_SCHEMA", "both activated and deactivated")
    assert_error(client.put("/worlds/w1/allocations", json={"allocations": {"a": -0.1}}), 400, "E_SCHEMA", ">= 0")
    assert_error(client.put("/worlds/w1/allocations", json={"allocations": {"a": 0.7, "b": 0.4}}),
                 400, "E_SCHEMA", "more than 1")
    assert_error(client.get("/nowhere"), 404, "E_NOT_FOUND")
    assert_error(client.patch("/worlds/w1"), 405, "E_METHOD_NOT_ALLOWED")


def test_body_size_limit_is_413(client: httpx.Client) -> None:
    make_world(client)
    huge = {"strategies": [{"strategy_id": "s", "metrics": {}, "returns": [0.0001] * 200_000}]}
    assert_error(client.post("/worlds/w1/evaluate", json=huge), 413, "E_PAYLOAD_TOO_LARGE")

    def chunks():  # no Content-Length: the limit must hold for streamed bodies too
        for _ in range(40):
            yield b" " * 50_000

    r = client.post("/worlds/w1/evaluate", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "E_PAYLOAD_TOO_LARGE")
    assert client.get("/worlds/w1").status_code == 200  # the service is still fine


def test_policy_get_put_json_yaml_and_errors(client: httpx.Client) -> None:
    make_world(client, policy={"thresholds": {"sharpe": {"min": 1}}})
    assert client.get("/worlds/w1/policy").json()["thresholds"] == {"sharpe": {"min": 1.0}}
    y = "thresholds:\n  sharpe: {min: 0.5}\ntop_k: {metric: sharpe, k: 2}\n"
    r = client.put("/worlds/w1/policy", content=y, headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and r.json()["top_k"]["k"] == 2
    r = client.put("/worlds/w1/policy", json={"correlation": {"max": 0.5}})
    assert r.json()["correlation"] == {"max": 0.5} and "top_k" not in r.json()
    r = client.put("/worlds/w1/policy", json={"preset": "aggressive"})
    assert r.json()["thresholds"]["sharpe"] == {"min": 0.5}
    bad = client.put("/worlds/w1/policy", content="top_k: {metric: sharpe, k: -1}",
                     headers={"content-type": "application/yaml"})
    assert_error(bad, 400, "E_POLICY", "top_k.k")
    assert_error(client.put("/worlds/w1/policy", content="a: [", headers={"content-type": "application/yaml"}),
                 400, "E_POLICY", "not valid YAML")
    assert_error(client.put("/worlds/w1/policy", json={"preset": "nope"}), 400, "E_POLICY", "unknown preset")
    assert_error(client.post("/worlds", json={"id": "w2", "preset": "moderate", "policy": {}}), 400, "E_POLICY",
                 "either")
    assert_error(client.post("/worlds", json={"id": "w2", "policy": {"thresholds": {"x": {"min": 2, "max": 1}}}}),
                 400, "E_POLICY", "thresholds.x")


def test_evaluate_decide_and_default_safe(client: httpx.Client, ws_backend) -> None:
    make_world(client, preset="aggressive", allow_live=True)
    out = evaluate(client, "w1", [{"strategy_id": "good", "metrics": GOOD}, {"strategy_id": "bad", "metrics": BAD}])
    assert out["active"] == ["good"] and out["weights"] == {"good": 1.0}
    assert out["results"]["bad"]["passed"] is False
    failed = {r["rule"] for r in out["results"]["bad"]["rules"] if not r["passed"]}
    assert {"threshold:sharpe", "threshold:max_drawdown", "threshold:trades"} <= failed

    env = client.get("/worlds/w1/decide", params={"strategy_id": "good"}).json()
    assert (env["effective_mode"], env["execution_domain"], env["orders_gated"]) == ("live", "live", False)
    assert env["as_of"] == "2024-06-01T00:00:00Z" and env["dataset_fingerprint"] == FP
    assert env["ttl"] == 300 and env["etag"]
    env = client.get("/worlds/w1/decide", params={"strategy_id": "bad", "hint": "live"}).json()
    assert env["effective_mode"] == "validate" and env["orders_gated"] is True
    assert "hint 'live' downgraded" in env["reason"]
    env = client.get("/worlds/w1/decide", params={"strategy_id": "unknown"}).json()
    assert env["effective_mode"] == "compute-only" and "no decision" in env["reason"]

    # No fingerprint in the evaluation: default-safe even though the policy passes.
    client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "good", "metrics": GOOD}],
                                             "as_of": "2024-06-02T00:00:00Z"})
    env = client.get("/worlds/w1/decide", params={"strategy_id": "good"}).json()
    assert env["effective_mode"] == "compute-only" and "dataset_fingerprint is missing" in env["reason"]

    # Disallowing live afterwards voids the live decision at once; the live hint cannot override it.
    evaluate(client, "w1", [{"strategy_id": "good", "metrics": GOOD}])
    assert client.get("/worlds/w1/decide", params={"strategy_id": "good"}).json()["effective_mode"] == "live"
    client.put("/worlds/w1", json={"allow_live": False})
    env = client.get("/worlds/w1/decide", params={"strategy_id": "good", "hint": "live"}).json()
    assert env["effective_mode"] == "compute-only" and env["execution_domain"] == "backtest"
    assert "allow_live changed" in env["reason"]

    decisions = ws_backend.bus.read(TOPIC_DECISION)
    # three world-wide evaluations of {good, bad}, then both invalidated
    assert [e.type for e in decisions] == ["DecisionUpdated"] * 8
    assert [e.data["mode"] for e in decisions[-2:]] == ["compute-only"] * 2


def test_stale_decision_downgrades(client: httpx.Client) -> None:
    make_world(client, preset="sandbox", decision_ttl=1)
    evaluate(client, "w1", [{"strategy_id": "s", "metrics": {}}])
    assert client.get("/worlds/w1/decide", params={"strategy_id": "s"}).json()["effective_mode"] == "paper"
    time.sleep(1.2)
    env = client.get("/worlds/w1/decide", params={"strategy_id": "s"}).json()
    assert env["effective_mode"] == "compute-only" and "stale" in env["reason"]


def test_hysteresis_and_correlation_over_http(client: httpx.Client) -> None:
    make_world(client, policy={"hysteresis": {"metric": "sharpe", "enter": 1.5, "exit": 1.0},
                               "correlation": {"max": 0.9}})
    first = evaluate(client, "w1", [{"strategy_id": "a", "metrics": {"sharpe": 1.6}, "returns": RET_A},
                                    {"strategy_id": "b", "metrics": {"sharpe": 1.2}, "returns": RET_B}])
    assert first["active"] == ["a"]
    second = evaluate(client, "w1", [{"strategy_id": "a", "metrics": {"sharpe": 1.2}, "returns": RET_A},
                                     {"strategy_id": "twin", "metrics": {"sharpe": 3.0},
                                      "returns": [2 * x for x in RET_A]}])
    assert second["active"] == ["a"]  # a holds inside the band; twin is correlated with active a
    twin = {r["rule"]: r for r in second["results"]["twin"]["rules"]}
    assert twin["correlation"]["passed"] is False and "with a" in twin["correlation"]["detail"]


def test_activation_get_put_events_and_cache(client: httpx.Client, ws_backend) -> None:
    make_world(client)
    evaluate(client, "w1", [{"strategy_id": "s1", "metrics": {}}])  # sandbox: passes, paper
    env = client.get("/worlds/w1/activation").json()
    assert (env["sequence"], env["active"], env["phase"], env["strategies"]) == (0, False, "idle", [])
    r = client.put("/worlds/w1/activation", json={"strategy_id": "s1", "side": "long", "active": True, "weight": 0.4})
    assert r.status_code == 200
    one = r.json()
    assert (one["strategy_id"], one["side"], one["active"], one["weight"], one["sequence"]) == ("s1", "long", True, 0.4, 1)
    frozen = client.put("/worlds/w1/activation", json={"freeze": True}).json()
    assert frozen["freeze"] is True and frozen["sequence"] == 2
    assert frozen["strategies"][0]["active"] is False  # frozen: no strategy may trade
    got = client.get("/worlds/w1/activation", params={"strategy_id": "s1", "side": "long"}).json()
    assert got["active"] is False and got["freeze"] is True and got["weight"] == 0.4
    other = client.get("/worlds/w1/activation", params={"strategy_id": "ghost"}).json()
    assert other["active"] is False and other["weight"] == 0.0
    events = ws_backend.bus.read(TOPIC_ACTIVATION)
    assert [(e.type, e.data["sequence"]) for e in events] == [("ActivationUpdated", 1), ("ActivationUpdated", 2)]
    assert events[0].idempotency_key.startswith("w1@") and events[0].idempotency_key.endswith(":1")
    assert events[1].idempotency_key == events[0].idempotency_key[:-2] + ":2"
    cached = ws_backend.cache.get("w1")
    assert cached["sequence"] == 2 and cached["freeze"] is True and cached["etag"] == frozen["etag"]


def test_deleting_a_world_announces_it_and_drops_its_cached_envelope(client: httpx.Client, ws_backend) -> None:
    """A follower of the world (a live process's order gate) hears of the deletion at once, on the
    activation topic it already follows; the activation cache no longer mirrors the world."""
    make_world(client)
    client.put("/worlds/w1/activation", json={"freeze": True})
    assert ws_backend.cache.get("w1") is not None
    assert client.delete("/worlds/w1", headers={"X-Actor": "ops"}).status_code == 204
    last = ws_backend.bus.read(TOPIC_ACTIVATION)[-1]
    assert (last.type, last.data["world_id"], last.data["deleted"]) == ("WorldDeleted", "w1", True)
    assert last.idempotency_key.startswith("w1@") and last.idempotency_key.endswith(":delete")
    assert ws_backend.cache.get("w1") is None
    assert client.delete("/worlds/w1").status_code == 404  # nothing more announced for a world not there
    assert ws_backend.bus.read(TOPIC_ACTIVATION)[-1] == last


def test_recreated_world_events_are_not_taken_for_repeats(client: httpx.Client, ws_backend) -> None:
    """Sequences restart with a new world of the same id; its events must still reach subscribers."""
    make_world(client, "again", preset="sandbox")
    evaluate(client, "again", [{"strategy_id": "old", "metrics": {}}])
    client.put("/worlds/again/activation", json={"strategy_id": "old", "active": True})
    evaluate(client, "again", [{"strategy_id": "s", "metrics": {}}])
    apply(client, "again", "r1")
    before = {t: len(ws_backend.bus.read(t)) for t in (TOPIC_ACTIVATION, TOPIC_DECISION, TOPIC_APPLY)}
    assert client.delete("/worlds/again").status_code == 204
    time.sleep(0.01)  # a new creation time, as any real re-creation has
    make_world(client, "again", preset="sandbox")
    evaluate(client, "again", [{"strategy_id": "new", "metrics": {}}])
    client.put("/worlds/again/activation", json={"strategy_id": "new", "active": True})
    evaluate(client, "again", [{"strategy_id": "s", "metrics": {}}])
    apply(client, "again", "r1")
    after = {t: ws_backend.bus.read(t) for t in before}
    assert {t: len(events) - before[t] for t, events in after.items()} == \
        {TOPIC_ACTIVATION: 1 + before[TOPIC_ACTIVATION], TOPIC_DECISION: 3, TOPIC_APPLY: 3}  # 1: the delete
    newest = [e for e in after[TOPIC_ACTIVATION] if e.data.get("sequence") == 1][-1]
    assert [s["strategy_id"] for s in newest.data["strategies"]] == ["new"]


def test_two_phase_apply_is_idempotent(client: httpx.Client, ws_backend) -> None:
    make_world(client, preset="sandbox")
    assert_error(apply(client, "w1", "r0"), 409, "E_NO_PLAN")
    evaluate(client, "w1", [{"strategy_id": "a", "metrics": {}}, {"strategy_id": "b", "metrics": {}},
                            {"strategy_id": "c", "metrics": {}}])
    r1 = apply(client, "w1", "r1", {"activate": ["a", "b"]})
    assert r1.status_code == 200, r1.text
    run = r1.json()
    assert run["status"] == "completed" and [p["phase"] for p in run["phases"]] == ["freeze", "switch", "unfreeze"]
    assert run["plan"] == {"activate": ["a", "b"], "deactivate": [], "weights": {"a": 0.5, "b": 0.5}}
    act = client.get("/worlds/w1/activation").json()
    assert act["phase"] == "idle" and act["freeze"] is False and act["run_id"] == "r1"
    assert {s["strategy_id"]: s["weight"] for s in act["strategies"] if s["active"]} == {"a": 0.5, "b": 0.5}
    seq = act["sequence"]
    again = apply(client, "w1", "r1", {"deactivate": ["a", "b"]})
    assert again.json() == run
    assert client.get("/worlds/w1/activation").json()["sequence"] == seq  # nothing re-applied
    assert client.get("/worlds/w1/apply/r1").json() == run
    assert_error(client.get("/worlds/w1/apply/zzz"), 404, "E_UNKNOWN_RUN")

    r2 = apply(client, "w1", "r2", {"activate": ["c"], "deactivate": ["a"]}).json()
    assert r2["plan"]["weights"] == {"b": 0.5, "c": 0.5}  # b stays, c joins: equal weights among the resulting set
    active = {s["strategy_id"] for s in client.get("/worlds/w1/activation").json()["strategies"] if s["active"]}
    assert active == {"b", "c"}
    phases = ws_backend.bus.read(TOPIC_APPLY)
    assert [(e.data["run_id"], e.data["phase"]) for e in phases] == [
        ("r1", "freeze"), ("r1", "switch"), ("r1", "unfreeze"), ("r2", "freeze"), ("r2", "switch"), ("r2", "unfreeze")]


def test_an_apply_never_leaves_more_than_the_whole_active(client: httpx.Client) -> None:
    """Activating b beside a (alone at 1.0) re-weights a too (0.5 each, not 1.0 + 0.5); explicit
    weights that would push the active total over 1 with those staying are refused, and nothing moves."""
    make_world(client, preset="sandbox")
    evaluate(client, "w1", [{"strategy_id": s, "metrics": {}} for s in ("a", "b", "c")])
    assert apply(client, "w1", "r1", {"activate": ["a"]}).status_code == 200

    def weights() -> dict[str, float]:
        act = client.get("/worlds/w1/activation").json()
        return {s["strategy_id"]: s["weight"] for s in act["strategies"] if s["active"]}

    assert weights() == {"a": 1.0}
    assert apply(client, "w1", "r2", {"activate": ["b"]}).status_code == 200
    assert weights() == {"a": 0.5, "b": 0.5}
    over = apply(client, "w1", "r3", {"activate": ["c"], "weights": {"c": 0.4}})
    assert_error(over, 409, "E_WEIGHT_SUM")
    assert weights() == {"a": 0.5, "b": 0.5}
    ok = apply(client, "w1", "r4", {"activate": ["c"], "deactivate": ["b"], "weights": {"c": 0.5}})
    assert ok.status_code == 200, ok.text
    assert weights() == {"a": 0.5, "c": 0.5}


def test_allocations(client: httpx.Client) -> None:
    make_world(client, preset="sandbox")
    empty = client.get("/worlds/w1/allocations").json()
    assert empty["allocations"] == {} and empty["source"] == "active_set"
    evaluate(client, "w1", [{"strategy_id": "a", "metrics": {}}, {"strategy_id": "b", "metrics": {}}])
    apply(client, "w1", "r1")
    derived = client.get("/worlds/w1/allocations").json()
    assert derived["allocations"] == {"a": 0.5, "b": 0.5} and derived["etag"]
    put = client.put("/worlds/w1/allocations", json={"allocations": {"a": 0.7, "b": 0.2}})
    assert put.status_code == 200
    assert put.json()["source"] == "explicit" and put.json()["allocations"] == {"a": 0.7, "b": 0.2}
    assert put.json()["etag"] != derived["etag"]


def test_bindings_are_idempotent(client: httpx.Client) -> None:
    make_world(client)
    first = client.post("/worlds/w1/bindings", json={"strategy_id": "s1"})
    assert first.status_code == 201 and first.json()["strategy_id"] == "s1"
    again = client.post("/worlds/w1/bindings", json={"strategy_id": "s1"})
    assert again.status_code == 200 and again.json() == first.json()
    client.post("/worlds/w1/bindings", json={"strategy_id": "s0"})
    assert [b["strategy_id"] for b in client.get("/worlds/w1/bindings").json()["bindings"]] == ["s0", "s1"]
    assert_error(client.post("/worlds/w1/bindings", json={"strategy_id": ""}), 400, "E_SCHEMA", "strategy_id")
    actions = [e["action"] for e in client.get("/worlds/w1/audit").json()["entries"]]
    assert actions.count("binding.create") == 2


def test_audit_log_records_every_change(client: httpx.Client) -> None:
    make_world(client, preset="sandbox")
    client.put("/worlds/w1", json={"description": "new"})
    client.put("/worlds/w1/policy", json={"preset": "aggressive"})
    evaluate(client, "w1", [{"strategy_id": "a", "metrics": GOOD}])
    client.put("/worlds/w1/activation", json={"freeze": True})
    apply(client, "w1", "r1")
    client.put("/worlds/w1/allocations", json={"allocations": {"a": 1.0}})
    client.delete("/worlds/w1")
    entries = client.get("/worlds/w1/audit").json()["entries"]
    assert [e["action"] for e in entries] == [
        "world.create", "world.update", "policy.update", "evaluation", "decision", "activation.update",
        "apply.freeze", "apply.switch", "apply.unfreeze", "allocations.update", "world.delete"]
    assert all(e["actor"] == "tester" for e in entries)
    assert [e["seq"] for e in entries] == list(range(1, 12))
    upd = entries[1]
    assert upd["before"]["description"] is None and upd["after"]["description"] == "new"
    assert entries[-1]["after"] is None and entries[-1]["before"]["id"] == "w1"
    assert client.get("/worlds/w1/audit", params={"after_seq": 9}).json()["entries"][0]["action"] == "allocations.update"


def test_state_survives_restart(ws_backend) -> None:
    url = ws_backend.start()
    with httpx.Client(base_url=url, timeout=30) as c:
        make_world(c, preset="sandbox", allow_live=True)
        evaluate(c, "w1", [{"strategy_id": "a", "metrics": {}}])
        apply(c, "w1", "r1")
        before = {p: c.get(p).json() for p in ("/worlds/w1", "/worlds/w1/activation", "/worlds/w1/apply/r1",
                                               "/worlds/w1/allocations", "/worlds/w1/audit")}
        decision = c.get("/worlds/w1/decide", params={"strategy_id": "a"}).json()
    ws_backend.stop()
    url2 = ws_backend.start()  # new app, new Database connection, same database
    with httpx.Client(base_url=url2, timeout=30) as c:
        after = {p: c.get(p).json() for p in before}
        assert after == before
        assert c.get("/worlds/w1/decide", params={"strategy_id": "a"}).json() == decision
        again = apply(c, "w1", "r1").json()
        assert again == before["/worlds/w1/apply/r1"]  # idempotency survives the restart


def test_world_service_metrics(client: httpx.Client) -> None:
    """Issue 8 section 5: the world service exposes qmtl_-prefixed metrics in seconds too."""
    make_world(client, preset="sandbox")
    evaluate(client, "w1", [{"strategy_id": "a", "metrics": {}}])
    assert apply(client, "w1", "r1").status_code == 200
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in r.text.splitlines() if line and not line.startswith("#")}
    assert samples["qmtl_worldservice_evaluations_total"] == 1
    assert samples['qmtl_worldservice_apply_phases_total{phase="switch"}'] == 1
    key = 'qmtl_http_requests_total{method="POST",route="/worlds/{world_id}/evaluate",service="worldservice",status="200"}'
    assert samples[key] == 1
    assert 0 < samples['qmtl_http_request_duration_seconds_sum{route="/worlds/{world_id}/evaluate",service="worldservice"}'] < 10
    assert all(line.split(" ")[2].startswith("qmtl_") for line in r.text.splitlines() if line.startswith("# TYPE"))
