"""The SDK's and the CLI's one door to a gateway: a thin httpx client that turns answers into dicts
and failures into two exceptions a caller can act on.

* ``GatewayUnavailable`` — the gateway could not give an answer (connection refused, timeout, a 5xx,
  a body that is not JSON). The SDK falls back to default-safe on this one.
* ``GatewayError`` — the gateway answered "no" (a 4xx with ``{"error": {"code", "message"}}``); the
  caller shows the code and message and stops.

World routes go through the gateway (it proxies ``/worlds…`` to the world service), so a client needs
one base URL.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
GATEWAY_URL_ENV = "QMTL_GATEWAY_URL"


class GatewayError(Exception):
    """A 4xx answer: ``code`` is the service's error code (``E_UNKNOWN_WORLD``, ``E_SCHEMA``, …)."""

    def __init__(self, status: int, code: str, message: str, url: str = ""):
        self.status, self.code, self.message, self.url = status, code, message, url
        super().__init__(f"{code}: {message}")


class GatewayUnavailable(Exception):
    """No usable answer from the gateway; the message says what failed and where."""


def configured_gateway_url(explicit: str | None = None, configured: str | None = None) -> str | None:
    """The one gateway URL order: ``explicit`` → ``$QMTL_GATEWAY_URL`` → ``configured`` (qmtl.yml's
    ``gateway_url``) → None, which ``Runner.submit`` takes to mean "start the embedded services"."""
    url = explicit or os.environ.get(GATEWAY_URL_ENV) or configured
    return url.rstrip("/") if url else None


def resolve_gateway_url(explicit: str | None = None) -> str:
    """``configured_gateway_url`` without qmtl.yml, else the local default: what ``qmtl world`` and
    ``qmtl status`` talk to (they inspect a running gateway; there is nothing to embed)."""
    return configured_gateway_url(explicit) or DEFAULT_GATEWAY_URL


class GatewayClient:
    def __init__(self, base_url: str, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- gateway ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def submit_strategy(self, dag: dict[str, Any], world_ids: list[str],
                        meta: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"dag": dag, "world_ids": world_ids, "meta": meta or {}}
        if dag.get("checksum"):
            body["checksum"] = dag["checksum"]
        return self._call("POST", "/strategies", json=body)

    def register_artifacts(self, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
        """Tell the gateway's artifact index what a run wrote to the artifact store."""
        return self._call("POST", "/artifacts", json={"artifacts": artifacts})

    def artifacts(self, node_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | ({"node_id": node_id} if node_id else {})
        return self._call("GET", "/artifacts", params=params)["artifacts"]

    def nodes(self, node_ids: list[str]) -> dict[str, list[str]]:
        """For each of ``node_ids`` the global strategy graph has: the strategies using it."""
        if not node_ids:
            return {}
        return self._call("POST", "/nodes/lookup", json={"node_ids": list(dict.fromkeys(node_ids))})["found"]

    def get_strategy(self, strategy_id: str) -> dict[str, Any]:
        return self._call("GET", f"/strategies/{_seg(strategy_id)}")

    def events(self, topic: str, after: int = 0, wait: float = 0.0) -> dict[str, Any]:
        """Control-bus events of ``topic`` (``activation``, ``queues``, ``decision``, ``apply``) after
        sequence ``after``, waiting up to ``wait`` s for one; pass the answer's ``last_seq`` next time."""
        return self._call("GET", "/events/poll", params={"topic": topic, "after": after, "wait": wait},
                          timeout=max(self._http.timeout.read or 0.0, wait + 5.0))

    # --- worlds (proxied) --------------------------------------------------------------------------

    def create_world(self, world_id: str, *, preset: str | None = None,
                     policy: dict[str, Any] | None = None, allow_live: bool = False,
                     description: str | None = None, decision_ttl: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": world_id, "allow_live": allow_live}
        if decision_ttl is not None:
            body["decision_ttl"] = decision_ttl
        if preset is not None:
            body["preset"] = preset
        if policy is not None:
            body["policy"] = policy
        if description is not None:
            body["description"] = description
        return self._call("POST", "/worlds", json=body)

    def list_worlds(self) -> Any:
        return self._call("GET", "/worlds")

    def get_world(self, world_id: str) -> dict[str, Any]:
        return self._call("GET", f"/worlds/{_seg(world_id)}")

    def get_policy(self, world_id: str) -> dict[str, Any]:
        return self._call("GET", f"/worlds/{_seg(world_id)}/policy")

    def put_policy(self, world_id: str, text: str, content_type: str) -> dict[str, Any]:
        return self._call("PUT", f"/worlds/{_seg(world_id)}/policy", content=text.encode(),
                          headers={"content-type": content_type})

    def evaluate(self, world_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/worlds/{_seg(world_id)}/evaluate", json=body)

    def decide(self, world_id: str, strategy_id: str) -> dict[str, Any]:
        return self._call("GET", f"/worlds/{_seg(world_id)}/decide",
                          params={"strategy_id": strategy_id})

    def activation(self, world_id: str, strategy_id: str | None = None) -> Any:
        params = {"strategy_id": strategy_id} if strategy_id else None
        return self._call("GET", f"/worlds/{_seg(world_id)}/activation", params=params)

    def apply(self, world_id: str, run_id: str, plan: dict[str, Any] | None = None,
              etag: str | None = None) -> dict[str, Any]:
        """Apply ``plan`` (default: the latest evaluation) against ``etag``, the activation state it
        was planned from; without one, the current state's etag is read first."""
        if etag is None:
            etag = self.activation(world_id)["etag"]
        body: dict[str, Any] = {"run_id": run_id, "etag": etag}
        if plan is not None:
            body["plan"] = plan
        return self._call("POST", f"/worlds/{_seg(world_id)}/apply", json=body)

    def allocations(self, world_id: str) -> dict[str, Any]:
        return self._call("GET", f"/worlds/{_seg(world_id)}/allocations")

    def all_allocations(self) -> dict[str, Any]:
        """Allocations per world and across worlds."""
        return self._call("GET", "/allocations")

    def rebalance_plan(self, world_ids: list[str] | None = None) -> dict[str, Any]:
        body = {"world_ids": world_ids} if world_ids else {}
        return self._call("POST", "/rebalancing/plan", json=body)

    def rebalance_apply(self, run_id: str, plans: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply ``plans`` (each ``{world_id, etag, target}``, as ``rebalance_plan`` gives them)."""
        body = {"run_id": run_id, "plans": [{k: p[k] for k in ("world_id", "etag", "target")} for p in plans]}
        return self._call("POST", "/rebalancing/apply", json=body)

    # --- plumbing ----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise GatewayUnavailable(f"{method} {url}: timed out") from None
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"{method} {url}: {_transport_problem(exc)}") from None
        if response.status_code >= 500:
            code, message = _error_of(response)
            raise GatewayUnavailable(f"{method} {url}: HTTP {response.status_code} {code}: {message}")
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise GatewayError(response.status_code, code, message, url)
        try:
            return response.json()
        except ValueError:
            raise GatewayUnavailable(f"{method} {url}: answer is not JSON "
                                     f"(HTTP {response.status_code})") from None


def _seg(value: str) -> str:
    """One URL path segment: a world or strategy id must not be able to walk the route tree."""
    return quote(value, safe="")


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        err = response.json().get("error", {})
        return str(err.get("code", f"HTTP_{response.status_code}")), str(err.get("message", ""))
    except (ValueError, AttributeError):
        return f"HTTP_{response.status_code}", response.text[:200]


def _transport_problem(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"connection refused or unreachable ({exc})"
    return f"{type(exc).__name__}: {exc}"
