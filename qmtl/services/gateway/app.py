"""The gateway's FastAPI app, built from explicit dependencies (no globals, no config reading here).

``create_app(db, bus, gsg, world)``: ``db`` is the gateway's ``Database``, ``bus`` the control bus the
world service publishes to, ``gsg`` a ``GraphStore``, ``world`` the world service as an ASGI app
(in-process) or a base URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from qmtl.config import DEFAULT_MAX_BODY_BYTES

from fastapi.openapi.utils import get_openapi

from ..body_limit import BodySizeLimit
from ..openapi import documented_error, errors, finish_schema, merge_schemas
from ..worldservice.app import world_openapi
from ..logs import RequestContext, bind
from ..metrics import CONTENT_TYPE, GatewayMetrics, RequestMetrics
from ..request_guard import INT64_MAX, NOT_CHECKED, RequestGuard, checked_json
from ..bus import Bus
from ..gsg.store import GraphStore
from . import events
from .admission import admit
from .errors import ApiError, describe_validation, install_error_handlers
from .artifact_index import ArtifactIndex
from .models import NODE_ID_PATTERN, ArtifactLookup, ArtifactRegistration, NodeLookup, SubmitRequest
from .submissions import Recorded, SubmissionStore
from .verify import NodeIdMismatch, VerifiedDag, verify_submission
from .views import (ArtifactList, ArtifactsFound, ArtifactsRecorded, GatewayHealth, NodesFound, PollAnswer,
                    QueuesByTag, StoredStrategy, SubmitResponse)
from .world_client import WorldClient, make_world_client

QUEUE_TOPIC = "queues"
log = logging.getLogger(__name__)


def create_app(db: Any, bus: Bus, gsg: GraphStore, world: Any, *,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, metrics: GatewayMetrics | None = None) -> FastAPI:
    store = SubmissionStore(db, gsg)
    index = ArtifactIndex(db, gsg)
    worlds = make_world_client(world)
    metrics = metrics or GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await worlds.aclose()

    # No slash redirects: a 307 would name the world service's internal host through the proxy.
    app = FastAPI(title="qmtl gateway", lifespan=lifespan, redirect_slashes=False)
    app.state.store, app.state.gsg, app.state.bus, app.state.metrics = store, gsg, bus, metrics
    install_error_handlers(app)

    _add_strategy_routes(app, store, worlds, bus, metrics, index)
    _add_query_routes(app, store, gsg, metrics)
    _add_artifact_routes(app, index)
    _add_event_routes(app, bus)
    _add_world_proxy(app, worlds)
    app.openapi = lambda: app.openapi_schema or _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestGuard)
    app.add_middleware(RequestContext)
    app.add_middleware(BodySizeLimit, max_body_bytes=max_body_bytes)
    return app


# POST /strategies reads its body itself (one error shape for every malformed document), so FastAPI
# cannot infer the schema: it is declared here and added to the components in ``_openapi``.
_SUBMIT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SubmitRequest"}}}}}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The gateway's routes and the world routes it proxies, in one document."""
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    submit = SubmitRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(submit.pop("$defs", {}))
    components["SubmitRequest"] = submit
    worlds = world_openapi()
    for item in worlds["paths"].values():  # through the proxy the world service may also not answer
        for op in item.values():
            op["responses"].update({str(code): documented_error(code) for code in (502, 503)})
    app.openapi_schema = merge_schemas(finish_schema(schema), worlds)
    return app.openapi_schema



def parse_submission(body: bytes, checked: Any = NOT_CHECKED) -> SubmitRequest:
    """The request model from the body: from ``checked``, the document ``RequestGuard`` already parsed
    from these bytes (the body is not parsed twice), else straight from the bytes (pydantic-core parses
    and validates in one pass)."""
    try:
        if checked is not NOT_CHECKED:
            return SubmitRequest.model_validate(checked)
        return SubmitRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            problem = str(first.get("msg", "")).removeprefix("Invalid JSON: ")
            raise ApiError(400, "E_SCHEMA", f"request body is not valid JSON: {problem}") from None
        if first.get("type") == "model_type" and not first.get("loc"):
            raise ApiError(400, "E_SCHEMA", "request body must be a JSON object") from None
        raise ApiError(400, "E_SCHEMA", describe_validation(exc)) from None


