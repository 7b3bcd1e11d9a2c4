"""Concurrency of the SQL seam: SQLite group commit, the PostgreSQL pool, and the batch helpers.

The promises under test: a transaction returns only once its writes are committed (another
connection sees them), concurrent SQLite transactions share COMMITs, one failing member of a commit
group loses only its own writes, readers never see a group's uncommitted writes, and a PostgreSQL pool
> 1 really runs transactions side by side.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from qmtl.services.gateway.sample_dags import chain_dag
from qmtl.services.gateway.submissions import SubmissionStore
from qmtl.services.gateway.app import parse_submission
from qmtl.services.gateway.verify import verify_submission
from qmtl.services.gsg import SqlGraphStore
from qmtl.services.storage.sql import Database, RetryableConflict

DDL = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT, n BIGINT)"
KV = (("k", "TEXT"), ("v", "TEXT"), ("n", "BIGINT"))


def _count_commits(db: Database) -> list[str]:
    """Every COMMIT the SQLite writer connection runs, in order (via sqlite3's trace hook)."""
    seen: list[str] = []
    db._conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


def _committed_keys(path: Path) -> set[str]:
    """What a brand-new connection (another process, after a crash) would find."""
    with sqlite3.connect(path) as conn:
        return {k for (k,) in conn.execute("SELECT k FROM kv")}


def test_sqlite_concurrent_transactions_share_commits_and_return_after_theirs(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    db = Database.connect(f"sqlite:///{path}")
    db.executescript(DDL)
    commits = _count_commits(db)
    visible_on_return: dict[str, bool] = {}

    def write(i: int) -> None:
        with db.transaction():
            db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (f"k{i}", "v"))
            time.sleep(0.01)  # hold the writer so the others queue behind this block
        visible_on_return[f"k{i}"] = f"k{i}" in _committed_keys(path)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(16)))
    assert visible_on_return == {f"k{i}": True for i in range(16)}, "a transaction returned before COMMIT"
    assert 1 <= len(commits) < 16, f"{len(commits)} COMMITs for 16 concurrent transactions: no grouping"
    assert _committed_keys(path) == {f"k{i}" for i in range(16)}
    db.close()


def test_sqlite_failed_member_of_a_group_loses_only_its_own_writes(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    db = Database.connect(f"sqlite:///{path}")
    db.executescript(DDL)
    commits = _count_commits(db)
    start = threading.Barrier(6)

    def write(i: int) -> str:
        start.wait(5)
        try:
            with db.transaction():
                db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (f"k{i}", "v"))
                time.sleep(0.01)
                if i % 2:
                    raise RuntimeError("abort")
        except RuntimeError:
            return "aborted"
        return "ok"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(write, range(6)))
    assert outcomes == ["ok", "aborted"] * 3
    assert _committed_keys(path) == {"k0", "k2", "k4"}
    assert len(commits) < 6
    db.close()


def test_sqlite_readers_see_only_committed_state(tmp_path: Path) -> None:
    db = Database.connect(f"sqlite:///{tmp_path / 'g.db'}")
    db.executescript(DDL)
    db.execute("INSERT INTO kv (k, v) VALUES ('old', 'v')")
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction():
            db.execute("INSERT INTO kv (k, v) VALUES ('new', 'v')")
            assert {r["k"] for r in db.fetchall("SELECT k FROM kv")} == {"old", "new"}  # own writes
            inside.set()
            release.wait(5)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(5)
    started = time.monotonic()
    assert [r["k"] for r in db.fetchall("SELECT k FROM kv")] == ["old"]  # not the open batch
    assert time.monotonic() - started < 1, "a reader queued behind the open write transaction"
    release.set()
    t.join(5)
    assert {r["k"] for r in db.fetchall("SELECT k FROM kv")} == {"old", "new"}
    db.close()


