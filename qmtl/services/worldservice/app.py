"""The world service's HTTP surface: ``create_app(db, bus, activation_cache=None) -> FastAPI``.

Every failure is a 4xx/5xx JSON body ``{"error": {"code": "E_...", "message": "..."}}``: validation
errors are 400 ``E_SCHEMA`` (malformed JSON, or a well-formed body of the wrong shape, naming the
field: the gateway's status and wording, ``qmtl.services.errors.validation_message``), bad policies
``E_POLICY`` (400), unknown worlds ``E_UNKNOWN_WORLD`` (404), bodies over ``max_body_bytes``
``E_PAYLOAD_TOO_LARGE`` (413, the gateway's code for the same thing).  The acting user is taken from the
``X-Actor`` header for the audit log.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from qmtl.services.body_limit import BodySizeLimit
from qmtl.services import logs
from qmtl.services.logs import RequestContext
from qmtl.services.metrics import CONTENT_TYPE, RequestMetrics, WorldServiceMetrics
from qmtl.services.request_guard import INT64_MAX, InputError, RequestGuard
from qmtl.services.bus import Bus
from qmtl.services.errors import error_body, validation_message
from qmtl.services.http_errors import http_exception_handler
from qmtl.services.storage.sql import Database

from .activation_cache import ActivationCache
from qmtl.services.openapi import errors, finish_schema

from .envelopes import ActivationEnvelope, DecisionEnvelope, Mode
from .errors import ApiError
from .policy import Policy, PolicyError, parse_policy
from .rebalancing import Rebalancer
from .schemas import (ActivationUpdate, AllocationsUpdate, ApplyRequest, BindingCreate, EvaluateRequest,
                      RebalanceApplyRequest, RebalancePlanRequest, WorldCreate, WorldUpdate)
from .service import WorldService
from .store import WorldStore
from .views import (AllocationsOverview, AllocationsView, ApplyRunView, AuditLog, BindingList, BindingView,
                    EvaluationView, Health, RebalancePlan, RebalanceResult, WorldActivation, WorldList,
                    WorldView)

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a world-service request carrying more is a mistake or an attack


def create_app(db: Database, bus: Bus, activation_cache: ActivationCache | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """Build the app; creates the tables on ``db`` if missing (state survives restarts on the same db)."""
    metrics = WorldServiceMetrics()
    service = WorldService(WorldStore(db), bus, activation_cache,
                           on_phase=lambda _world, _run, phase: metrics.applies.labels(phase=phase).inc())
    app = FastAPI(title="qmtl world service", redirect_slashes=False)
    app.state.world_service = service
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestGuard)
    app.add_middleware(RequestContext)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    _install_error_handlers(app)
    app.include_router(router)
    app.openapi = lambda: app.openapi_schema or _cache(app, world_openapi())  # type: ignore[method-assign]
    return app


def _cache(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    app.openapi_schema = schema
    return schema


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, message))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(InputError)
    async def _input_error(_: Request, exc: InputError) -> JSONResponse:
        return _error(400, "E_SCHEMA", str(exc))

    @app.exception_handler(PolicyError)
    async def _policy_error(_: Request, exc: PolicyError) -> JSONResponse:
        return _error(400, "E_POLICY", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "E_SCHEMA", validation_message(exc.errors()))

    # The world routes as ``router`` holds them (the app keeps the included router as one nested entry).
    app.add_exception_handler(StarletteHTTPException,  # type: ignore[arg-type]
                              http_exception_handler(lambda: [*app.router.routes, *router.routes]))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "E_INTERNAL", f"internal error: {exc.__class__.__name__}")


def _service(request: Request) -> WorldService:
    return request.app.state.world_service


def _rebalancer(request: Request) -> Rebalancer:
    return Rebalancer(request.app.state.world_service)


WS = Annotated[WorldService, Depends(_service)]
Rebalancing = Annotated[Rebalancer, Depends(_rebalancer)]
Actor = Annotated[str, Header(alias="X-Actor", max_length=128,
                              description="Who acts, for the audit log")]
async def _bind_ids(request: Request) -> None:
    """The world (and strategy) a request is about, on its log lines."""
    logs.bind(world_id=request.path_params.get("world_id"),
              strategy_id=request.query_params.get("strategy_id"))


router = APIRouter(dependencies=[Depends(_bind_ids)])


def world_openapi() -> dict[str, Any]:
    """The world service's OpenAPI without a running service (the gateway serves these routes too)."""
    app = FastAPI(title="qmtl world service")
    app.include_router(router)
    return finish_schema(app.openapi())


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def prometheus(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.post("/worlds", status_code=201, response_model=WorldView, responses=errors(409))
def create_world(body: WorldCreate, ws: WS, actor: Actor = "anonymous") -> dict[str, Any]:
    return ws.create_world(body, actor)


@router.get("/worlds", response_model=WorldList)
def list_worlds(ws: WS) -> dict[str, Any]:
    return {"worlds": ws.list_worlds()}


@router.get("/worlds/{world_id}", response_model=WorldView, responses=errors(404))
def get_world(world_id: str, ws: WS) -> dict[str, Any]:
    return ws.world(world_id)


@router.put("/worlds/{world_id}", response_model=WorldView, responses=errors(404))
def update_world(world_id: str, body: WorldUpdate, ws: WS, actor: Actor = "anonymous") -> dict[str, Any]:
    """Partial update; a change of ``policy`` or ``allow_live`` voids the world's decisions at once."""
    return ws.update_world(world_id, body, actor)


@router.delete("/worlds/{world_id}", status_code=204, response_class=Response, responses=errors(404))
def delete_world(world_id: str, ws: WS, actor: Actor = "anonymous") -> Response:
    ws.delete_world(world_id, actor)
    return Response(status_code=204)


@router.get("/worlds/{world_id}/policy", response_model=Policy, response_model_exclude_none=True,
            responses=errors(404))
def get_policy(world_id: str, ws: WS) -> dict[str, Any]:
    return ws.policy(world_id)


_POLICY_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/Policy"}},
    "application/yaml": {"schema": {"$ref": "#/components/schemas/Policy"}}}}}


