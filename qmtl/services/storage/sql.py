"""One narrow SQL seam over sqlite3 (dev) and psycopg 3 (prod).

Callers write SQL once with ``?`` placeholders and portable DDL (TEXT, INTEGER/BIGINT, DOUBLE PRECISION,
JSON as TEXT, ``INSERT ... ON CONFLICT``); the backend converts placeholders for PostgreSQL and hands
rows back as plain dicts.  Two helpers cover what portable SQL spells differently per backend and what
matters for speed: ``insert_many`` (one statement per table, not one per row) and ``any_of`` (a
membership test with ONE parameter, whatever the list's length).

Concurrency and durability are the backends' business (``sqlite.py``, ``postgres.py``); the contract
for callers is the same on both: a ``transaction()`` block's statements commit together when it exits
normally and roll back when it raises, blocks from different threads never interleave their statements
inside one another's transaction, and when ``transaction()`` (or ``execute``) returns, the work is
durable — it survives ``kill -9``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

Params = Sequence[Any]
# (column name, SQL type): PostgreSQL needs the type to build typed arrays for ``insert_many``.
Column = tuple[str, Literal["TEXT", "BIGINT", "DOUBLE PRECISION"]]
T = TypeVar("T")


class DatabaseError(Exception):
    """A DSN we cannot use, or a backend failure worth naming to the operator."""


class RetryableConflict(DatabaseError):
    """Two concurrent transactions collided (deadlock, serialization failure); running again is safe."""


def qmark_to_format(sql: str) -> str:
    """Rewrite ``?`` placeholders as psycopg's ``%s`` (and escape literal ``%``), skipping quoted text."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Database(ABC):
    """The seam: ``execute``/``fetchone``/``fetchall``/``executescript``/``insert_many`` and
    ``transaction()``.

    Outside a ``transaction()`` every statement commits on its own; inside one, all statements commit
    together when the block exits normally and roll back when it raises.  Nested blocks join the
    outermost one.
    """

    kind: Literal["sqlite", "postgresql"]
    # Appended to CREATE TABLE of small tables that are all primary key (``{key_table}`` in DDL):
    # SQLite then keeps ONE B-tree per table instead of a rowid table plus a key index, which halves
    # the pages an insert dirties (and the WAL bytes a commit fsyncs).  PostgreSQL has no such option.
    key_table: str = ""
    # Per thread: ``depth``, how many ``transaction()`` blocks it is inside (backends keep more here).
    _local: threading.local

    @staticmethod
    def connect(dsn: str, *, pool_size: int = 1, serial: bool = False) -> "Database":
        """Open ``sqlite:///path.db`` (``sqlite:///:memory:`` too) or ``postgresql://...``.

        ``pool_size`` is how many PostgreSQL connections this object may run transactions on at once;
        a pool > 1 is for callers whose writes commute (idempotent ``ON CONFLICT DO NOTHING`` inserts).
        ``serial=True`` runs every transaction alone among all ``serial`` holders of the same database
        (schema), in this process and in every other one: what read-then-write code (``MAX()+1``
        numbering, check-then-insert) relies on once several server processes share the database.
        SQLite has one writer per file whatever the flags (every transaction begins ``IMMEDIATE``),
        and group-commits instead.
        """
        if pool_size < 1:
            raise DatabaseError(f"pool_size must be at least 1, got {pool_size}")
        if dsn.startswith("sqlite:///"):
            from .sqlite import SQLiteDatabase

            return SQLiteDatabase(unquote(dsn[len("sqlite:///"):]))  # serial by construction
        if dsn.startswith(("postgresql://", "postgres://")):
            from .postgres import PostgresDatabase

            return PostgresDatabase(dsn, pool_size=pool_size, serial=serial)
        raise DatabaseError(
            f"unsupported database DSN {dsn!r}: expected 'sqlite:///<path>' or 'postgresql://...'")

    # -- public API -------------------------------------------------------------------------------------
    def execute(self, sql: str, params: Params = ()) -> None:
        with self.transaction():
            self._run(sql, params)

    def fetchone(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def fetchall(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self.transaction():
            return self._run(sql, params, fetch=True)

    def executescript(self, ddl: str) -> None:
        """Run several ``;``-separated statements (schema creation) as one committed unit."""
        statements = [s.strip() for s in ddl.split(";") if s.strip()]
        with self.transaction():
            for stmt in statements:
                self._run(stmt, ())

    def insert_many(self, table: str, columns: Sequence[Column], rows: Sequence[tuple]) -> None:
        """``INSERT … ON CONFLICT DO NOTHING`` of many rows in one statement (idempotent).

        Callers that may run concurrently should pass rows sorted by key: PostgreSQL then takes row
        locks in the same order in every transaction, so two submissions sharing nodes cannot deadlock.
        """
        if rows:
            with self.transaction():
                self._insert_many(table, columns, rows)

    @abstractmethod
    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, Params]:
        """A ``WHERE`` fragment testing ``column`` against ``values`` and its parameters (one, however
        many values: no statement grows with the list, no chunking against parameter limits)."""

    @abstractmethod
    def list_agg(self, expr: str) -> str:
        """An aggregate joining ``expr`` over a group with commas (NULL for an empty group): one row
        per group instead of one per member, for values that contain no comma."""

    def run_transaction(self, work: Callable[[], T], attempts: int = 3) -> T:
        """``work()`` inside one transaction, run again if it lost a deadlock to a concurrent one."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction():
                    return work()
            except RetryableConflict:
                if attempt == attempts:
                    raise
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        """A block of statements that commit together; a nested block joins the thread's outer one."""
        depth = self._depth()
        if depth:
            self._local.depth = depth + 1
            try:
                yield self
            finally:
                self._local.depth = depth
            return
        with self._outermost_transaction():
            self._local.depth = 1
            try:
                yield self
            finally:
                self._local.depth = 0

    @abstractmethod
    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Hold the lock ``name`` for a block that spans several transactions (each committed on its
        own), against every other holder of that name on this database, in any process.  Take it
        outside any transaction: the order is always this lock first, then transactions (a holder
        waiting for it inside a ``serial`` transaction could wait forever for one waiting on it)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- backend hooks ----------------------------------------------------------------------------------
    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @abstractmethod
    def _outermost_transaction(self) -> AbstractContextManager[None]:
        """Begin before a thread's outermost block; commit after it, or roll back if it raised."""

    @abstractmethod
    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _insert_many(self, table: str, columns: Sequence[Column], rows: Sequence[tuple]) -> None: ...


def redact(dsn: str) -> str:
    """Drop a password from a DSN before it reaches an error message or a log.

    The credentials end at the LAST ``@`` before the query string (a password may hold an unencoded
    ``@``, and a first-``@`` split leaked the rest of it); a ``password=`` query parameter is masked too.
    """
    if "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    before_query, sep, query = rest.partition("?")
    if query:
        query = "&".join(("password=***" if part.lower().startswith("password=") else part)
                         for part in query.split("&"))
    at = before_query.rfind("@")
    if at < 0:
        return f"{scheme}://{before_query}{sep}{query}"
    user = before_query[:at].split(":", 1)[0]
    return f"{scheme}://{user}@{before_query[at + 1:]}{sep}{query}"