def test_sqlite_memory_database_still_works_without_a_reader(tmp_path: Path) -> None:
    db = Database.connect("sqlite:///:memory:")
    db.executescript(DDL)
    db.insert_many("kv", KV, [("a", "1", 1), ("b", None, None)])
    assert db.fetchall("SELECT k, v, n FROM kv ORDER BY k") == [
        {"k": "a", "v": "1", "n": 1}, {"k": "b", "v": None, "n": None}]
    db.close()


def test_insert_many_is_idempotent_and_any_of_takes_long_lists(db_backend) -> None:
    db = db_backend("kv")
    db.executescript(DDL)
    rows = [(f"k{i:05d}", None if i % 3 else f"v{i}", i if i % 2 else None) for i in range(2500)]
    db.insert_many("kv", KV, rows)
    db.insert_many("kv", KV, rows[:10] + [("k00000", "changed", 7)])  # conflicts do nothing
    db.insert_many("kv", KV, [])
    where, params = db.any_of("k", [f"k{i:05d}" for i in range(0, 2500, 2)] + ["missing"])
    found = db.fetchall(f"SELECT k, v, n FROM kv WHERE {where} ORDER BY k", params)
    assert [(r["k"], r["v"], r["n"]) for r in found] == rows[0::2]
    agg = db.fetchone(f"SELECT {db.list_agg('k')} AS ks FROM kv WHERE n = 1")
    assert agg == {"ks": "k00001"}


def test_postgres_pool_runs_transactions_side_by_side(pg_dsn: str) -> None:
    db = Database.connect(pg_dsn, pool_size=2)
    both_inside = threading.Barrier(2)

    def body() -> None:
        with db.transaction():
            db.fetchone("SELECT 1 AS one")
            both_inside.wait(5)  # raises BrokenBarrierError if the pool serialised us

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(body) for _ in range(2)]:
            f.result()
    db.close()


def test_postgres_single_connection_serialises_transactions(pg_dsn: str) -> None:
    db = Database.connect(pg_dsn, pool_size=1)
    inside = threading.Semaphore(0)
    overlap: list[int] = []
    active = 0
    lock = threading.Lock()

    def body() -> None:
        nonlocal active
        with db.transaction():
            with lock:
                active += 1
                overlap.append(active)
            time.sleep(0.02)
            with lock:
                active -= 1
        inside.release()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: body(), range(8)))
    assert max(overlap) == 1
    db.close()


def test_pool_size_must_be_positive() -> None:
    from qmtl.services.storage.sql import DatabaseError

    with pytest.raises(DatabaseError, match="pool_size must be at least 1"):
        Database.connect("sqlite:///:memory:", pool_size=0)


def test_run_transaction_retries_a_lost_conflict_and_gives_up_after_attempts(db_backend) -> None:
    db = db_backend("retry")
    db.executescript(DDL)
    calls = []

    def flaky() -> str:
        calls.append(1)
        db.execute("INSERT INTO kv (k) VALUES (?)", (f"try{len(calls)}",))
        if len(calls) < 3:
            raise RetryableConflict("deadlock detected (simulated)")
        return "done"

    assert db.run_transaction(flaky) == "done"
    assert [r["k"] for r in db.fetchall("SELECT k FROM kv")] == ["try3"]  # failed tries rolled back
    calls.clear()
    with pytest.raises(RetryableConflict):
        db.run_transaction(lambda: (calls.append(1), (_ for _ in ()).throw(RetryableConflict("x"))))
    assert len(calls) == 3


def test_concurrent_submissions_of_one_strategy_create_it_once(db_backend) -> None:
    db = db_backend("gateway", pool_size=4)
    store = SubmissionStore(db, SqlGraphStore(db))
    dag = chain_dag("same", 30, seed=5)
    req = parse_submission(__import__("json").dumps({"dag": dag, "world_ids": ["w"]}).encode())
    verified = verify_submission(req)
    start = threading.Barrier(4)

    def submit(_: int) -> bool:
        start.wait(5)
        return store.record(verified, req.dag.model_dump_json(by_alias=True), {}, {"w": "backtest"}).created

    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(submit, range(4)))
    assert created.count(True) == 1
    assert store.count() == 1


