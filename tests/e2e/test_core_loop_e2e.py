"""The core loop's promises checked through the gateway URL only (what an SDK client sees), on both
backends: bindings, the event relay, default-safe decisions, and bad input on the proxied world routes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from qmtl.runner.runner import Runner
from qmtl.runtime.synthetic import synthetic_bars
from qmtl.services.client import GatewayClient
from qmtl.services.gateway.sample_dags import chain_dag
from tests.submit_support import MOMENTUM


@pytest.fixture(scope="module")
def strategy_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("core-loop")
    (root / "momentum.py").write_text(MOMENTUM)
    synthetic_bars(1500, symbols=("AAA",), interval=60, seed=5).to_parquet(root / "prices.parquet",
                                                                           index=False)
    return root / "momentum.py", root / "prices.parquet"


@pytest.fixture
def gw(services: str):
    with httpx.Client(base_url=services, timeout=30) as client:
        yield client


def make_world(gw: httpx.Client, world_id: str, **body) -> None:
    resp = gw.post("/worlds", json={"id": world_id, **body})
    assert resp.status_code == 201, resp.text


def error_code(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["message"], "every error says what is wrong"
    return err["code"]


def test_submission_shows_up_in_the_worlds_bindings(gw, services, strategy_file) -> None:
    make_world(gw, "bind-w", preset="sandbox")
    path, data = strategy_file
    res = Runner.submit(path, world="bind-w", data=data, gateway_url=services)
    assert res.status == "accepted", res.downgrade_reason
    bindings = gw.get("/worlds/bind-w/bindings").json()["bindings"]
    assert [b["strategy_id"] for b in bindings] == [res.strategy_id]
    # a second submission of the same strategy is not a second binding
    again = Runner.submit(path, world="bind-w", data=data, gateway_url=services)
    assert again.strategy_id == res.strategy_id
    assert len(gw.get("/worlds/bind-w/bindings").json()["bindings"]) == 1
    audit = gw.get("/worlds/bind-w/audit").json()["entries"]
    assert [e["action"] for e in audit].count("binding.create") == 1
    stored = gw.get(f"/strategies/{res.strategy_id}").json()
    assert stored["strategy_id"] == res.strategy_id and stored["world_ids"] == ["bind-w"]


def test_submit_result_carries_the_issue_fields(services, strategy_file, gw) -> None:
    make_world(gw, "fields-w", preset="sandbox")
    path, data = strategy_file
    res = Runner.submit(path, world="fields-w", data=data, gateway_url=services)
    assert res.status == "accepted" and res.safe_mode is False and res.downgrade_reason is None
    # the decision is the world's own envelope: the same one GET /decide gives now
    world_view = gw.get("/worlds/fields-w/decide", params={"strategy_id": res.strategy_id}).json()
    assert res.decision.model_dump() == world_view
    # sandbox: passes and is selected, but never live — paper, in the dryrun domain
    assert (res.decision.effective_mode, res.decision.execution_domain) == ("paper", "dryrun")
    assert res.activation["strategy_id"] == res.strategy_id and "sequence" in res.activation
    assert res.precheck.metrics.sharpe is not None and res.precheck.metrics.bars > 1000
    assert isinstance(res.reused_nodes, list)
    # the world's verdict per rule travels with the result, kept apart from the local precheck
    assert res.evaluation.passed and res.evaluation.active and res.evaluation.weight == 1.0
    assert res.evaluation.failed_rules() == []


def test_failed_policy_names_the_failing_rule(gw, services, strategy_file) -> None:
    make_world(gw, "strict-w", policy={"thresholds": {"trades": {"min": 1e9}}})
    path, data = strategy_file
    res = Runner.submit(path, world="strict-w", data=data, gateway_url=services)
    assert res.status == "accepted" and res.decision.effective_mode == "validate"
    failed = res.evaluation.failed_rules()
    assert [r.rule for r in failed] == ["threshold:trades"]
    assert failed[0].value == res.precheck.metrics.trades and "min" in failed[0].detail
    assert not res.evaluation.active


def _poll(gw: httpx.Client, topic: str) -> list[dict]:
    return gw.get("/events/poll", params={"topic": topic}).json()["events"]


def test_event_stream_relays_queue_and_activation_events(gw, services, strategy_file) -> None:
    make_world(gw, "events-w", preset="sandbox")
    path, data = strategy_file
    res = Runner.submit(path, world="events-w", data=data, gateway_url=services)
    queues = [e for e in _poll(gw, "queues") if e["data"]["world_id"] == "events-w"]
    assert [e["type"] for e in queues] == ["QueueUpdated"]
    assert queues[0]["data"]["strategy_id"] == res.strategy_id
    assert queues[0]["data"]["queues"] == res.queue_map and queues[0]["idempotency_key"]

    etag = gw.get("/worlds/events-w/activation").json()["etag"]
    applied = gw.post("/worlds/events-w/apply", json={"run_id": "r1", "etag": etag})
    assert applied.status_code == 200, applied.text
    assert [p["phase"] for p in applied.json()["phases"]] == ["freeze", "switch", "unfreeze"]
    activation = [e for e in _poll(gw, "activation") if e["data"]["world_id"] == "events-w"]
    assert [e["type"] for e in activation] == ["ActivationUpdated"] * 3
    seqs = [e["data"]["sequence"] for e in activation]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [(e["data"]["freeze"], e["data"]["phase"]) for e in activation] == \
        [(True, "freeze"), (True, "switch"), (False, "idle")]
    mine = [s for s in activation[-1]["data"]["strategies"] if s["strategy_id"] == res.strategy_id]
    assert mine and mine[0]["active"] is True


def test_live_hint_to_a_world_without_allow_live_stays_backtest(gw) -> None:
    make_world(gw, "hint-w", preset="sandbox")  # allow_live defaults to False
    dag = chain_dag("hint", 5, seed=41)
    meta = {"hint": "live", "as_of": "2024-01-01T00:00:00+00:00", "dataset_fingerprint": "blake3:" + "a" * 64}
    resp = gw.post("/strategies", json={"dag": dag, "world_ids": ["hint-w"], "meta": meta})
    assert resp.status_code == 201, resp.text
    decision = resp.json()["decisions"]["hint-w"]
    assert decision["execution_domain"] == "backtest" and decision["orders_gated"] is True
    assert "hint 'live' ignored (world does not allow live)" in decision["reason"]
    queues = resp.json()["queue_map"].values()
    assert all(q.startswith("hint-w.backtest.") for q in queues)
    # once the policy passes, the hint still cannot open live: paper at most, and the reason says why
    sid = resp.json()["strategy_id"]
    evaluated = gw.post("/worlds/hint-w/evaluate", json={
        "strategies": [{"strategy_id": sid, "metrics": {"sharpe": 2.0}}],
        "as_of": "2024-01-01T00:00:00+00:00", "dataset_fingerprint": "blake3:" + "a" * 64})
    assert evaluated.status_code == 200, evaluated.text
    hinted = gw.get("/worlds/hint-w/decide", params={"strategy_id": sid, "hint": "live"}).json()
    assert hinted["effective_mode"] == "paper" and hinted["execution_domain"] != "live"
    assert "hint 'live' downgraded to paper: world does not allow live" in hinted["reason"]


def test_stale_decision_is_compute_only(gw, services, strategy_file) -> None:
    make_world(gw, "stale-w", preset="sandbox", decision_ttl=1)
    path, data = strategy_file
    res = Runner.submit(path, world="stale-w", data=data, gateway_url=services)
    assert res.decision.effective_mode == "paper", res.decision.reason  # fresh: what the policy said
    time.sleep(1.3)
    stale = gw.get("/worlds/stale-w/decide", params={"strategy_id": res.strategy_id}).json()
    assert stale["effective_mode"] == "compute-only" and stale["execution_domain"] == "backtest"
    assert stale["orders_gated"] is True and "stale" in stale["reason"]
    # a resubmission sees the stale decision too: its queues go to the backtest domain, not dryrun
    again = Runner.submit(path, world="stale-w", data=data, gateway_url=services)
    assert again.queue_map and all(q.startswith("stale-w.backtest.") for q in again.queue_map.values())


@pytest.mark.parametrize("missing, why", [("as_of", "as_of is missing"),
                                          ("dataset_fingerprint", "dataset_fingerprint is missing")])
def test_missing_as_of_or_fingerprint_is_compute_only(gw, missing: str, why: str) -> None:
    world = f"missing-{missing.replace('_', '-')}"
    make_world(gw, world, preset="sandbox")
    body = {"strategies": [{"strategy_id": "s1", "metrics": {"sharpe": 3.0}}],
            "as_of": "2024-01-01T00:00:00+00:00", "dataset_fingerprint": "blake3:" + "b" * 64}
    del body[missing]
    result = gw.post(f"/worlds/{world}/evaluate", json=body)
    assert result.status_code == 200 and result.json()["active"] == []  # no evidence: no place in the set
    assert result.json()["results"]["s1"]["rules"][0]["rule"] == "evidence"
    decision = gw.get(f"/worlds/{world}/decide", params={"strategy_id": "s1"}).json()
    assert decision["effective_mode"] == "compute-only" and decision["orders_gated"] is True
    assert why in decision["reason"]


def test_bad_input_on_world_routes_through_the_gateway(gw) -> None:
    make_world(gw, "bad-w")
    json_header = {"content-type": "application/json"}
    assert error_code(gw.post("/worlds", content=b'{"id": ', headers=json_header), 400) == "E_SCHEMA"
    assert error_code(gw.post("/worlds", json=["not", "an", "object"]), 400) == "E_SCHEMA"
    wrong = gw.post("/worlds", json={"id": "typed", "allow_live": "sometimes"})
    assert error_code(wrong, 400) == "E_SCHEMA" and "allow_live" in wrong.json()["error"]["message"]
    assert error_code(gw.post("/worlds/bad-w/evaluate", json={"strategies": "s1"}), 400) == "E_SCHEMA"
    bad_policy = gw.put("/worlds/bad-w/policy", content=b"thresholds: [", headers={"content-type":
                                                                                    "application/yaml"})
    assert error_code(bad_policy, 400) == "E_POLICY"
    assert error_code(gw.post("/worlds", json={"id": "bad-w"}), 409) == "E_WORLD_EXISTS"
    for resp in (gw.get("/worlds/ghost"), gw.get("/worlds/ghost/decide", params={"strategy_id": "s"}),
                 gw.post("/worlds/ghost/evaluate", json={"strategies": [{"strategy_id": "s"}]}),
                 gw.get("/worlds/ghost/bindings")):
        assert error_code(resp, 404) == "E_UNKNOWN_WORLD"
    # over the world service's limit but under the gateway's: the world service refuses it
    huge = b'{"strategies": [{"strategy_id": "' + b"x" * (2 << 20) + b'"}]}'
    assert error_code(gw.post("/worlds/bad-w/evaluate", content=huge, headers=json_header),
                      413) == "E_PAYLOAD_TOO_LARGE"
    # over the gateway's own limit, streamed without a length: refused while reading

    def chunks():
        for _ in range(9 * 256):
            yield b"x" * 4096

    assert error_code(gw.post("/worlds/bad-w/evaluate", content=chunks()), 413) == "E_PAYLOAD_TOO_LARGE"
    assert gw.get("/health").json()["status"] == "ok"
    assert gw.get("/worlds/bad-w").status_code == 200  # nothing above broke the world


def test_sdk_client_follows_the_event_stream(gw, services) -> None:
    make_world(gw, "follow-w")
    gw.post("/worlds/follow-w/evaluate", json={"strategies": [{"strategy_id": "s"}],
                                               "as_of": "2024-01-01T00:00:00Z",
                                               "dataset_fingerprint": "blake3:" + "e" * 64})
    with GatewayClient(services) as client:
        start = client.events("activation")["last_seq"]
        gw.put("/worlds/follow-w/activation", json={"strategy_id": "s", "active": True})
        got = client.events("activation", after=start, wait=5)
        assert [e["data"]["world_id"] for e in got["events"]] == ["follow-w"]
        assert got["last_seq"] == got["events"][0]["seq"] > start
        began = time.monotonic()
        assert client.events("activation", after=got["last_seq"], wait=0.5)["events"] == []
        assert time.monotonic() - began >= 0.4  # it waited for an event before answering empty