def _add_strategy_routes(app: FastAPI, store: SubmissionStore, worlds: WorldClient, bus: Bus,
                         metrics: GatewayMetrics, index: ArtifactIndex) -> None:
    @app.post("/strategies", status_code=201, response_model=SubmitResponse, openapi_extra=_SUBMIT_BODY,
              responses={200: {"model": SubmitResponse, "description": "already submitted (same strategy id)"},
                         **errors(404, 502, 503)})
    async def submit(request: Request) -> Response:
        """Verify the DAG (NodeIDs, checksum, structure), diff it against the global graph, record it and
        bind it to each world; the answer carries each world's decision as far as this data may use it."""
        body = await request.body()
        try:
            req = parse_submission(body, checked_json(request.scope, body))
            dag = await run_in_threadpool(verify_submission, req)
        except NodeIdMismatch as exc:
            metrics.nodeid_mismatches.inc(len(exc.mismatches))
            metrics.submissions.labels(result="rejected").inc()
            raise
        except ApiError as exc:
            if exc.code == "E_CHECKSUM_MISMATCH":
                metrics.checksum_mismatches.inc()
            metrics.submissions.labels(result="rejected").inc()
            raise
        world_ids = req.worlds()
        # The world service is asked about every world at once, not one round trip after another.
        await asyncio.gather(*(worlds.require_world(w) for w in world_ids))
        sid = dag.strategy_id
        bind(strategy_id=sid, world_ids=world_ids)
        answers = await asyncio.gather(*(worlds.decision(w, sid, req.meta.hint) for w in world_ids))
        now = time.time()
        decisions = {w: admit(d, req.meta, now) for w, d in zip(world_ids, answers)}
        domains = {w: d["execution_domain"] for w, d in decisions.items()}
        started = time.perf_counter()
        # pydantic-core writes the JSON directly: no intermediate dict for json.dumps to walk again.
        doc_json = req.dag.model_dump_json(by_alias=True)
        recorded = await run_in_threadpool(store.record, dag, doc_json, req.meta.model_dump(), domains)
        metrics.diff_duration.observe(time.perf_counter() - started)
        await asyncio.gather(*(worlds.bind(w, sid) for w in world_ids))
        await run_in_threadpool(_publish_queues, bus, recorded, domains)
        artifacts = await run_in_threadpool(index.lookup, dict(req.meta.node_fingerprints)) \
            if req.meta.node_fingerprints else {}
        metrics.submissions.labels(result="created" if recorded.created else "existing").inc()
        log.info("submission %s", "created" if recorded.created else "existing",
                 extra={"ids": {"domains": domains}})
        # pydantic-core writes the answer (200 nodes, their users, the queue map) several times faster
        # than the json module
        return Response(to_json(_answer(recorded, dag, world_ids, decisions, artifacts)),
                        media_type="application/json",
                        status_code=201 if recorded.created else 200)

    @app.get("/strategies/{strategy_id}", response_model=StoredStrategy, responses=errors(404))
    async def get_strategy(strategy_id: str) -> dict[str, Any]:
        found = await run_in_threadpool(store.get, strategy_id)
        if found is None:
            raise ApiError(404, "E_UNKNOWN_STRATEGY", f"no strategy {strategy_id!r} was submitted")
        return found


def _answer(rec: Recorded, dag: VerifiedDag, world_ids: list[str],
            decisions: dict[str, dict[str, Any]], artifacts: dict[str, str]) -> dict[str, Any]:
    primary = world_ids[0]
    domains = {w: d["execution_domain"] for w, d in decisions.items()}
    nodes = [{**n, "artifact": artifacts[n["node_id"]]} if n["node_id"] in artifacts else n for n in rec.nodes]
    return {"strategy_id": rec.strategy_id, "created": rec.created, "checksum": dag.checksum,
            "world_ids": world_ids, "execution_domains": domains, "decisions": decisions,
            "nodes": nodes,
            "reused": [n["node_id"] for n in rec.nodes if n["status"] == "existing"],
            "new": [n["node_id"] for n in rec.nodes if n["status"] == "new"],
            "queue_map": rec.queues[primary], "queues_by_world": rec.queues}


def _publish_queues(bus: Bus, rec: Recorded, domains: dict[str, str]) -> None:
    new = [n["node_id"] for n in rec.nodes if n["status"] == "new"]
    for world_id, domain in domains.items():
        bus.publish(QUEUE_TOPIC, "QueueUpdated",
                    {"strategy_id": rec.strategy_id, "world_id": world_id, "execution_domain": domain,
                     "queues": rec.queues[world_id], "new": new},
                    idempotency_key=f"queues:{rec.strategy_id}:{world_id}:{domain}")


