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
    ("thresholds: {sharpe: {min: .nan}}", "application/yaml", "E_SCHEMA", "finite"),
    ("thresholds: {sharpe: {max: .inf}}", "application/yaml", "E_SCHEMA", "finite"),
    ("thresholds: {sharpe: {max: " + "9" * 5000 + "}}", "application/yaml", "E_SCHEMA", "out of range"),
    ("[" * 5000 + "]" * 5000, "application/yaml", "E_SCHEMA", "nested"),
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


def _nested_yaml(levels: int) -> str:
    """Block-style YAML (not JSON, so the request guard cannot parse it) nested ``levels`` deep."""
    return "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v: 1\n"


@pytest.mark.parametrize("text, why", [
    ('name: "a\\0b"\nthresholds: {}', "NUL"),
    ("thresholds:\n  sharpe:\n    min: " + str(2**64), "integer out of range"),
    ("thresholds:\n  sharpe:\n    min: -.inf", "not finite"),
    (_nested_yaml(70), "nested deeper"),
    ("thresholds: {\"s\\0\": {min: 1}}", "NUL"),
])
def test_yaml_policy_bodies_get_the_json_body_checks(client: httpx.Client, text: str, why: str) -> None:
    """Issue 8: the guard's document rules apply to YAML policies too (400 E_SCHEMA, naming the place)."""
    make_world(client)
    r = client.put("/worlds/w1/policy", content=text.encode(), headers={"content-type": "application/yaml"})
    assert_error(r, 400, "E_SCHEMA", why)
    assert "policy" in r.json()["error"]["message"]
    assert client.get("/worlds/w1/policy").json()["max_mode"] == "paper"  # unchanged


def test_yaml_alias_bomb_and_cycle_are_answered_quickly(client: httpx.Client) -> None:
    """Anchors sharing one list a billion times over (or a mapping holding itself) are walked once."""
    make_world(client)
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\n"
    for text in (bomb, "thresholds: &t {sharpe: *t}\n"):
        r = client.put("/worlds/w1/policy", content=text.encode(), headers={"content-type": "application/yaml"},
                       timeout=20)
        assert_error(r, 400, "E_POLICY", "Extra inputs are not permitted")


@pytest.mark.parametrize("path", ["/worlds/w1%2Fpolicy", "/worlds/w1%2fpolicy", "/worlds/a%2Fb",
                                  "/worlds/w1/decide%2F?strategy_id=s"])
def test_encoded_slash_is_refused(client: httpx.Client, path: str) -> None:
    """Issue 8: ``/worlds/w1%2Fpolicy`` was routed as ``/worlds/w1/policy``; refused on the raw path."""
    make_world(client)
    assert_error(client.get(path), 400, "E_SCHEMA", "encoded slash")


@pytest.mark.parametrize("method, path, kwargs", [
    ("POST", "/worlds", {"json": {"id": "x", "allow_live": "maybe"}}),
    ("POST", "/worlds", {"json": ["not", "an", "object"]}),
    ("POST", "/worlds", {"content": b'{"id": ', "headers": {"content-type": "application/json"}}),
    ("GET", "/worlds/w1/decide", {}),
    ("GET", "/worlds/w1/audit", {"params": {"limit": "0"}}),
])
def test_validation_errors_are_400_with_the_gateways_body(client: httpx.Client, ws_backend, tmp_path,
                                                          method: str, path: str, kwargs: dict) -> None:
    """Issue 8: the world service answered validation errors 422 and the gateway 400; now both answer
    400 E_SCHEMA with the same body, whether the world route is reached directly or through the gateway."""
    from qmtl.services.app import ServerThread
    from qmtl.services.gateway.app import create_app as create_gateway
    from qmtl.services.gsg import SqlGraphStore
    from qmtl.services.storage.sql import Database

    make_world(client)
    direct = client.request(method, path, **kwargs)
    assert direct.status_code == 400 and direct.json()["error"]["code"] == "E_SCHEMA", direct.text
    gw_db = Database.connect(f"sqlite:///{tmp_path / 'gw.db'}")
    try:  # the gateway in front of this world service, by URL, as in a split deployment
        gateway = create_gateway(gw_db, ws_backend.bus, SqlGraphStore(gw_db), ws_backend.running[-1].url)
        with ServerThread(gateway) as url:
            proxied = httpx.request(method, url + path, timeout=30, **kwargs)
    finally:
        gw_db.close()
    assert (proxied.status_code, proxied.json()) == (direct.status_code, direct.json())


