"""POST /strategies end to end: verify, diff against the GSG, reuse, idempotency, every 4xx."""

from __future__ import annotations

import copy
import json

from typing import Any

from qmtl.ir.dag import dag_checksum
from qmtl.services.gateway.sample_dags import chain_dag

Stack = Any  # tests/services/gateway/conftest.py: the running gateway + world service



def _submit(stack: Stack, dag: dict, worlds=("w1",), **extra):
    return stack.client.post("/strategies", json={"dag": dag, "world_ids": list(worlds), **extra})


def _error(resp, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def test_two_strategies_share_their_source_subdag(stack: Stack) -> None:
    stack.make_world("w1")
    a, b = chain_dag("a", 12, seed=1), chain_dag("b", 9, seed=2)
    first = _submit(stack, a, checksum=a["checksum"])
    assert first.status_code == 201, first.text
    ra = first.json()
    assert ra["created"] is True
    assert [n["status"] for n in ra["nodes"]] == ["new"] * 12
    assert ra["new"] == [n["node_id"] for n in a["nodes"]] and ra["reused"] == []
    assert all(n["used_by"] == [ra["strategy_id"]] for n in ra["nodes"])
    assert ra["execution_domains"] == {"w1": "backtest"}  # no decision yet: default-safe
    src = a["nodes"][0]["node_id"]
    assert ra["queue_map"][src] == f"w1.backtest.{src[len('blake3:'):][:12]}"
    assert set(ra["queue_map"]) == {n["node_id"] for n in a["nodes"]}

    rb = _submit(stack, b).json()
    shared = [n["node_id"] for n in b["nodes"][:2]]  # stream_input + close column
    assert rb["reused"] == shared
    assert rb["new"] == [n["node_id"] for n in b["nodes"][2:]]
    by_id = {n["node_id"]: n for n in rb["nodes"]}
    assert by_id[shared[0]]["used_by"] == sorted([ra["strategy_id"], rb["strategy_id"]])
    assert by_id[shared[0]]["name"] == "src" and by_id[shared[0]]["op"] == "stream_input"
    assert rb["strategy_id"] != ra["strategy_id"]


def test_resubmission_is_idempotent(stack: Stack) -> None:
    stack.make_world("w1")
    stack.make_world("w2")
    dag = chain_dag("a", 6, seed=3)
    first = _submit(stack, dag).json()
    again = _submit(stack, dag, worlds=("w1", "w2", "w1"))
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["strategy_id"] == first["strategy_id"] and body["created"] is False
    assert {n["status"] for n in body["nodes"]} == {"existing"}
    assert all(n["used_by"] == [first["strategy_id"]] for n in body["nodes"])
    assert body["world_ids"] == ["w1", "w2"]
    assert set(body["queues_by_world"]) == {"w1", "w2"}

    stored = stack.client.get(f"/strategies/{first['strategy_id']}").json()
    assert stored["dag"]["nodes"] == dag["nodes"]
    assert stored["checksum"] == dag_checksum(n["node_id"] for n in dag["nodes"])
    assert stored["world_ids"] == ["w1", "w2"]
    assert [n["status"] for n in stored["nodes"]] == ["new"] * 6  # as first seen
    assert stored["created_at"] > 0


def test_malformed_json_and_wrong_shapes(stack: Stack) -> None:
    resp = stack.client.post("/strategies", content=b'{"dag": [', headers={"content-type": "application/json"})
    assert "not valid JSON" in _error(resp, 400, "E_SCHEMA")
    resp = stack.client.post("/strategies", json=[1, 2])
    assert "JSON object" in _error(resp, 400, "E_SCHEMA")
    dag = chain_dag("a", 4)
    bad = copy.deepcopy(dag)
    bad["nodes"][0]["interval"] = "60"
    assert "dag.nodes.0.interval" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    bad = copy.deepcopy(dag)
    del bad["nodes"][1]["op"]
    assert "dag.nodes.1.op: Field required" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    assert "world_ids" in _error(_submit(stack, dag, worlds=()), 400, "E_SCHEMA")
    assert "world_ids.0" in _error(_submit(stack, dag, worlds=(7,)), 400, "E_SCHEMA")
    bad = copy.deepcopy(dag)
    bad["nodes"][2]["op"] = "frobnicate"
    assert "dag.nodes[2].op: unknown op 'frobnicate'" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    bad = copy.deepcopy(dag)
    bad["nodes"][2]["inputs"] = ["blake3:" + "0" * 64]
    assert "dag.nodes[2].inputs[0]" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    bad = copy.deepcopy(dag)
    bad["outputs"][0]["node_id"] = "blake3:" + "1" * 64
    assert "dag.outputs[0].node_id" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    bad = copy.deepcopy(dag)
    bad["outputs"][0]["inputs"] = [dag["nodes"][0]["node_id"], "blake3:" + "2" * 64]
    assert "dag.outputs[0].inputs[1]" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    bad["outputs"][0]["inputs"] = ["not-an-id"]
    assert "dag.outputs.0.inputs.0" in _error(_submit(stack, bad), 400, "E_SCHEMA")
    bad = copy.deepcopy(dag)
    bad["nodes"].append(copy.deepcopy(bad["nodes"][1]))
    assert "duplicate NodeID" in _error(_submit(stack, bad), 400, "E_SCHEMA")


def test_declared_output_inputs_are_accepted(stack: Stack) -> None:
    stack.make_world("w1")
    dag = chain_dag("inputs", 4)
    dag["outputs"][0]["inputs"] = [dag["nodes"][0]["node_id"]]
    resp = _submit(stack, dag)
    assert resp.status_code in (200, 201, 202), resp.text
    stored = stack.client.get(f"/strategies/{resp.json()['strategy_id']}").json()
    assert stored["dag"]["outputs"][0]["inputs"] == [dag["nodes"][0]["node_id"]]


def test_payload_too_large(stack: Stack) -> None:
    big = b'{"pad": "' + b"x" * (stack.body_limit + 10) + b'"}'
    resp = stack.client.post("/strategies", content=big, headers={"content-type": "application/json"})
    assert "limit" in _error(resp, 413, "E_PAYLOAD_TOO_LARGE")

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(stack.body_limit // 4096 + 4):
            yield b"x" * 4096

    resp = stack.client.post("/strategies", content=chunks())
    _error(resp, 413, "E_PAYLOAD_TOO_LARGE")
    assert stack.client.get("/health").json()["status"] == "ok"  # still serving


def test_tampered_node_id_names_node_and_both_ids(stack: Stack) -> None:
    stack.make_world("w1")
    dag = chain_dag("a", 6)
    tampered = copy.deepcopy(dag)
    tampered["nodes"][3]["params"]["window"] = 99  # changed without rehashing
    msg = _error(_submit(stack, tampered), 400, "E_NODE_ID_MISMATCH")
    claimed = dag["nodes"][3]["node_id"]
    assert "node 'v1' (dag.nodes[3])" in msg and claimed in msg
    details = _submit(stack, tampered).json()["error"]["details"]
    assert details[0]["claimed"] == claimed and details[0]["recomputed"] != claimed
    assert details[0]["recomputed"].startswith("blake3:")
    # renaming a node is not tampering: names are not part of identity
    renamed = copy.deepcopy(dag)
    renamed["nodes"][3]["name"] = "another_name"
    assert _submit(stack, renamed).status_code == 201


def test_checksum_mismatch(stack: Stack) -> None:
    stack.make_world("w1")
    dag = chain_dag("a", 5)
    msg = _error(_submit(stack, dag, checksum="blake3:" + "f" * 64), 400, "E_CHECKSUM_MISMATCH")
    assert msg.startswith("checksum:") and dag["checksum"] in msg
    bad = copy.deepcopy(dag)
    bad["checksum"] = "blake3:" + "e" * 64
    assert _error(_submit(stack, bad), 400, "E_CHECKSUM_MISMATCH").startswith("dag.checksum:")


def test_cycle_is_rejected(stack: Stack) -> None:
    dag = chain_dag("a", 5)
    bad = copy.deepcopy(dag)
    bad["nodes"][2]["inputs"] = [bad["nodes"][4]["node_id"]]  # v0 <- v2 <- v1 <- v0
    msg = _error(_submit(stack, bad), 400, "E_CYCLE")
    assert "dag.nodes[2] (v0)" in msg and "dag.nodes[4] (v2)" in msg


def test_unknown_world_and_unknown_strategy(stack: Stack) -> None:
    msg = _error(_submit(stack, chain_dag("a", 4), worlds=("nowhere",)), 404, "E_UNKNOWN_WORLD")
    assert "nowhere" in msg
    _error(stack.client.get("/strategies/blake3:" + "0" * 64), 404, "E_UNKNOWN_STRATEGY")
    _error(stack.client.get("/no/such/route"), 404, "E_NOT_FOUND")


def test_acknowledged_submission_survives_a_new_app_on_the_same_db(stack: Stack, db_backend) -> None:
    """Persistence check within a process; test_durability.py does the same across kill -9."""
    stack.make_world("w1")
    body = _submit(stack, chain_dag("a", 5)).json()
    store = stack.gateway_app.state.store
    row = store.db.fetchone("SELECT dag FROM gw_strategy WHERE strategy_id = ?", (body["strategy_id"],))
    assert json.loads(row["dag"])["checksum"] == body["checksum"]


FP = "blake3:" + "c" * 64
AS_OF = "2024-03-01T00:00:00+00:00"


def _live_decision(stack: Stack, dag: dict) -> str:
    """Make the world's stored decision for ``dag``'s strategy live (on AS_OF/FP); returns its id."""
    stack.make_world("live-w", allow_live=True, policy={"thresholds": {"sharpe": {"min": 1.0}}})
    sid = _submit(stack, dag, worlds=("live-w",), meta={"as_of": AS_OF, "dataset_fingerprint": FP}).json()["strategy_id"]
    r = stack.client.post("/worlds/live-w/evaluate", json={
        "strategies": [{"strategy_id": sid, "metrics": {"sharpe": 2.0}}], "as_of": AS_OF, "dataset_fingerprint": FP})
    assert r.status_code == 200 and r.json()["active"] == [sid], r.text
    return sid


def test_submission_gets_the_decision_domain_only_with_the_decision_data(stack: Stack) -> None:
    """Issue 8 section 1: a submission without (or with other) evidence must not borrow a live decision."""
    dag = chain_dag("evidence", 5, seed=7)
    _live_decision(stack, dag)
    same = _submit(stack, dag, worlds=("live-w",), meta={"as_of": AS_OF, "dataset_fingerprint": FP}).json()
    assert same["execution_domains"] == {"live-w": "live"}  # the control: the decision's own data
    cases = [({}, "as_of is missing"),
             ({"as_of": AS_OF}, "dataset_fingerprint is missing"),
             ({"as_of": "2999-01-01T00:00:00Z", "dataset_fingerprint": FP}, "future"),
             ({"as_of": AS_OF, "dataset_fingerprint": " "}, "dataset_fingerprint is missing"),
             ({"as_of": "2024-04-01T00:00:00+00:00", "dataset_fingerprint": FP}, "made on other data"),
             ({"as_of": AS_OF, "dataset_fingerprint": FP, "synthetic_data": True}, "synthetic")]
    for meta, why in cases:
        body = _submit(stack, dag, worlds=("live-w",), meta=meta).json()
        decision = body["decisions"]["live-w"]
        assert body["execution_domains"] == {"live-w": "backtest"}, meta
        assert decision["orders_gated"] is True and why in decision["reason"], (meta, decision)
        assert all(q.startswith("live-w.backtest.") for q in body["queue_map"].values())
    assert "synthetic_data" in _error(_submit(stack, dag, worlds=("live-w",), meta={"synthetic_data": "yes"}),
                                      400, "E_SCHEMA")
