"""The gateway's one way to reach the world service: in-process (ASGI app) or over HTTP (URL).

Used both for the gateway's own questions (does this world exist, which execution domain does its
decision give, bind a strategy) and to proxy ``/worlds…`` so SDK clients need a single URL.

Two implementations of one interface (``make_world_client`` picks): ``WorldClient`` asks over HTTP
(a URL, or any ASGI app through an in-process transport); ``EmbeddedWorldClient``, for the world
service built in this process, asks its ``WorldService`` directly — the same questions with the same
answers, without an HTTP round trip through a second middleware stack for each (about a sixth of
the gateway's per-submission work went there).  Both proxy ``/worlds…`` over HTTP, so what a client sees
of the world service is always its HTTP answer.  The caching and default-safe rules live once, in
``WorldClient``; the implementations differ only in how one question is asked (``_world_status``,
``_decide``, ``_bind``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool

from ..logs import context
from ..worldservice.errors import ApiError as WorldError
from ..worldservice.service import WorldService
from .errors import ApiError

log = logging.getLogger(__name__)

# Domains a strategy may run in; anything else (shadow, unknown, missing) is treated as backtest,
# the default-safe choice (blueprint 1.3: the Runner never executes in shadow).
_RUNNABLE_DOMAINS = ("backtest", "dryrun", "live")
_HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade",
               "proxy-connection", "te", "trailer", "accept-encoding"}


# How long "this world exists" is believed without asking again.  Only existence is cached, never a
# decision: a world deleted behind the gateway's back within this window still yields a default-safe
# answer (its decision call fails, so compute-only backtest) rather than a wrong promotion.
WORLD_EXISTS_TTL_S = 2.0


class WorldClient:
    def __init__(self, world: Any, timeout: float = 10.0,
                 exists_ttl: float = WORLD_EXISTS_TTL_S) -> None:
        self._world = world
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._exists_ttl = exists_ttl
        self._seen: dict[str, float] = {}  # world id -> monotonic time the service said it exists

    def _http(self) -> httpx.AsyncClient:
        # Created on first use, inside the server's event loop, which owns its connection pool.
        if self._client is None:
            if isinstance(self._world, str):
                self._client = httpx.AsyncClient(base_url=self._world.rstrip("/"), timeout=self._timeout)
            else:
                self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self._world),
                                                 base_url="http://worldservice", timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(503, "E_WORLD_UNAVAILABLE",
                           f"the world service did not answer {method} {path}: {exc}") from None

    async def require_world(self, world_id: str) -> None:
        seen = self._seen.get(world_id)
        if seen is not None and time.monotonic() - seen < self._exists_ttl:
            return
        status = await self._world_status(world_id)
        if status == 404:
            self._seen.pop(world_id, None)
            raise ApiError(404, "E_UNKNOWN_WORLD", f"world_ids: unknown world {world_id!r}")
        if status >= 400:
            raise ApiError(502, "E_WORLD_UNAVAILABLE",
                           f"the world service answered {status} for world {world_id!r}")
        self._seen[world_id] = time.monotonic()

    def forget(self, path: str) -> None:
        """A change to ``/worlds/{id}…`` passed through the proxy: ask about that world again."""
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "worlds":
            self._seen.pop(parts[2], None)

    async def decision(self, world_id: str, strategy_id: str, hint: str | None) -> dict[str, Any]:
        """The world's decision for the submission: mode, domain, gate and the reason.

        Anything but a usable answer (an error, a shadow or unknown domain) resolves to backtest with
        orders gated, the default-safe choice, and the reason says why.
        """
        body = await self._decide(world_id, strategy_id, hint)
        domain = body.get("execution_domain") if isinstance(body, dict) else None
        if domain not in _RUNNABLE_DOMAINS:
            why = "no usable decision from the world service" if body is None else \
                f"execution domain {domain!r} is not runnable"
            return {"effective_mode": "compute-only", "execution_domain": "backtest",
                    "orders_gated": True, "reason": f"{why}: default-safe compute-only"}
        return {k: body.get(k) for k in ("effective_mode", "execution_domain", "orders_gated", "reason",
                                         "as_of", "dataset_fingerprint")}

    async def bind(self, world_id: str, strategy_id: str) -> bool:
        """Ask the world service to record the WorldStrategyBinding; False when it has no such route
        (the gateway's own binding table still holds it)."""
        status = await self._bind(world_id, strategy_id)
        if status < 300:
            return True
        log.info("world service did not record binding %s/%s: %s", world_id, strategy_id, status)
        return False

    # -- how one question is asked: over HTTP here, directly in ``EmbeddedWorldClient`` -----------------
    async def _world_status(self, world_id: str) -> int:
        """The status ``GET /worlds/{world_id}`` answers."""
        return (await self._call("GET", f"/worlds/{world_id}")).status_code

    async def _decide(self, world_id: str, strategy_id: str, hint: str | None) -> Any:
        """The decision envelope as JSON, or None when there is no usable answer."""
        params = {"strategy_id": strategy_id} | ({"hint": hint} if hint else {})
        try:
            resp = await self._call("GET", f"/worlds/{world_id}/decide", params=params)
            return resp.json() if resp.status_code == 200 else None
        except (ApiError, ValueError):
            return None

    async def _bind(self, world_id: str, strategy_id: str) -> int:
        """The status recording the binding answers (2xx: recorded, or it already was)."""
        resp = await self._call("POST", f"/worlds/{world_id}/bindings", json={"strategy_id": strategy_id})
        return resp.status_code

    async def forward(self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes) -> httpx.Response:
        fwd = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
               if k.decode("latin-1").lower() not in _HOP_BY_HOP | {"x-request-id"}]
        request_id = context().get("request_id")
        if request_id:  # the world service logs under the same id as the gateway
            fwd.append(("x-request-id", request_id))
        url = path + (f"?{query.decode('latin-1')}" if query else "")
        if method == "GET":
            return await self._call(method, url, headers=fwd, content=body)
        self.forget(path)
        try:
            return await self._call(method, url, headers=fwd, content=body)
        finally:  # and again: a submission may have re-learned the world while the change ran
            self.forget(path)


