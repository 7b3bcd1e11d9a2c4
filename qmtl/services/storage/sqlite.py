"""SQLite behind the ``Database`` seam: one writer connection with group commit, one reader connection.

Durability: WAL mode with ``synchronous=FULL``, so a COMMIT returns only after the WAL is fsync'd and
an acknowledged write survives ``kill -9`` (and power loss).  That fsync is most of a small write's
cost, and SQLite has a single writer, so committing every transaction on its own caps throughput at
about one transaction per fsync however many threads are waiting.

Group commit: a transaction block runs inside a SAVEPOINT of a shared, open SQLite transaction (the
*batch*).  When its block ends and other threads are already queued for the writer, it hands the open
batch on to them and waits; the last block of the batch (nobody queued behind it, or the batch full)
COMMITs once — one fsync — and wakes every member.  No block returns before the COMMIT that holds its
writes, so the durability promise is unchanged; a block that raises rolls back to its savepoint and
leaves the other members' work alone.  Blocks still run one at a time on one connection, so a block
sees earlier members' writes exactly as if they had committed first (``MAX()+1`` numbering stays
correct).  A failed COMMIT fails every member.

Reads outside a transaction (``SELECT``/``WITH``) go to a separate ``query_only`` connection: WAL lets it
read the last committed state while the writer works, so readers neither queue behind a batch nor see
writes that are not yet durable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .sql import Column, Database, DatabaseError, Params

# Bounds how long the first member of a batch can wait for the ones behind it.
MAX_BATCH = 32
_SAVEPOINT = "qmtl_tx"
# Bound parameters per statement (SQLite's own limit is 32766 since 3.32).
_MAX_PARAMS = 30000
# Page cache per connection, in KiB.  The graph's NodeID index is keyed by content hashes, so a
# submission's inserts land on pages all over it (GSG version 1 keyed every graph table so); with
# SQLite's default (2 MiB) a database of a few hundred strategies no longer fits and every insert
# re-reads pages from the OS, which grew a submission's write from ~20 to ~30 ms of CPU.  Memory is
# taken only as pages are used.
CACHE_KIB = 64 * 1024
# WAL pages between automatic checkpoints (SQLite's default is 1000).  A page rewritten by many
# commits in between is copied back to the database once, not once per checkpoint; durability does
# not depend on checkpoints (a COMMIT is durable once its WAL frames are fsync'd).
WAL_AUTOCHECKPOINT_PAGES = 10_000


class _Batch:
    """One open SQLite transaction shared by the blocks that joined it."""

    def __init__(self) -> None:
        self.members = 0  # blocks whose work (released savepoint) the COMMIT must persist
        self.done = threading.Event()
        self.error: BaseException | None = None


class SQLiteDatabase(Database):
    kind = "sqlite"
    key_table = " WITHOUT ROWID"
    id_key = "INTEGER PRIMARY KEY"

    def __init__(self, path: str, max_batch: int = MAX_BATCH) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_batch = max_batch
        self._conn = self._open(path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        self._writer = threading.Lock()  # held while a block runs on the writer connection
        self._queue_lock = threading.Lock()
        self._queued = 0  # threads waiting for ``_writer``: the batch is handed on only to them
        self._batch: _Batch | None = None
        self._local = threading.local()  # per-thread nesting depth of transaction blocks
        # An in-memory database is private to its connection: there, reads go through the writer.
        self._reader = None if path == ":memory:" else self._open(path)
        if self._reader is not None:
            self._reader.execute("PRAGMA query_only=ON")
        self._read_lock = threading.Lock()
        self._named_locks: dict[str, threading.Lock] = {}  # ``exclusive``
        self._named_locks_guard = threading.Lock()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/SAVEPOINT/COMMIT ourselves so a transaction means what
        # it says; check_same_thread=False because uvicorn's threadpool shares the connection (always
        # under a lock).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        return conn

    # -- statements -------------------------------------------------------------------------------------
    def fetchall(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        if self._reader is not None and self._depth() == 0 and _is_query(sql):
            with self._read_lock:
                return _fetch(self._reader.execute(sql, tuple(params)))
        return super().fetchall(sql, params)

    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]:
        cur = self._conn.execute(sql, tuple(params))
        return _fetch(cur) if fetch else []

    def _insert_many(self, table: str, columns: Sequence[Column], rows: Sequence[tuple],
                     returning: str | None) -> list[dict[str, Any]]:
        # Multi-row VALUES, not executemany: sqlite3 releases the GIL around every step, and under
        # load each re-acquisition can wait a whole switch interval, so a statement per row makes the
        # writer (which everyone queues behind) crawl.  One statement per chunk is one step.
        names = ",".join(name for name, _ in columns)
        row_sql = "(" + ",".join("?" * len(columns)) + ")"
        per_chunk = max(1, _MAX_PARAMS // len(columns))
        tail = f" RETURNING {returning}" if returning else ""
        out: list[dict[str, Any]] = []
        for i in range(0, len(rows), per_chunk):
            chunk = rows[i:i + per_chunk]
            cur = self._conn.execute(
                f"INSERT INTO {table} ({names}) VALUES {','.join([row_sql] * len(chunk))} "
                f"ON CONFLICT DO NOTHING{tail}", [v for row in chunk for v in row])
            if returning:
                out += _fetch(cur)
        return out

    def list_agg(self, expr: str) -> str:
        return f"group_concat({expr}, ',')"

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, Params]:
        return f"{column} IN (SELECT value FROM json_each(?))", (json.dumps(list(values)),)

    # -- transactions with group commit -----------------------------------------------------------------
    @contextmanager
    def _outermost_transaction(self) -> Iterator[None]:
        batch = self._enter()
        try:
            yield
        except BaseException:
            self._leave_failed(batch)
            raise
        self._leave_ok(batch)

    def _enter(self) -> _Batch:
        """Take the writer, join (or open) the batch and start this block's savepoint."""
        with self._queue_lock:
            self._queued += 1
        self._writer.acquire()
        with self._queue_lock:
            self._queued -= 1
        try:
            if self._batch is None:
                self._conn.execute("BEGIN IMMEDIATE")
                self._batch = _Batch()
        except BaseException:
            self._writer.release()
            raise
        batch = self._batch
        try:
            self._conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        except BaseException:
            self._finish(batch, joined=False)
            raise
        return batch

    def _leave_ok(self, batch: _Batch) -> None:
        try:
            self._conn.execute(f"RELEASE {_SAVEPOINT}")
        except BaseException:
            self._leave_failed(batch)
            raise
        batch.members += 1
        self._finish(batch, joined=True)

    def _leave_failed(self, batch: _Batch) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                self._conn.execute(f"RELEASE {_SAVEPOINT}")
            except sqlite3.Error as exc:  # the batch cannot be trusted any more: fail all of it
                batch.error = DatabaseError(f"rolling back a failed transaction failed: {exc}")
        else:  # SQLite itself rolled the whole batch back (I/O error, disk full, …)
            batch.error = DatabaseError("SQLite rolled back the transaction after an error; "
                                        "the writes of this commit group were lost and must be retried")
        self._finish(batch, joined=False)

    def _finish(self, batch: _Batch, joined: bool) -> None:
        """Hand the open batch to a queued thread, or commit it; a joined block returns only after
        the COMMIT holding its writes (and raises if that COMMIT failed).  Called holding the writer,
        releases it."""
        with self._queue_lock:
            hand_on = self._queued > 0 and batch.members < self.max_batch and batch.error is None
        if hand_on:
            # A queued thread will take the writer and, in turn, hand on or commit: someone commits.
            self._writer.release()
        else:
            self._close_batch(batch)
        if joined:
            batch.done.wait()
            if batch.error is not None:
                raise batch.error

    def _close_batch(self, batch: _Batch) -> None:
        try:
            if batch.error is None and batch.members:
                self._conn.execute("COMMIT")
            elif self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            batch.error = batch.error or DatabaseError(f"COMMIT failed: {exc}")
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        finally:
            self._batch = None
            batch.done.set()
            self._writer.release()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A lock of this process: an SQLite database is served by one process (``serve`` runs
        several workers only on PostgreSQL), whose threads all share this object."""
        with self._named_locks_guard:
            lock = self._named_locks.setdefault(name, threading.Lock())
        with lock:
            yield

    def close(self) -> None:
        with self._writer:
            self._conn.close()
        if self._reader is not None:
            with self._read_lock:
                self._reader.close()


def _fetch(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    if cur.description is None:
        return []
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _is_query(sql: str) -> bool:
    """Statements the read-only connection may answer (anything else needs the writer)."""
    head = sql.lstrip()[:6].upper()
    return head.startswith("SELECT") or head.startswith("WITH")
