"""Write-through cache of activation envelopes, read by gateways/SDKs without touching the database.

The database stays the source of truth; the cache only mirrors the latest world envelope.
``RedisActivationCache`` serves prod; ``MemoryActivationCache`` is the dev/test stand-in.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol


class ActivationCache(Protocol):
    def get(self, world_id: str) -> dict[str, Any] | None: ...
    def set(self, world_id: str, envelope: dict[str, Any]) -> None: ...
    def delete(self, world_id: str) -> None: ...


class MemoryActivationCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}

    def get(self, world_id: str) -> dict[str, Any] | None:
        with self._lock:
            raw = self._data.get(world_id)
        return None if raw is None else json.loads(raw)

    def set(self, world_id: str, envelope: dict[str, Any]) -> None:
        with self._lock:
            self._data[world_id] = json.dumps(envelope, sort_keys=True)

    def delete(self, world_id: str) -> None:
        with self._lock:
            self._data.pop(world_id, None)


class ActivationCacheError(ConnectionError):
    """The cache's Redis is not reachable (an OSError, so start-up code treats it as a missing backend)."""


class RedisActivationCache:
    def __init__(self, url: str, prefix: str = "qmtl:activation") -> None:
        import redis

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5)
        try:
            self._redis.ping()  # prod must fail at start-up, not on the first activation change
        except redis.RedisError as exc:
            raise ActivationCacheError(f"cannot reach Redis for the activation cache at {url}: {exc}") from exc

    def _key(self, world_id: str) -> str:
        return f"{self.prefix}:{world_id}"

    def get(self, world_id: str) -> dict[str, Any] | None:
        raw = self._redis.get(self._key(world_id))
        return None if raw is None else json.loads(raw)

    def set(self, world_id: str, envelope: dict[str, Any]) -> None:
        self._redis.set(self._key(world_id), json.dumps(envelope, sort_keys=True))

    def delete(self, world_id: str) -> None:
        self._redis.delete(self._key(world_id))

    def close(self) -> None:
        self._redis.close()
