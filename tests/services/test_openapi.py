"""Issue 8 section 3: the served OpenAPI is the whole API (every route, body schemas, error statuses)."""

from __future__ import annotations

from fastapi.routing import APIRoute

from qmtl.services.bus import InProcessBus
from qmtl.services.gateway.app import create_app as create_gateway
from qmtl.services.gsg import SqlGraphStore
from qmtl.services.storage.sql import Database
from qmtl.services.worldservice.app import create_app as create_world


def _apps(tmp_path):
    world_db = Database.connect(f"sqlite:///{tmp_path / 'w.db'}")
    gw_db = Database.connect(f"sqlite:///{tmp_path / 'g.db'}")
    world = create_world(world_db, InProcessBus())
    gateway = create_gateway(gw_db, InProcessBus(), SqlGraphStore(gw_db), world)
    return gateway, world, (world_db, gw_db)


def _operations(schema: dict) -> dict[tuple[str, str], dict]:
    return {(m.upper(), p): op for p, item in schema["paths"].items() for m, op in item.items()}


def test_every_route_is_documented_with_bodies_and_errors(tmp_path) -> None:
    gateway, world, dbs = _apps(tmp_path)
    try:
        world_ops = _operations(world.openapi())
        gateway_ops = _operations(gateway.openapi())
        from qmtl.services.worldservice.app import router
        world_routes = {(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
        own_routes = {(m, r.path) for r in gateway.routes if isinstance(r, APIRoute) and r.include_in_schema
                      for m in r.methods}
        assert len(world_routes) == 23 and world_routes == set(world_ops)
        assert own_routes | world_routes == set(gateway_ops)  # the proxied world routes too
        # where both have a route (/health, /metrics) the gateway's answers and is documented
        assert "strategies" in str(gateway_ops[("GET", "/health")]["responses"]["200"]) or \
            "GatewayHealth" in str(gateway_ops[("GET", "/health")]["responses"]["200"])
        for (method, path), op in [*gateway_ops.items(), *world_ops.items()]:
            responses = op["responses"]
            assert "422" not in responses, (method, path)  # validation errors are 400 on both services
            assert "400" in responses, (method, path)
            assert not any("HTTPValidationError" in str(r) for r in responses.values()), (method, path)
            if method in ("POST", "PUT"):
                assert "requestBody" in op and "413" in responses, (method, path)
                content = op["requestBody"]["content"]
                assert content["application/json"]["schema"], (method, path)
            if "{world_id}" in path:
                assert "404" in responses, (method, path)
        assert "409" in gateway_ops[("POST", "/worlds/{world_id}/apply")]["responses"]
        assert "409" in gateway_ops[("PUT", "/worlds/{world_id}/activation")]["responses"]
        body = gateway_ops[("POST", "/strategies")]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/SubmitRequest"}
        components = gateway.openapi()["components"]["schemas"]
        assert {"SubmitRequest", "DagDocument", "ErrorBody", "WorldCreate", "DecisionEnvelope"} <= set(components)
        assert "application/yaml" in world_ops[("PUT", "/worlds/{world_id}/policy")]["requestBody"]["content"]
    finally:
        for db in dbs:
            db.close()
