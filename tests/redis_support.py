"""Redis has no per-test schema: a test that gave its streams and keys a prefix of its own removes
them afterwards, so the shared server does not fill up across runs."""

from __future__ import annotations


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` on the Redis server at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
