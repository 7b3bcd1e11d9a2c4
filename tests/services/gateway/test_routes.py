"""Queues by tag, metrics exposition, the world proxy and the event relay (SSE and poll)."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import httpx

from qmtl.services.gateway.sample_dags import chain_dag

Stack = Any  # tests/services/gateway/conftest.py: the running gateway + world service

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                     r'(-?[0-9.e+]+|\+Inf|NaN)$')


def _submit(stack: Stack, dag: dict, worlds=("w1",)) -> dict:
    resp = stack.client.post("/strategies", json={"dag": dag, "world_ids": list(worlds)})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def test_queues_by_tag(stack: Stack) -> None:
    stack.make_world("w1")
    stack.make_world("w2")
    btc = _submit(stack, chain_dag("a", 4, symbol="BTC"))
    eth = _submit(stack, chain_dag("b", 4, symbol="ETH", interval=300), worlds=("w2",))
    btc_src = chain_dag("a", 4, symbol="BTC")["nodes"][0]["node_id"]
    eth_src = chain_dag("b", 4, symbol="ETH", interval=300)["nodes"][0]["node_id"]

    got = stack.client.get("/queues/by_tag", params={"tags": "BTC", "world_id": "w1"}).json()
    assert [(q["node_id"], q["queue"], q["execution_domain"]) for q in got["queues"]] == \
        [(btc_src, btc["queue_map"][btc_src], "backtest")]
    assert got["queues"][0]["tags"] == ["BTC", "price"] and got["queues"][0]["op"] == "stream_input"

    both = stack.client.get("/queues/by_tag", params={"tags": "price,BTC", "match_mode": "any"}).json()
    assert {q["node_id"] for q in both["queues"]} == {btc_src, eth_src}
    assert {q["queue"] for q in both["queues"]} == {btc["queue_map"][btc_src], eth["queue_map"][eth_src]}
    five_min = stack.client.get("/queues/by_tag", params={"tags": "price", "interval": 300}).json()
    assert [q["node_id"] for q in five_min["queues"]] == [eth_src]
    none = stack.client.get("/queues/by_tag", params={"tags": "BTC,ETH", "match_mode": "all"}).json()
    assert none["queues"] == []
    other_world = stack.client.get("/queues/by_tag", params={"tags": "BTC", "world_id": "w2"}).json()
    assert other_world["queues"] == []
    bad = stack.client.get("/queues/by_tag", params={"tags": "BTC", "match_mode": "some"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "E_SCHEMA"
    assert "match_mode" in bad.json()["error"]["message"]
    missing = stack.client.get("/queues/by_tag")
    assert missing.status_code == 400 and "tags" in missing.json()["error"]["message"]


def test_metrics_text_parses(stack: Stack) -> None:
    stack.make_world("w1")
    dag = chain_dag("a", 5)
    _submit(stack, dag)
    tampered = json.loads(json.dumps(dag))
    tampered["nodes"][2]["params"]["window"] = 1234
    stack.client.post("/strategies", json={"dag": tampered, "world_ids": ["w1"]})
    text = stack.client.get("/metrics").text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        samples[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    # issue 8 section 5: prometheus_client, every name qmtl_-prefixed, durations in seconds
    assert samples['qmtl_gateway_submissions_total{result="created"}'] == 1
    assert samples['qmtl_gateway_submissions_total{result="rejected"}'] == 1
    assert samples['qmtl_gateway_submissions_total{result="existing"}'] == 0  # declared before use
    assert samples["qmtl_gateway_nodeid_mismatches_total"] == 1
    assert samples["qmtl_gateway_diff_duration_seconds_count"] == 1
    assert samples['qmtl_gateway_diff_duration_seconds_bucket{le="+Inf"}'] == 1
    assert 0 < samples["qmtl_gateway_diff_duration_seconds_sum"] < 10  # seconds, not milliseconds
    key = 'qmtl_http_requests_total{method="POST",route="/strategies",service="gateway",status="400"}'
    assert samples[key] == 1
    key = 'qmtl_http_requests_total{method="POST",route="/worlds",service="gateway",status="201"}'
    assert samples[key] == 1
    assert "# TYPE qmtl_gateway_diff_duration_seconds histogram" in text
    names = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert names and all(n.startswith("qmtl_") for n in names), names



def test_world_routes_are_proxied(stack: Stack) -> None:
    stack.make_world("w1", name="first")
    assert stack.client.get("/worlds/w1").json()["name"] == "first"
    assert [w["id"] for w in stack.client.get("/worlds").json()["worlds"]] == ["w1"]
    missing = stack.client.get("/worlds/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "E_UNKNOWN_WORLD"
    decision = stack.client.get("/worlds/w1/decide", params={"strategy_id": "s"}).json()
    assert decision["execution_domain"] == "backtest" and decision["orders_gated"] is True


def _read_sse(url: str, topic: str, found: list[dict], ready: threading.Event) -> None:
    with httpx.stream("GET", f"{url}/events", params={"topic": topic, "duration": 20}, timeout=30) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        for line in resp.iter_lines():
            if line.startswith(": connected"):
                ready.set()
            elif line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                event[key] = value.strip()
            elif line == "" and event:
                found.append(event)
                if event.get("event") == "ActivationUpdated":
                    return
                event = {}


def test_sse_relays_an_activation_event(stack: Stack) -> None:
    stack.make_world("w1")  # sandbox: s1 passes and may trade on paper, so it may be activated
    stack.client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "s1"}],
                                                   "as_of": "2024-01-01T00:00:00Z",
                                                   "dataset_fingerprint": "blake3:" + "d" * 64})
    found: list[dict] = []
    ready = threading.Event()
    reader = threading.Thread(target=_read_sse, args=(stack.url, "activation", found, ready), daemon=True)
    reader.start()
    assert ready.wait(10), "SSE stream did not open"
    resp = stack.client.put("/worlds/w1/activation", json={"strategy_id": "s1", "active": True, "weight": 0.5})
    assert resp.status_code == 200, resp.text
    reader.join(20)
    assert found and found[-1]["event"] == "ActivationUpdated"
    data = json.loads(found[-1]["data"])
    assert data["topic"] == "activation" and data["data"]["world_id"] == "w1"
    assert int(found[-1]["id"]) == data["seq"] >= 1

    resumed = stack.client.get("/events/poll", params={"topic": "activation", "after": data["seq"] - 1})
    assert [e["seq"] for e in resumed.json()["events"]] == [data["seq"]]


def test_sse_from_latest_skips_the_history(stack: Stack) -> None:
    """A stream opened with ``from_latest`` sends only what is published after it opened."""
    for i in range(3):
        stack.bus.publish("fresh", "Old", {"i": i}, f"old-{i}")
    with httpx.stream("GET", f"{stack.url}/events", params={"topic": "fresh", "from_latest": "true",
                                                            "duration": 20}, timeout=30) as resp:
        lines = resp.iter_lines()
        assert next(lines).startswith(": connected") and next(lines) == ""
        stack.bus.publish("fresh", "New", {"i": 3}, "new")
        frame = [next(lines) for _ in range(3)]
    assert frame[:2] == ["id: 4", "event: New"] and json.loads(frame[2][len("data: "):])["data"] == {"i": 3}


def test_poll_relays_queue_updates(stack: Stack) -> None:
    stack.make_world("w1")
    body = _submit(stack, chain_dag("a", 4))
    _submit(stack, chain_dag("a", 4))  # resubmitting publishes nothing new (idempotent key)
    got = stack.client.get("/events/poll", params={"topic": "queues"}).json()
    assert [e["type"] for e in got["events"]] == ["QueueUpdated"]
    event = got["events"][0]["data"]
    assert event["strategy_id"] == body["strategy_id"] and event["queues"] == body["queue_map"]
    assert got["last_seq"] == got["events"][0]["seq"]
    later = stack.client.get("/events/poll", params={"topic": "queues", "after": got["last_seq"]}).json()
    assert later["events"] == [] and later["last_seq"] == got["last_seq"]
    bad = stack.client.get("/events/poll", params={"topic": "no spaces allowed"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "E_SCHEMA"


def test_idle_event_streams_cost_nothing(stack: Stack) -> None:
    """Issue 8 section 5: 120 open, idle /events streams used to hold 120 worker threads and push
    /health from 12 ms to 2.5 s.  Streams now wait on the bus asynchronously."""
    import socket
    import time
    from urllib.parse import urlparse

    host, port = urlparse(stack.url).hostname, urlparse(stack.url).port
    streams = []
    try:
        for _ in range(120):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"GET /events?topic=idle HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            streams.append(s)
        for s in streams[:5]:
            assert s.recv(1024).startswith(b"HTTP/1.1 200")  # they are open and answered
        time.sleep(1.5)  # several of the streams' read slices go by
        slowest = 0.0
        for _ in range(10):
            began = time.perf_counter()
            assert stack.client.get("/health").status_code == 200
            slowest = max(slowest, time.perf_counter() - began)
        assert slowest < 0.5, f"/health took {slowest:.3f}s with 120 idle streams open"
        # and a stream still relays what is published
        stack.bus.publish("idle", "Ping", {"n": 1}, "idle:1")
        deadline = time.monotonic() + 5
        seen = b""
        streams[0].settimeout(0.5)
        while b"Ping" not in seen and time.monotonic() < deadline:
            try:
                seen += streams[0].recv(4096)
            except socket.timeout:
                pass
        assert b"event: Ping" in seen
    finally:
        for s in streams:
            s.close()
