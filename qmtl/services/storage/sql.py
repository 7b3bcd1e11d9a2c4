"""One narrow SQL seam over sqlite3 (dev) and psycopg 3 (prod).

Callers write SQL once with ``?`` placeholders and portable DDL (TEXT, INTEGER/BIGINT, DOUBLE PRECISION,
JSON as TEXT, ``INSERT ... ON CONFLICT``); this module converts placeholders for PostgreSQL and hands rows
back as plain dicts.

Concurrency: each ``Database`` owns ONE connection guarded by a re-entrant lock.  A ``transaction()``
holds that lock until it commits, so statements from uvicorn's threadpool never interleave inside
another thread's transaction.  The services' write rate is tiny (worlds, decisions, audit rows), so
serialising access is the simple, obviously-correct choice over a pool.

Durability: SQLite runs in WAL mode with ``synchronous=FULL`` so that a write acknowledged to a client
survives ``kill -9``; PostgreSQL commits before a call returns.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

Params = Sequence[Any]


class DatabaseError(Exception):
    """A DSN we cannot use, or a backend failure worth naming to the operator."""


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
    """The seam: ``execute``/``fetchone``/``fetchall``/``executescript`` and a ``transaction()`` block.

    Outside a ``transaction()`` every statement commits on its own; inside one, all statements commit
    together when the block exits normally and roll back when it raises.
    """

    kind: Literal["sqlite", "postgresql"]

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting; only touched while holding the lock

    @staticmethod
    def connect(dsn: str) -> "Database":
        """Open ``sqlite:///path.db`` (``sqlite:///:memory:`` too) or ``postgresql://...``."""
        if dsn.startswith("sqlite:///"):
            return SQLiteDatabase(unquote(dsn[len("sqlite:///"):]))
        if dsn.startswith(("postgresql://", "postgres://")):
            return PostgresDatabase(dsn)
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

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._begin()
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._rollback()
                raise
            self._depth -= 1
            if outermost:
                self._commit()

    def executescript(self, ddl: str) -> None:
        """Run several ``;``-separated statements (schema creation) as one committed unit."""
        statements = [s.strip() for s in ddl.split(";") if s.strip()]
        with self.transaction():
            for stmt in statements:
                self._run(stmt, ())

    @abstractmethod
    def close(self) -> None: ...

    # -- backend hooks ----------------------------------------------------------------------------------
    @abstractmethod
    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...


class SQLiteDatabase(Database):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a transaction means what it says.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]:
        cur = self._conn.execute(sql, tuple(params))
        return [dict(r) for r in cur.fetchall()] if fetch else []

    def _begin(self) -> None:
        # IMMEDIATE takes the write lock up front: no read-then-upgrade deadlock between processes.
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._conn = self._open()

    def _open(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self.dsn, autocommit=False, row_factory=dict_row, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL at {_redact(self.dsn)}: {exc}") from exc

    def _run(self, sql: str, params: Params, fetch: bool = False) -> list[dict[str, Any]]:
        with self._conn.cursor() as cur:
            cur.execute(qmark_to_format(sql), tuple(params))
            return list(cur.fetchall()) if fetch and cur.description is not None else []

    def _begin(self) -> None:
        # psycopg opens a transaction implicitly on the first statement; reconnect if the server dropped us.
        if self._conn.closed:
            self._conn = self._open()

    def _commit(self) -> None:
        self._conn.commit()

    def _rollback(self) -> None:
        if not self._conn.closed:
            self._conn.rollback()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _redact(dsn: str) -> str:
    """Drop a password from a DSN before it reaches an error message or a log."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.split("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
