"""Issue 8 section 5: after PostgreSQL drops every connection (a restart, ``AdminShutdown``), no request
fails: each checkout is checked and a dead connection replaced.

Two ways: the server's backends terminated with ``pg_terminate_backend`` (what clients see of a
restart, possible on any server), and the local cluster really restarted with ``pg_ctlcluster`` in the
middle of the test (skipped, with the reason, where this test cannot control the server: not root, no
``pg_ctlcluster``, or the server is not the local cluster on the test DSN's port).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from urllib.parse import urlparse

import pytest

from qmtl.services.storage.sql import Database


def _terminate(admin_dsn: str, app_name: str) -> int:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = %s", (app_name,)).fetchall()
    return len(rows)


def _open_pool(pg_dsn: str, app_name: str, size: int = 4) -> Database:
    """A pooled ``Database`` with ``size`` connections actually open (held by concurrent transactions)."""
    db = Database.connect(f"{pg_dsn}&application_name={app_name}", pool_size=size)
    db.execute("CREATE TABLE IF NOT EXISTS reconnect_probe (k TEXT PRIMARY KEY)")
    barrier = threading.Barrier(size)

    def hold() -> None:
        with db.transaction():
            barrier.wait(timeout=10)
            db.fetchall("SELECT 1 AS one")

    threads = [threading.Thread(target=hold) for _ in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return db


def _eight_inserts(db: Database, prefix: str) -> list[str]:
    failures = []
    for i in range(8):
        try:
            db.execute("INSERT INTO reconnect_probe (k) VALUES (?) ON CONFLICT DO NOTHING", (f"{prefix}{i}",))
        except Exception as exc:  # noqa: BLE001 - the point is that none happens
            failures.append(f"{type(exc).__name__}: {exc}")
    return failures


def _local_cluster(pg_dsn: str) -> tuple[str, str] | None:
    """(version, name) of the local cluster serving ``pg_dsn``, if this process may restart it."""
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    url = urlparse(pg_dsn)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = str(url.port or 5432)
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == port and fields[3] == "online":
            return fields[0], fields[1]
    return None


def test_requests_after_a_real_server_restart_succeed(pg_dsn: str) -> None:
    cluster = _local_cluster(pg_dsn)
    if cluster is None:
        pytest.skip("cannot restart the PostgreSQL server from this test (needs root, pg_ctlcluster and "
                    "the local cluster on the DSN's port)")
    db = _open_pool(pg_dsn, f"qmtl_restart_{uuid.uuid4().hex[:8]}")
    try:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"], check=True,
                       capture_output=True, timeout=120)
        deadline = time.monotonic() + 60
        while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(urlparse(pg_dsn).port or 5432),
                              "-q"]).returncode != 0:
            assert time.monotonic() < deadline, "PostgreSQL did not come back within 60 s"
            time.sleep(0.2)
        assert _eight_inserts(db, "restart") == []
        assert db.fetchone("SELECT COUNT(*) AS n FROM reconnect_probe WHERE k LIKE 'restart%'")["n"] == 8
    finally:
        db.close()


def test_requests_after_the_server_dropped_every_connection_succeed(pg_dsn: str) -> None:
    app_name = f"qmtl_reconnect_{uuid.uuid4().hex[:8]}"
    db = _open_pool(pg_dsn, app_name)
    try:
        killed = _terminate(pg_dsn.split("?")[0], app_name)
        assert killed >= 2, f"expected several pooled connections to terminate, found {killed}"
        assert _eight_inserts(db, "k") == []
        assert db.fetchone("SELECT COUNT(*) AS n FROM reconnect_probe WHERE k LIKE 'k%'")["n"] == 8
    finally:
        db.close()


def test_unreachable_server_fails_at_start_not_on_a_request() -> None:
    from qmtl.services.storage.sql import DatabaseError

    with pytest.raises(DatabaseError) as exc:
        Database.connect("postgresql://postgres:s3cr@t@127.0.0.1:9/none")
    assert "s3cr" not in str(exc.value) and "127.0.0.1:9" in str(exc.value)
