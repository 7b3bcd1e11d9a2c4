"""Issue 8 section 5: after PostgreSQL drops every connection (a restart, ``AdminShutdown``), no request
fails: each checkout is checked and a dead connection replaced.

The server itself is not restarted here (it is shared with other work on this machine); its backends
are terminated with ``pg_terminate_backend``, which is what clients see of a restart.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from qmtl.services.storage.sql import Database


def _terminate(admin_dsn: str, app_name: str) -> int:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = %s", (app_name,)).fetchall()
    return len(rows)


def test_requests_after_the_server_dropped_every_connection_succeed(pg_dsn: str) -> None:
    app_name = f"qmtl_reconnect_{uuid.uuid4().hex[:8]}"
    db = Database.connect(f"{pg_dsn}&application_name={app_name}", pool_size=4)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS reconnect_probe (k TEXT PRIMARY KEY)")
        barrier = threading.Barrier(4)

        def hold() -> None:  # four concurrent transactions: the pool opens four connections
            with db.transaction():
                barrier.wait(timeout=10)
                db.fetchall("SELECT 1 AS one")

        threads = [threading.Thread(target=hold) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        killed = _terminate(pg_dsn.split("?")[0], app_name)
        assert killed >= 2, f"expected several pooled connections to terminate, found {killed}"
        failures = []
        for i in range(8):
            try:
                db.execute("INSERT INTO reconnect_probe (k) VALUES (?) ON CONFLICT DO NOTHING", (f"k{i}",))
            except Exception as exc:  # noqa: BLE001 - the point is that none happens
                failures.append(f"{type(exc).__name__}: {exc}")
        assert failures == []
        assert db.fetchone("SELECT COUNT(*) AS n FROM reconnect_probe")["n"] == 8
    finally:
        db.close()


def test_unreachable_server_fails_at_start_not_on_a_request() -> None:
    from qmtl.services.storage.sql import DatabaseError

    with pytest.raises(DatabaseError) as exc:
        Database.connect("postgresql://postgres:s3cr@t@127.0.0.1:9/none")
    assert "s3cr" not in str(exc.value) and "127.0.0.1:9" in str(exc.value)