def test_method_not_allowed_names_the_allowed_methods(client: httpx.Client) -> None:
    """Found by schemathesis: the world service's 405 carried no ``Allow`` header (RFC 9110)."""
    make_world(client)
    r = client.request("TRACE", "/worlds/w1/policy")
    assert_error(r, 405, "E_METHOD_NOT_ALLOWED")
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "PUT"}


def test_audit_of_a_world_that_never_was_is_404_at_any_after_seq(client: httpx.Client) -> None:
    """Found by schemathesis: ``GET /worlds/nope/audit?after_seq=5`` answered 200 with no entries, while
    ``after_seq=0`` said 404.  A deleted world's log stays readable (the audit outlives the world)."""
    for after in ("0", "5", str(2**62)):
        assert_error(client.get("/worlds/nope/audit", params={"after_seq": after}), 404, "E_UNKNOWN_WORLD")
    make_world(client, "gone")
    assert client.delete("/worlds/gone").status_code == 204
    entries = client.get("/worlds/gone/audit").json()["entries"]
    assert [e["action"] for e in entries] == ["world.create", "world.delete"]
    assert client.get("/worlds/gone/audit", params={"after_seq": 5}).json()["entries"] == []


@pytest.mark.parametrize("method, path, body, field", [
    ("POST", "/worlds/w1/bindings", {"strategy_id": "s\n"}, "strategy_id"),
    ("POST", "/worlds/w1/evaluate", {"strategies": [{"strategy_id": "s\t", "metrics": {}}]}, "strategy_id"),
    ("PUT", "/worlds/w1/activation", {"strategy_id": "s\x1b", "active": False}, "strategy_id"),
    ("PUT", "/worlds/w1/allocations", {"allocations": {"s\r": 0.0}}, "allocations"),
    ("POST", "/worlds/w1/apply", {"run_id": "r\n1", "etag": "x"}, "run_id"),
    ("POST", "/worlds/w1/apply", {"run_id": "a/b", "etag": "x"}, "run_id"),
    ("POST", "/worlds/w1/apply", {"run_id": "..", "etag": "x"}, "run_id"),
    ("POST", "/worlds/w1/apply", {"run_id": "r", "etag": "x", "plan": {"activate": ["s\x7f"]}}, "activate"),
])
def test_ids_that_could_never_be_read_back_are_refused(client: httpx.Client, method: str, path: str,
                                                        body: dict, field: str) -> None:
    """Strategy ids are read back through ``?strategy_id=`` and run ids through ``/apply/{run_id}``, where
    control characters, '/', '.' and '..' are refused: writing such an id must be refused too, naming it,
    and leave nothing behind (it was accepted, then out of reach of every reader)."""
    make_world(client)
    assert_error(client.request(method, path, json=body), 400, "E_SCHEMA", field)
    assert client.get("/worlds/w1/bindings").json()["bindings"] == []
    assert [e["action"] for e in client.get("/worlds/w1/audit").json()["entries"]] == ["world.create"]


def test_an_unknown_hint_is_refused_not_read_as_compute_only(client: httpx.Client) -> None:
    """A typo in ``hint`` ('Paper', 'shadow') used to turn any decision into compute-only with a reason
    blaming the hint; it is bad input, and the answer says which field and what it may be."""
    make_world(client)
    for hint in ("Paper", "shadow", ""):
        assert_error(client.get("/worlds/w1/decide", params={"strategy_id": "s", "hint": hint}),
                     400, "E_SCHEMA", "hint", "'paper'")
    ok = client.get("/worlds/w1/decide", params={"strategy_id": "s", "hint": "paper"})
    assert ok.status_code == 200 and ok.json()["effective_mode"] == "compute-only"  # no decision yet
