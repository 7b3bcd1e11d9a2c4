"""PostgreSQL behind the ``Database`` seam: a ``psycopg_pool.ConnectionPool`` of psycopg 3 connections.

A transaction block checks a connection out of the pool for its whole duration (nested blocks on the
same thread reuse it) and returns it after COMMIT, so with ``pool_size`` N up to N threads commit in
parallel and PostgreSQL's own group commit shares their WAL flushes.  ``pool_size=1`` serialises every
transaction.  Durability: a block returns only after COMMIT, which (``synchronous_commit`` on, the
server default) has flushed the WAL.

Every checkout is checked (``ConnectionPool.check_connection``, see ``_checked_connection``): a
connection the server dropped (restart, ``AdminShutdown``, network) is replaced before a request uses
it, instead of failing that request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .sql import Column, Database, DatabaseError, Params, RetryableConflict, qmark_to_format, redact

log = logging.getLogger(__name__)

# How long a block waits for a free connection before giving up with a clear error.
CHECKOUT_TIMEOUT_S = 30.0
# How long start-up waits for the first connection (an unreachable server fails start-up, not a request).
CONNECT_TIMEOUT_S = 5.0


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, dsn: str, pool_size: int = 1, serial: bool = False) -> None:
        import threading

        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.dsn = dsn
        self.pool_size = pool_size
        self.serial = serial
        self._local = threading.local()  # this thread's checked-out connection and nesting depth
        self._pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=False, timeout=CHECKOUT_TIMEOUT_S,
                                    name="qmtl",
                                    kwargs={"autocommit": False, "row_factory": dict_row,
                                            "connect_timeout": int(CONNECT_TIMEOUT_S)})
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            self._pool.close()
            raise DatabaseError(f"cannot connect to PostgreSQL at {redact(dsn)}: no connection within "
                                f"{CONNECT_TIMEOUT_S:g} s ({exc})") from None

    # -- statements -------------------------------------------------------------------------------------
    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]:
        with self._local.conn.cursor() as cur:
            cur.execute(qmark_to_format(sql), tuple(params))
            return list(cur.fetchall()) if fetch and cur.description is not None else []

    def _insert_many(self, table: str, columns: Sequence[Column], rows: Sequence[tuple],
                     returning: str | None) -> list[dict[str, Any]]:
        # One statement whatever the row count: each column travels as one typed array and UNNEST
        # zips them back into rows (no SQL text or parameter list that grows with the rows).
        names = ",".join(name for name, _ in columns)
        arrays = ",".join(f"%s::{sqltype}[]" for _, sqltype in columns)
        values = [list(col) for col in zip(*rows)]
        tail = f" RETURNING {returning}" if returning else ""
        with self._local.conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
                        f"ON CONFLICT DO NOTHING{tail}", values)
            return list(cur.fetchall()) if returning else []

    def list_agg(self, expr: str) -> str:
        return f"string_agg({expr}, ',')"

    def compress_fast(self, table: str, columns: Sequence[str]) -> bool:
        """lz4 instead of the default pglz for values stored out of line (TOAST): compressing a
        submitted DAG document (~100 KB) with pglz was about 1 ms of PostgreSQL's CPU per submission,
        with lz4 a quarter of that.  Needs PostgreSQL 14+ built with lz4; the column is altered only when
        it is not lz4 already (the ALTER locks the table), so a second start does nothing."""
        import psycopg

        try:
            pending = [r["attname"] for r in self.fetchall(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attname = ANY(?) "
                "AND attcompression <> 'l' ORDER BY attnum", (table, list(columns)))]
            if pending:
                self.execute(f"ALTER TABLE {table} "
                             + ", ".join(f"ALTER COLUMN {c} SET COMPRESSION lz4" for c in pending))
        except psycopg.Error as exc:  # an older server, or one built without lz4: keep its default
            log.info("PostgreSQL keeps its default compression for %s (%s): %s", table, ", ".join(columns),
                     str(exc).strip())
            return False
        return True

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, Params]:
        return f"{column} = ANY(?)", (list(values),)

    # -- transactions over the pool ---------------------------------------------------------------------
    @contextmanager
    def _outermost_transaction(self) -> Iterator[None]:
        from psycopg_pool import PoolClosed, PoolTimeout

        try:
            conn = self._checked_connection()
        except PoolTimeout:
            raise DatabaseError(f"no free PostgreSQL connection within {CHECKOUT_TIMEOUT_S:.0f} s "
                                f"(pool of {self.pool_size} busy, or the server is down)") from None
        except PoolClosed:
            raise DatabaseError("the database connection pool is closed") from None
        self._local.conn = conn
        try:
            if self.serial:
                self._run(_XACT_LOCK, ("serial",))
            yield
            conn.commit()
        except BaseException as exc:
            self._rollback(conn)
            if _is_conflict(exc):
                raise RetryableConflict(f"transaction lost a conflict with a concurrent one: {exc}") from exc
            raise
        finally:
            self._local.conn = None
            self._pool.putconn(conn)  # a broken connection is discarded by the pool

    def _checked_connection(self) -> Any:
        """A pooled connection that answered a check.  Dead ones are handed back (the pool discards and
        replaces them) and the next is tried at once: the pool's own ``check=`` backs off a second,
        then two, then four, between dead connections, so after a restart the first request waited
        seconds for what a fresh connection does in milliseconds."""
        from psycopg_pool import ConnectionPool

        for _ in range(self.pool_size):
            conn = self._pool.getconn()
            try:
                ConnectionPool.check_connection(conn)
                return conn
            except Exception:  # noqa: BLE001 - whatever the server did, this connection is unusable
                self._pool.putconn(conn)
        return self._pool.getconn()  # all were dead: this one was opened after the drop

    @staticmethod
    def _rollback(conn: Any) -> None:
        if not conn.closed:
            try:
                conn.rollback()
            except Exception:  # a broken connection is discarded at check-in
                pass

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A session advisory lock on a connection of its own, outside the pool: the block's
        transactions need pooled connections (a pool of one would deadlock), and when a process dies
        its sessions end and PostgreSQL releases what they held."""
        import psycopg

        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S))
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL at {redact(self.dsn)}: {exc}") from None
        try:
            conn.execute(qmark_to_format(_SESSION_LOCK), (name,))
            yield
        finally:
            conn.close()  # ending the session releases the lock

    def close(self) -> None:
        self._pool.close()


# One 64-bit advisory-lock key per (schema, name): two databases (schemas) of one server never wait
# for each other, and the key needs no table.  A hash collision only makes two names wait in turn.
_LOCK_KEY = "hashtextextended('qmtl:' || current_schema() || ':' || ?, 0)"
_XACT_LOCK = f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"  # released by COMMIT/ROLLBACK
_SESSION_LOCK = f"SELECT pg_advisory_lock({_LOCK_KEY})"


def _is_conflict(exc: BaseException) -> bool:
    import psycopg.errors as pe

    return isinstance(exc, (pe.DeadlockDetected, pe.SerializationFailure))
