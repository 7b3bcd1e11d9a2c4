"""Issue 8 section 3: input that used to answer 5xx (or walk the proxy) is a 4xx ``E_SCHEMA`` now.

Runs on both profiles through ``stack`` (SQLite + in-process bus, PostgreSQL + Redis Streams): NUL
bytes and 64-bit overflows are exactly what differs between the backends.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from qmtl.services.gateway.sample_dags import chain_dag

Stack = Any


def schema_error(resp, *fragments: str, status: int = 400) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text)
    err = resp.json()["error"]
    assert err["code"] == "E_SCHEMA", err
    for frag in fragments:
        assert frag in err["message"], err["message"]
    assert "location" not in resp.headers


@pytest.mark.parametrize("path", ["/worlds/%7F", "/worlds/%00", "/worlds/%0A", "/worlds/x%0D%0Ay/policy",
                                  "/strategies/%00", "/worlds/%00/decide?strategy_id=s"])
def test_control_characters_in_paths(stack: Stack, path: str) -> None:
    schema_error(stack.client.get(path), "control character")


@pytest.mark.parametrize("path, why", [("/worlds/..%2Fopenapi.json", "encoded slash"),
                                       ("/worlds/%2E%2E/openapi.json", "'..'"),
                                       ("/worlds/w/..%2F..%2Fopenapi.json", "encoded slash"),
                                       ("/worlds/w/%2e%2e/%2e%2e/openapi.json", "'..'")])
def test_the_proxy_does_not_walk_out_of_worlds(stack: Stack, path: str, why: str) -> None:
    schema_error(stack.client.get(path), why)


@pytest.mark.parametrize("path", ["/worlds/a%2Fb", "/worlds/a%2fb", "/worlds/w1%2Fpolicy",
                                  "/worlds/w1/decide%2F?strategy_id=s", "/strategies/a%2Fb"])
def test_encoded_slash_is_refused_never_rerouted(stack: Stack, path: str) -> None:
    """Issue 8: ``%2F`` in a proxied path used to be routed as ``/`` (``/worlds/w1%2Fpolicy`` answered
    as ``/worlds/w1/policy``); refused before any routing, so no hop decodes and re-routes it."""
    stack.client.post("/worlds", json={"id": "w1", "preset": "sandbox"})
    schema_error(stack.client.get(path), "encoded slash", "%2F")


def test_no_slash_redirect_naming_the_internal_host(stack: Stack) -> None:
    resp = stack.client.get("/worlds/")
    assert resp.status_code == 404 and "location" not in resp.headers


@pytest.mark.parametrize("params", [{"topic": "t", "after": str(2**64)}, {"topic": "t", "after": str(2**63)},
                                    {"topic": "t\x00"}, {"topic": "t", "wait": "31"}])
def test_event_poll_bounds(stack: Stack, params: dict) -> None:
    schema_error(stack.client.get("/events/poll", params=params))


def test_queries_with_nul_or_overflow(stack: Stack) -> None:
    schema_error(stack.client.get("/queues/by_tag", params={"tags": "a\x00b"}), "control character")
    schema_error(stack.client.get("/queues/by_tag", params={"tags": "a", "interval": str(2**63)}), "interval")
    assert stack.client.get("/queues/by_tag", params={"tags": "a", "interval": str(2**63 - 1)}).status_code == 200


def test_long_poll_waits_past_the_redis_socket_timeout(stack: Stack) -> None:
    """On Redis a wait over 5 s used to die on the client's socket timeout (500)."""
    if stack.backend != "postgresql":
        pytest.skip("the in-process bus has no socket; the Redis run covers this")
    began = time.monotonic()
    resp = stack.client.get("/events/poll", params={"topic": "quiet", "wait": 6.5})
    assert resp.status_code == 200 and resp.json()["events"] == []
    assert time.monotonic() - began >= 6.0


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("body, why", [
    ('{"dag": ' + deep(1000) + '}', "nested deeper"),
    ('{"dag": ' + deep(70) + '}', "nested deeper"),
    ('{"dag": ' + "9" * 5000 + '}', "out of range"),
    ('{"dag": 18446744073709551616}', "integer out of range"),
    ('{"dag": 1e309}', "not finite"),
    ('{"dag": NaN}', "NaN is not a JSON number"),
    ('{"dag": -Infinity}', "not a JSON number"),
    ('{"dag": "a\\u0000b"}', "NUL"),
    ('{"a\\u0000": 1}', "NUL"),
])
def test_json_bodies_are_bounded(stack: Stack, body: str, why: str) -> None:
    for path in ("/strategies", "/worlds", "/worlds/w1/evaluate"):
        schema_error(stack.client.post(path, content=body, headers={"content-type": "application/json"}), why)


