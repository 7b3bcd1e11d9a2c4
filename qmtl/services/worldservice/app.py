"""The world service's HTTP surface: ``create_app(db, bus, activation_cache=None) -> FastAPI``.

Every failure is a 4xx/5xx JSON body ``{"error": {"code": "E_...", "message": "..."}}``: validation
errors are ``E_SCHEMA`` (400 for malformed JSON, 422 for a well-formed body of the wrong shape, naming
the field), bad policies ``E_POLICY`` (400), unknown worlds ``E_UNKNOWN_WORLD`` (404), bodies over
``max_body_bytes`` ``E_PAYLOAD_TOO_LARGE`` (413, the gateway's code for the same thing).  The acting
user is taken from the ``X-Actor`` header for the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from qmtl.services.body_limit import BodySizeLimit
from qmtl.services.request_guard import INT64_MAX, RequestGuard
from qmtl.services.bus import Bus
from qmtl.services.errors import error_body
from qmtl.services.storage.sql import Database

from .activation_cache import ActivationCache
from .envelopes import DecisionEnvelope
from .errors import ApiError
from .policy import PolicyError, parse_policy
from .schemas import (ActivationUpdate, AllocationsUpdate, ApplyRequest, BindingCreate, EvaluateRequest,
                      WorldCreate, WorldUpdate)
from .service import WorldService
from .store import WorldStore

_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type", "missing"}
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a world-service request carrying more is a mistake or an attack


def create_app(db: Database, bus: Bus, activation_cache: ActivationCache | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """Build the app; creates the tables on ``db`` if missing (state survives restarts on the same db)."""
    service = WorldService(WorldStore(db), bus, activation_cache)
    app = FastAPI(title="qmtl world service", redirect_slashes=False)
    app.state.world_service = service
    app.add_middleware(RequestGuard)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    _install_error_handlers(app)
    _install_routes(app, service)
    return app


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, message))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(PolicyError)
    async def _policy_error(_: Request, exc: PolicyError) -> JSONResponse:
        return _error(400, "E_POLICY", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "E_SCHEMA", "request body is not valid JSON")
        if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") in _NOT_AN_OBJECT for e in errors):
            return _error(400, "E_SCHEMA", "request body must be a JSON object")
        parts = []
        for err in errors[:10]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {err.get('msg')}")
        return _error(422, "E_SCHEMA", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "E_NOT_FOUND", 405: "E_METHOD_NOT_ALLOWED"}.get(exc.status_code, "E_HTTP")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "E_INTERNAL", f"internal error: {exc.__class__.__name__}")


def _install_routes(app: FastAPI, ws: WorldService) -> None:
    actor_header = Header(default="anonymous", alias="X-Actor", max_length=128)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/worlds", status_code=201)
    def create_world(body: WorldCreate, actor: str = actor_header) -> dict[str, Any]:
        return ws.create_world(body, actor)

    @app.get("/worlds")
    def list_worlds() -> dict[str, Any]:
        return {"worlds": ws.list_worlds()}

    @app.get("/worlds/{world_id}")
    def get_world(world_id: str) -> dict[str, Any]:
        return ws.world(world_id)

    @app.put("/worlds/{world_id}")
    def update_world(world_id: str, body: WorldUpdate, actor: str = actor_header) -> dict[str, Any]:
        return ws.update_world(world_id, body, actor)

    @app.delete("/worlds/{world_id}", status_code=204)
    def delete_world(world_id: str, actor: str = actor_header) -> Response:
        ws.delete_world(world_id, actor)
        return Response(status_code=204)

    @app.get("/worlds/{world_id}/policy")
    def get_policy(world_id: str) -> dict[str, Any]:
        return ws.policy(world_id)

    @app.put("/worlds/{world_id}/policy")
    async def put_policy(world_id: str, request: Request, actor: str = actor_header) -> dict[str, Any]:
        # Raw body: YAML or JSON by Content-Type, so a quant can PUT the policy file as written.
        ctype = request.headers.get("content-type", "application/json")
        policy = parse_policy(await request.body(), ctype)
        return ws.set_policy(world_id, policy, actor)

    @app.post("/worlds/{world_id}/evaluate")
    def evaluate(world_id: str, body: EvaluateRequest, actor: str = actor_header) -> dict[str, Any]:
        return ws.evaluate(world_id, body, actor)

    @app.get("/worlds/{world_id}/decide")
    def decide(world_id: str, strategy_id: str = Query(min_length=1, max_length=256),
               hint: str | None = Query(default=None, max_length=32)) -> DecisionEnvelope:
        return ws.decide(world_id, strategy_id, hint)

    @app.get("/worlds/{world_id}/activation")
    def get_activation(world_id: str, strategy_id: str | None = Query(default=None, max_length=256),
                       side: str | None = Query(default=None, pattern=r"^(long|short)$")) -> dict[str, Any]:
        return ws.activation(world_id, strategy_id, side)

    @app.put("/worlds/{world_id}/activation")
    def put_activation(world_id: str, body: ActivationUpdate, actor: str = actor_header) -> dict[str, Any]:
        return ws.update_activation(world_id, body, actor)

    @app.post("/worlds/{world_id}/apply")
    def apply(world_id: str, body: ApplyRequest, actor: str = actor_header) -> dict[str, Any]:
        return ws.apply(world_id, body, actor)

    @app.get("/worlds/{world_id}/apply/{run_id}")
    def get_apply(world_id: str, run_id: str) -> dict[str, Any]:
        return ws.apply_run(world_id, run_id)

    @app.post("/worlds/{world_id}/bindings")
    def bind(world_id: str, body: BindingCreate, actor: str = actor_header) -> JSONResponse:
        binding, created = ws.bind(world_id, body.strategy_id, actor)
        return JSONResponse(status_code=201 if created else 200, content=binding)

    @app.get("/worlds/{world_id}/bindings")
    def bindings(world_id: str) -> dict[str, Any]:
        return {"world_id": world_id, "bindings": ws.bindings(world_id)}

    @app.get("/worlds/{world_id}/audit")
    def audit(world_id: str, after_seq: int = Query(default=0, ge=0, le=INT64_MAX),
              limit: int = Query(default=1000, ge=1, le=10_000)) -> dict[str, Any]:
        return {"world_id": world_id, "entries": ws.audit_log(world_id, after_seq, limit)}

    @app.get("/worlds/{world_id}/allocations")
    def get_allocations(world_id: str) -> dict[str, Any]:
        return ws.allocations(world_id)

    @app.put("/worlds/{world_id}/allocations")
    def put_allocations(world_id: str, body: AllocationsUpdate, actor: str = actor_header) -> dict[str, Any]:
        return ws.set_allocations(world_id, body, actor)
