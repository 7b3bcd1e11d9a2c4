"""Issue 8 section 3 on the world service itself (no gateway in front): strict types, finite policies,
bounded integers, no slash redirects, and never a 5xx — on SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import httpx
import pytest

from tests.services.worldservice.test_ws_http import assert_error, make_world


@pytest.mark.parametrize("body, field", [
    ({"id": "x", "allow_live": "yes"}, "allow_live"),
    ({"id": "x", "allow_live": 1}, "allow_live"),
    ({"id": "x", "decision_ttl": "60"}, "decision_ttl"),
    ({"id": "x", "decision_ttl": 2**63}, "integer out of range"),
])
def test_no_coercion_on_world_fields(client: httpx.Client, body: dict, field: str) -> None:
    r = client.post("/worlds", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "E_SCHEMA", r.text
    assert field in r.json()["error"]["message"]


def test_no_coercion_on_activation(client: httpx.Client) -> None:
    make_world(client)
    for active in (0, "true", "yes"):
        assert_error(client.put("/worlds/w1/activation", json={"strategy_id": "s", "active": active}),
                     400, "E_SCHEMA", "active")
    assert_error(client.put("/worlds/w1/activation", json={"freeze": "no"}), 400, "E_SCHEMA", "freeze")


@pytest.mark.parametrize("text, ctype, code, why", [
    ("thresholds: {sharpe: {min: .nan}}", "application/yaml", "E_POLICY", "finite"),
    ("thresholds: {sharpe: {max: .inf}}", "application/yaml", "E_POLICY", "finite"),
    ("thresholds: {sharpe: {max: " + "9" * 5000 + "}}", "application/yaml", "E_POLICY", "out of range"),
    ("[" * 5000 + "]" * 5000, "application/yaml", "E_POLICY", "nested"),
    ('{"thresholds": {"sharpe": {"min": NaN}}}', "application/json", "E_SCHEMA", "NaN"),
    ('{"thresholds": {"sharpe": {"min": 1e309}}}', "application/json", "E_SCHEMA", "not finite"),
    ('{"top_k": {"metric": "sharpe", "k": "3"}}', "application/json", "E_POLICY", "top_k.k"),
])
def test_policies_are_finite_and_strict(client: httpx.Client, text: str, ctype: str, code: str, why: str) -> None:
    make_world(client)
    r = client.put("/worlds/w1/policy", content=text.encode(), headers={"content-type": ctype})
    assert_error(r, 400, code, why)
    assert client.get("/worlds/w1/policy").json()["max_mode"] == "paper"  # unchanged


def test_integers_and_paths_stay_in_range(client: httpx.Client) -> None:
    make_world(client)
    assert_error(client.get("/worlds/w1/audit", params={"after_seq": str(2**63)}), 400, "E_SCHEMA", "after_seq")
    assert client.get("/worlds/w1/audit", params={"after_seq": str(2**63 - 1)}).json()["entries"] == []
    assert_error(client.get("/worlds/w1/decide", params={"strategy_id": "s\x00"}), 400, "E_SCHEMA", "control")
    assert_error(client.get("/worlds/%00"), 400, "E_SCHEMA", "control")
    r = client.get("/worlds/")
    assert r.status_code == 404 and "location" not in r.headers
    r = client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "s\x00"}]})
    assert_error(r, 400, "E_SCHEMA", "NUL")
    r = client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "s", "metrics": {"x": 2**64}}]})
    assert_error(r, 400, "E_SCHEMA", "integer out of range")
    assert client.get("/health").json() == {"status": "ok"}