class EmbeddedWorldClient(WorldClient):
    """The world service of this process: its ``WorldService`` answers the gateway's questions directly.

    Statuses are the ones its routes would answer: an ``ApiError`` of the world service gives its own
    status, anything else 500 (the route's catch-all), so the rules in ``WorldClient`` read them alike.
    The binding's actor is the routes' default for a request without ``X-Actor``.
    """

    def __init__(self, world_app: Any, service: WorldService, **kwargs: Any) -> None:
        super().__init__(world_app, **kwargs)
        self._service = service

    async def _world_status(self, world_id: str) -> int:
        return await self._status_of(self._service.world, world_id)

    async def _decide(self, world_id: str, strategy_id: str, hint: str | None) -> Any:
        try:
            envelope = await run_in_threadpool(self._service.decide, world_id, strategy_id, hint)
        except WorldError:  # an unknown world, as the route's 4xx: no usable decision
            return None
        except Exception:  # noqa: BLE001 - any failure is "no usable decision": default-safe
            log.warning("no decision from the world service for %s/%s", world_id, strategy_id, exc_info=True)
            return None
        return envelope.model_dump(mode="json")

    async def _bind(self, world_id: str, strategy_id: str) -> int:
        return await self._status_of(self._service.bind, world_id, strategy_id, "anonymous")

    @staticmethod
    async def _status_of(call: Any, *args: Any) -> int:
        try:
            await run_in_threadpool(call, *args)
        except WorldError as exc:
            return exc.status
        except Exception:  # noqa: BLE001 - what the world route's catch-all answers: a 500
            log.error("the world service failed on %s%s", getattr(call, "__name__", call), args, exc_info=True)
            return 500
        return 200


def make_world_client(world: Any) -> WorldClient:
    """``world`` as the gateway reaches it: a URL, the world app built in this process (asked directly),
    or any other ASGI app (asked over in-process HTTP)."""
    service = getattr(getattr(world, "state", None), "world_service", None)
    if isinstance(service, WorldService):
        return EmbeddedWorldClient(world, service)
    return WorldClient(world)