def _add_query_routes(app: FastAPI, store: SubmissionStore, gsg: GraphStore, metrics: GatewayMetrics) -> None:
    @app.get("/queues/by_tag", response_model=QueuesByTag)
    async def queues_by_tag(tags: Annotated[str, Query(min_length=1)],
                            interval: Annotated[int | None, Query(gt=0, le=INT64_MAX)] = None,
                            match_mode: Annotated[str, Query(pattern="^(any|all)$")] = "any",
                            world_id: str | None = None) -> dict[str, Any]:
        wanted = [t.strip() for t in tags.split(",") if t.strip()]
        if not wanted:
            raise ApiError(400, "E_SCHEMA", "tags: give at least one tag, comma-separated")
        nodes = await run_in_threadpool(gsg.by_tag, wanted, match_mode, interval)
        by_id = {n.node_id: n for n in nodes}
        rows = await run_in_threadpool(store.queues_for, list(by_id), world_id)
        return {"tags": wanted, "match_mode": match_mode, "interval": interval, "world_id": world_id,
                "queues": [{"node_id": r["node_id"], "queue": r["queue"], "world_id": r["world_id"],
                            "execution_domain": r["domain"], "op": by_id[r["node_id"]].op,
                            "interval": by_id[r["node_id"]].interval,
                            "tags": list(by_id[r["node_id"]].tags)} for r in rows]}

    @app.get("/health", response_model=GatewayHealth,
             responses={503: {"model": GatewayHealth, "description": "the database is not usable"}})
    async def health() -> dict[str, Any]:
        try:
            count = await run_in_threadpool(store.count)
        except Exception as exc:  # the probe reports the failure instead of crashing on it
            return JSONResponse({"status": "error", "database": f"{type(exc).__name__}: {exc}"},
                                status_code=503)
        return {"status": "ok", "strategies": count}

    @app.post("/nodes/lookup", response_model=NodesFound)
    async def lookup_nodes(body: NodeLookup) -> dict[str, Any]:
        """Which of these NodeIDs the global strategy graph has, and which strategies use each."""
        return {"found": await run_in_threadpool(gsg.existing, body.node_ids)}

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)


Topic = Annotated[str, Query(pattern=events.TOPIC_PATTERN)]


def _add_event_routes(app: FastAPI, bus: Bus) -> None:
    @app.get("/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "Server-sent events; resume with Last-Event-ID"}})
    async def stream(topic: Topic, after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
                     duration: Annotated[float | None, Query(gt=0, le=86400)] = None,
                     from_latest: Annotated[bool, Query(description=(
                         "Start after the topic's latest event: only events published once the stream "
                         "is open arrive (a client that reads the current state itself, after opening "
                         "the stream, needs no history)"))] = False,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
        if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit() \
                and int(last_event_id) <= INT64_MAX:
            after = max(after, int(last_event_id))
        if from_latest:  # fixed before the first byte is sent: the client's "subscribed" moment
            after = max(after, await run_in_threadpool(bus.last_seq, topic))
        return StreamingResponse(events.sse_stream(bus, topic, after, duration),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/events/poll", response_model=PollAnswer)
    async def poll(topic: Topic, after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
                   wait: Annotated[float, Query(ge=0, le=30)] = 0.0) -> dict[str, Any]:
        return await events.poll(bus, topic, after, wait)


def _add_artifact_routes(app: FastAPI, index: ArtifactIndex) -> None:
    @app.post("/artifacts", status_code=201, response_model=ArtifactsRecorded)
    async def register_artifacts(body: ArtifactRegistration) -> dict[str, Any]:
        """Register stored node values (what a run wrote to the shared artifact store)."""
        recorded = await run_in_threadpool(index.record, [a.model_dump() for a in body.artifacts])
        return {"recorded": recorded}

    @app.get("/artifacts", response_model=ArtifactList)
    async def list_artifacts(node_id: Annotated[str | None, Query(pattern=NODE_ID_PATTERN)] = None,
                             limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
        """Registered artifacts (of one node), each with the bound strategies using its node."""
        return {"artifacts": await run_in_threadpool(index.listing, node_id, limit)}

    @app.post("/artifacts/lookup", response_model=ArtifactsFound)
    async def lookup_artifacts(body: ArtifactLookup) -> dict[str, Any]:
        """Which (NodeID, fingerprint) pairs have a registered artifact, and where."""
        return {"found": await run_in_threadpool(index.lookup, dict(body.nodes))}


def _add_world_proxy(app: FastAPI, worlds: WorldClient) -> None:
    # Every method is forwarded: the world service knows which ones each of its paths accepts, and its
    # 405 names them in ``Allow`` (the proxy's own 405 could only list the proxy's methods).
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

    async def forward(request: Request) -> Response:
        body = await request.body()
        # The path exactly as received (still percent-encoded): decoding it here would let
        # ``/worlds/..%2Fopenapi.json`` walk out of /worlds on the world service.
        raw_path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        resp = await worlds.forward(request.method, raw_path, request.scope["query_string"],
                                    request.scope["headers"], body)
        keep = {k: v for k, v in resp.headers.items()
                if k.lower() in ("content-type", "etag", "cache-control", "allow")}  # a 405's Allow too
        return Response(resp.content, status_code=resp.status_code, headers=keep)

    app.add_api_route("/worlds", forward, methods=methods, include_in_schema=False)
    app.add_api_route("/worlds/{path:path}", forward, methods=methods, include_in_schema=False)
    app.add_api_route("/allocations", forward, methods=methods, include_in_schema=False)
    app.add_api_route("/rebalancing/{path:path}", forward, methods=methods, include_in_schema=False)
