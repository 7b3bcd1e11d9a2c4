"""PostgreSQL behind the ``Database`` seam: a small pool of psycopg 3 connections.

A transaction block checks a connection out of the pool for its whole duration (nested blocks on the
same thread reuse it) and returns it after COMMIT, so with ``pool_size`` N up to N threads commit in
parallel and PostgreSQL's own group commit shares their WAL flushes.  ``pool_size=1`` serialises every
transaction, like the single connection this replaced.  Durability: a block returns only after
COMMIT, which (``synchronous_commit`` on, the server default) has flushed the WAL.

Connections are opened lazily up to the pool size; one that broke (server restart, network) is
dropped and replaced on the next checkout.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .sql import Column, Database, DatabaseError, Params, RetryableConflict, qmark_to_format, redact

# How long a block waits for a free connection before giving up with a clear error.
CHECKOUT_TIMEOUT_S = 30.0


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, dsn: str, pool_size: int = 1) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._opened = 0
        self._open_lock = threading.Lock()
        self._local = threading.local()  # this thread's checked-out connection and nesting depth
        self._closed = False
        self._idle.put(self._open())  # fail at start-up, not on the first request, when unreachable
        self._opened = 1

    def _open(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self.dsn, autocommit=False, row_factory=dict_row, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL at {redact(self.dsn)}: {exc}") from exc

    # -- statements -------------------------------------------------------------------------------------
    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]:
        with self._local.conn.cursor() as cur:
            cur.execute(qmark_to_format(sql), tuple(params))
            return list(cur.fetchall()) if fetch and cur.description is not None else []

    def _insert_many(self, table: str, columns: Sequence[Column], rows: Sequence[tuple]) -> None:
        # One statement whatever the row count: each column travels as one typed array and UNNEST
        # zips them back into rows (no SQL text or parameter list that grows with the rows).
        names = ",".join(name for name, _ in columns)
        arrays = ",".join(f"%s::{sqltype}[]" for _, sqltype in columns)
        values = [list(col) for col in zip(*rows)]
        with self._local.conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
                        "ON CONFLICT DO NOTHING", values)

    def list_agg(self, expr: str) -> str:
        return f"string_agg({expr}, ',')"

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, Params]:
        return f"{column} = ANY(?)", (list(values),)

    # -- transactions over the pool ---------------------------------------------------------------------
    @contextmanager
    def _outermost_transaction(self) -> Iterator[None]:
        conn = self._checkout()
        self._local.conn = conn
        try:
            yield
            conn.commit()
        except BaseException as exc:
            self._rollback(conn)
            if _is_conflict(exc):
                raise RetryableConflict(f"transaction lost a conflict with a concurrent one: {exc}") from exc
            raise
        finally:
            self._local.conn = None
            self._checkin(conn)

    def _checkout(self) -> Any:
        if self._closed:
            raise DatabaseError("the database connection pool is closed")
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._grow() or self._wait_for_idle()
        if conn.closed or conn.broken:
            self._forget(conn)
            conn = self._open()
            with self._open_lock:
                self._opened += 1
        return conn

    def _grow(self) -> Any | None:
        with self._open_lock:
            if self._opened >= self.pool_size:
                return None
            self._opened += 1
        try:
            return self._open()
        except BaseException:
            with self._open_lock:
                self._opened -= 1
            raise

    def _wait_for_idle(self) -> Any:
        try:
            return self._idle.get(timeout=CHECKOUT_TIMEOUT_S)
        except queue.Empty:
            raise DatabaseError(f"no free PostgreSQL connection within {CHECKOUT_TIMEOUT_S:.0f} s "
                                f"(pool of {self.pool_size} busy)") from None

    def _checkin(self, conn: Any) -> None:
        if conn.closed or conn.broken or self._closed:
            self._forget(conn)
        else:
            self._idle.put(conn)

    def _forget(self, conn: Any) -> None:
        with self._open_lock:
            self._opened -= 1
        try:
            conn.close()
        except Exception:  # already dead: nothing to release
            pass

    @staticmethod
    def _rollback(conn: Any) -> None:
        if not conn.closed:
            try:
                conn.rollback()
            except Exception:  # a broken connection is dropped at check-in
                pass

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            conn.close()


def _is_conflict(exc: BaseException) -> bool:
    import psycopg.errors as pe

    return isinstance(exc, (pe.DeadlockDetected, pe.SerializationFailure))