def test_concurrent_submissions_sharing_nodes_all_land(db_backend) -> None:
    """Distinct strategies sharing their source sub-DAG commit concurrently without deadlock."""
    db = db_backend("gateway", pool_size=4)
    store = SubmissionStore(db, SqlGraphStore(db))
    reqs = [parse_submission(__import__("json").dumps(
        {"dag": chain_dag(f"s{i}", 25, seed=i + 1), "world_ids": ["w"]}).encode()) for i in range(12)]

    def submit(req) -> str:
        return store.record(verify_submission(req), req.dag.model_dump_json(by_alias=True), {},
                            {"w": "backtest"}).strategy_id

    with ThreadPoolExecutor(6) as pool:
        sids = list(pool.map(submit, reqs))
    assert len(set(sids)) == 12 and store.count() == 12
    source = reqs[0].dag.nodes[0].node_id
    assert SqlGraphStore(db).existing([source])[source] == sorted(sids)


def _blocked_until_released(hold: Callable[[], Any], wait: Callable[[], Any]) -> tuple[bool, bool]:
    """Run ``wait()`` in a thread while another thread is inside ``hold()``'s block.  Returns whether
    ``wait`` finished while the block was held, and whether it finished once the block was left."""
    entered, release = threading.Event(), threading.Event()
    done = threading.Event()

    def holder() -> None:
        with hold():
            entered.set()
            release.wait(10)

    def waiter() -> None:
        entered.wait(10)
        with wait():
            done.set()

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(holder), pool.submit(waiter)]
        assert entered.wait(10)
        finished_while_held = done.wait(0.5)
        release.set()
        finished_after = done.wait(10)
        for f in futures:
            f.result()
    return finished_while_held, finished_after


def test_postgres_serial_transactions_run_alone_across_sessions(pg_dsn: str) -> None:
    """Two ``serial`` Database objects have separate pools, so separate sessions: what two server
    processes have.  One's transaction waits for the other's; a non-serial one does not."""
    a, b, free = (Database.connect(pg_dsn, serial=True), Database.connect(pg_dsn, serial=True),
                  Database.connect(pg_dsn))
    try:
        assert _blocked_until_released(a.transaction, b.transaction) == (False, True)
        assert _blocked_until_released(a.transaction, free.transaction) == (True, True)
    finally:
        for db in (a, b, free):
            db.close()


def test_postgres_serial_numbering_has_no_duplicates_across_sessions(pg_dsn: str) -> None:
    """``MAX()+1`` audit numbering from two world stores on one database (two processes' worth of
    sessions, four threads each): every entry lands, numbered 1..N without a gap or a repeat."""
    import uuid

    from qmtl.services.worldservice.store import WorldStore

    dbs = [Database.connect(pg_dsn, serial=True) for _ in range(2)]
    stores = [WorldStore(db) for db in dbs]
    world = f"w-{uuid.uuid4().hex[:8]}"
    try:
        def audit(i: int) -> int:
            store = stores[i % 2]
            with store.db.transaction():  # as every WorldService change runs
                return store.audit(world, "t", "x", 0.0, None, {"i": i})

        with ThreadPoolExecutor(8) as pool:
            seqs = list(pool.map(audit, range(80)))
        assert sorted(seqs) == list(range(1, 81))
        assert [e["seq"] for e in stores[0].audit_log(world)] == list(range(1, 81))
    finally:
        for db in dbs:
            db.close()


def test_exclusive_holds_a_name_against_other_holders_only(db_backend) -> None:
    """On PostgreSQL each ``exclusive`` block is a session of its own, so this is the cross-process
    case; on SQLite (one serving process) it is the threads of that process."""
    db = db_backend("locks")
    assert _blocked_until_released(lambda: db.exclusive("apply:w"), lambda: db.exclusive("apply:w")) \
        == (False, True)
    assert _blocked_until_released(lambda: db.exclusive("apply:w"), lambda: db.exclusive("apply:v")) \
        == (True, True)
