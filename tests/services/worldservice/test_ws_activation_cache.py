"""Activation caches: write-through mirror of the world envelope (memory and real Redis)."""

from __future__ import annotations

import uuid

import pytest

from qmtl.services.worldservice.activation_cache import (ActivationCacheError, MemoryActivationCache,
                                                         RedisActivationCache)
from tests.services.conftest import REDIS_URL as REDIS
from tests.services.conftest import unavailable

def _redis_cache() -> RedisActivationCache:
    try:
        return RedisActivationCache(REDIS, prefix=f"qmtl-test-cache:{uuid.uuid4().hex[:10]}")
    except ActivationCacheError as exc:
        unavailable(str(exc))


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_set_get_overwrite(kind: str) -> None:
    cache = MemoryActivationCache() if kind == "memory" else _redis_cache()
    try:
        assert cache.get("w") is None
        cache.set("w", {"sequence": 1, "freeze": False})
        cache.set("w", {"sequence": 2, "freeze": True})
        cache.set("other", {"sequence": 7})
        assert cache.get("w") == {"sequence": 2, "freeze": True}
        assert cache.get("other") == {"sequence": 7}
    finally:
        if isinstance(cache, RedisActivationCache):
            cache.delete("w")
            cache.delete("other")
            cache.close()


def test_unreachable_redis_fails_at_construction() -> None:
    with pytest.raises(OSError, match="cannot reach Redis for the activation cache"):
        RedisActivationCache("redis://127.0.0.1:1/0")
