"""The gateway's one way to reach the world service: in-process (ASGI app) or over HTTP (URL).

Used both for the gateway's own questions (does this world exist, which execution domain does its
decision give, bind a strategy) and to proxy ``/worlds…`` so SDK clients need a single URL.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from ..logs import context
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
        resp = await self._call("GET", f"/worlds/{world_id}")
        if resp.status_code == 404:
            self._seen.pop(world_id, None)
            raise ApiError(404, "E_UNKNOWN_WORLD", f"world_ids: unknown world {world_id!r}")
        if resp.status_code >= 400:
            raise ApiError(502, "E_WORLD_UNAVAILABLE",
                           f"the world service answered {resp.status_code} for world {world_id!r}")
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
        params = {"strategy_id": strategy_id} | ({"hint": hint} if hint else {})
        try:
            resp = await self._call("GET", f"/worlds/{world_id}/decide", params=params)
            body = resp.json() if resp.status_code == 200 else None
        except (ApiError, ValueError):
            body = None
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
        resp = await self._call("POST", f"/worlds/{world_id}/bindings", json={"strategy_id": strategy_id})
        if resp.status_code < 300:
            return True
        log.info("world service did not record binding %s/%s: %s", world_id, strategy_id,
                 resp.status_code)
        return False

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