@router.put("/worlds/{world_id}/policy", response_model=Policy, response_model_exclude_none=True,
            responses=errors(404), openapi_extra=_POLICY_BODY)
async def put_policy(world_id: str, request: Request, ws: WS, actor: Actor = "anonymous") -> dict[str, Any]:
    """Replace the policy (JSON, or YAML by Content-Type; ``{"preset": name}`` selects a preset).
    Bad policies are 400 ``E_POLICY``; a change voids the world's decisions at once."""
    # Raw body: YAML or JSON by Content-Type, so a quant can PUT the policy file as written.
    ctype = request.headers.get("content-type", "application/json")
    policy = parse_policy(await request.body(), ctype)
    return await run_in_threadpool(ws.set_policy, world_id, policy, actor)


@router.post("/worlds/{world_id}/evaluate", response_model=EvaluationView, responses=errors(404))
def evaluate(world_id: str, body: EvaluateRequest, ws: WS, request: Request,
             actor: Actor = "anonymous") -> dict[str, Any]:
    """Record these strategies' metrics, then evaluate every strategy of the world on its latest ones."""
    result = ws.evaluate(world_id, body, actor)
    request.app.state.metrics.evaluations.inc()
    log.info("evaluation %s: active %s", result["evaluation_seq"], result["active"])
    return result


@router.get("/worlds/{world_id}/decide", response_model=DecisionEnvelope, responses=errors(404))
def decide(world_id: str, ws: WS, strategy_id: str = Query(min_length=1, max_length=256),
           hint: Mode | None = Query(default=None, description="a mode to lower the decision to; "
                                     "an unknown one is refused rather than read as compute-only")
           ) -> DecisionEnvelope:
    return ws.decide(world_id, strategy_id, hint)


@router.get("/worlds/{world_id}/activation", response_model=ActivationEnvelope | WorldActivation,
            responses=errors(404))