def test_nul_in_a_submission_field(stack: Stack) -> None:
    stack.make_world("w1")
    dag = chain_dag("nul", 4)
    resp = stack.client.post("/strategies", json={"dag": dag, "world_ids": ["w1"],
                                                  "meta": {"as_of": "2024\x00", "hint": "a\x00"}})
    schema_error(resp, "body.meta.", "NUL")
    resp = stack.client.post("/worlds", json={"id": "w2", "name": "x\x00y"})
    schema_error(resp, "body.name", "NUL")
    assert stack.client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "application/yaml",
                                   "application/octet-stream", ""])
@pytest.mark.parametrize("body, why", [
    ('{"dag": "a\\u0000b", "world_ids": ["w1"]}', "NUL"),
    ('{"dag": ' + deep(70) + '}', "nested deeper"),
    ('{"dag": 18446744073709551616}', "integer out of range"),
])
def test_guard_checks_json_bodies_whatever_their_content_type(stack: Stack, ctype: str, body: str,
                                                              why: str) -> None:
    """Issue 8: a non-JSON Content-Type on ``POST /strategies`` used to skip the guard, and the route
    parsed the body as JSON anyway (NUL bytes, deep nesting and huge integers went through)."""
    for path in ("/strategies", "/worlds", "/worlds/w1/evaluate"):
        schema_error(stack.client.post(path, content=body, headers={"content-type": ctype}), why)


def test_submission_with_another_content_type_still_goes_through(stack: Stack) -> None:
    """The control: a clean JSON body labelled text/plain is a submission like any other."""
    import json

    stack.make_world("w1")
    body = json.dumps({"dag": chain_dag("ctype", 3), "world_ids": ["w1"]})
    resp = stack.client.post("/strategies", content=body, headers={"content-type": "text/plain"})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("method, path, allowed", [("POST", "/health", {"GET"}),
                                                   ("TRACE", "/strategies/x", {"GET"}),
                                                   ("POST", "/worlds/w1/decide", {"GET"}),  # proxied
                                                   ("DELETE", "/worlds/w1/evaluate", {"POST"}),
                                                   ("OPTIONS", "/worlds/w1", {"GET", "PUT", "DELETE"}),
                                                   ("TRACE", "/rebalancing/plan", {"POST"}),
                                                   ("OPTIONS", "/allocations", {"GET"})])
def test_method_not_allowed_names_the_allowed_methods(stack: Stack, method: str, path: str,
                                                      allowed: set[str]) -> None:
    """Found by schemathesis: a 405 carried no ``Allow`` header (RFC 9110 requires it), on the gateway's
    own routes and on the world routes behind its proxy."""
    stack.make_world("w1")
    resp = stack.client.request(method, path)
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "E_METHOD_NOT_ALLOWED", resp.text
    assert {m.strip() for m in resp.headers["allow"].split(",")} == allowed


def test_an_unknown_hint_in_a_submission_is_refused(stack: Stack) -> None:
    """``meta.hint`` is one of the modes; a typo is a 400 naming it, not a silent compute-only."""
    stack.make_world("w1")
    dag = chain_dag("hint", 4)
    resp = stack.client.post("/strategies", json={"dag": dag, "world_ids": ["w1"], "meta": {"hint": "Live"}})
    schema_error(resp, "meta.hint", "'live'")
    resp = stack.client.post("/strategies", json={"dag": dag, "world_ids": ["w1"], "meta": {"hint": "paper"}})
    assert resp.status_code in (200, 201), resp.text