def get_activation(world_id: str, ws: WS, strategy_id: str | None = Query(default=None, max_length=256),
                   side: str | None = Query(default=None, pattern=r"^(long|short)$")) -> dict[str, Any]:
    """One strategy's envelope with ``strategy_id``, else the world's (with every strategy's)."""
    return ws.activation(world_id, strategy_id, side)


@router.put("/worlds/{world_id}/activation", response_model=ActivationEnvelope | WorldActivation,
            responses=errors(404, 409))
def put_activation(world_id: str, body: ActivationUpdate, ws: WS, actor: Actor = "anonymous") -> dict[str, Any]:
    """Only strategies whose decision is paper or live may be made active (409 E_ACTIVATION_DENIED)."""
    return ws.update_activation(world_id, body, actor)


@router.post("/worlds/{world_id}/apply", response_model=ApplyRunView, responses=errors(404, 409))
def apply(world_id: str, body: ApplyRequest, ws: WS, actor: Actor = "anonymous") -> dict[str, Any]:
    """freeze/drain -> switch -> unfreeze against ``etag``; a retry with the same run_id completes it."""
    return ws.apply(world_id, body, actor)


@router.get("/worlds/{world_id}/apply/{run_id}", response_model=ApplyRunView, responses=errors(404))
def get_apply(world_id: str, run_id: str, ws: WS) -> dict[str, Any]:
    return ws.apply_run(world_id, run_id)


@router.post("/worlds/{world_id}/bindings", status_code=201, response_model=BindingView,
             responses={200: {"model": BindingView, "description": "already bound (nothing changed)"},
                        **errors(404)})
def bind(world_id: str, body: BindingCreate, ws: WS, actor: Actor = "anonymous") -> JSONResponse:
    binding, created = ws.bind(world_id, body.strategy_id, actor)
    return JSONResponse(status_code=201 if created else 200, content=binding)


@router.get("/worlds/{world_id}/bindings", response_model=BindingList, responses=errors(404))
def bindings(world_id: str, ws: WS) -> dict[str, Any]:
    return {"world_id": world_id, "bindings": ws.bindings(world_id)}


@router.get("/worlds/{world_id}/audit", response_model=AuditLog, responses=errors(404))
def audit(world_id: str, ws: WS, after_seq: int = Query(default=0, ge=0, le=INT64_MAX),
          limit: int = Query(default=1000, ge=1, le=10_000)) -> dict[str, Any]:
    return {"world_id": world_id, "entries": ws.audit_log(world_id, after_seq, limit)}


@router.get("/worlds/{world_id}/allocations", response_model=AllocationsView, responses=errors(404))
def get_allocations(world_id: str, ws: WS) -> dict[str, Any]:
    return ws.allocations(world_id)


@router.put("/worlds/{world_id}/allocations", response_model=AllocationsView, responses=errors(404))
def put_allocations(world_id: str, body: AllocationsUpdate, ws: WS, actor: Actor = "anonymous") -> dict[str, Any]:
    return ws.set_allocations(world_id, body, actor)


@router.get("/allocations", response_model=AllocationsOverview)
def all_allocations(rb: Rebalancing) -> dict[str, Any]:
    """Allocations per world and across worlds."""
    return rb.overview()


@router.post("/rebalancing/plan", response_model=RebalancePlan, responses=errors(404))
def rebalance_plan(body: RebalancePlanRequest, rb: Rebalancing) -> dict[str, Any]:
    """What each world's latest evaluation asks for against what is allocated now (changes nothing)."""
    return rb.plan(body)


@router.post("/rebalancing/apply", response_model=RebalanceResult, responses=errors(404, 409))
def rebalance_apply(body: RebalanceApplyRequest, rb: Rebalancing, actor: Actor = "anonymous") -> dict[str, Any]:
    """Set the planned allocations (all worlds or none), against each world's etag; audited;
    idempotent by ``run_id``."""
    return rb.apply(body, actor)
