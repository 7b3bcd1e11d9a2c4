"""The SQL seam behaves the same on SQLite and PostgreSQL: rows as dicts, transactions, placeholders."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest

from qmtl.services.storage.sql import Database, DatabaseError, qmark_to_format
from tests.services.conftest import PG_BASE, unavailable

DDL = """
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL, n BIGINT, x DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, msg TEXT)
"""


def _pg_schema_dsn() -> Iterator[str]:
    """Create a uniquely named schema, yield a DSN whose search_path points at it, drop it after."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"qmtl_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {PG_BASE}: {exc}")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_BASE else "?"
    try:
        yield f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database.connect(f"sqlite:///{tmp_path / 'sub' / 'test.db'}")
        yield database
        database.close()
        return
    for dsn in _pg_schema_dsn():
        database = Database.connect(dsn)
        yield database
        database.close()


def test_kind_and_roundtrip(db: Database) -> None:
    db.executescript(DDL)
    db.execute("INSERT INTO kv (k, v, n, x) VALUES (?, ?, ?, ?)", ("a", '{"j": 1}', 2**40, 0.5))
    assert db.kind in ("sqlite", "postgresql")
    assert db.fetchone("SELECT k, v, n, x FROM kv WHERE k = ?", ("a",)) == {
        "k": "a", "v": '{"j": 1}', "n": 2**40, "x": 0.5}
    assert db.fetchone("SELECT k FROM kv WHERE k = ?", ("missing",)) is None


def test_upsert_is_portable(db: Database) -> None:
    db.executescript(DDL)
    upsert = "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    db.execute(upsert, ("a", "1"))
    db.execute(upsert, ("a", "2"))
    assert db.fetchall("SELECT k, v FROM kv") == [{"k": "a", "v": "2"}]


def test_transaction_commits_together_and_rolls_back_on_error(db: Database) -> None:
    db.executescript(DDL)
    with db.transaction():
        db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "1"))
        db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("b", "2"))
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("c", "3"))
            with db.transaction():  # nested blocks join the outer transaction
                db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("d", "4"))
            raise RuntimeError("abort")
    assert [r["k"] for r in db.fetchall("SELECT k FROM kv ORDER BY k")] == ["a", "b"]


def test_failed_statement_does_not_poison_later_ones(db: Database) -> None:
    db.executescript(DDL)
    db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "1"))
    with pytest.raises(Exception):
        db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "dup"))
    db.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("b", "2"))
    assert len(db.fetchall("SELECT k FROM kv")) == 2


def test_percent_and_question_marks_in_literals(db: Database) -> None:
    db.executescript(DDL)
    db.execute("INSERT INTO kv (k, v) VALUES ('lit?', ?)", ("100%",))
    assert db.fetchone("SELECT v FROM kv WHERE k LIKE 'lit%' AND v = ?", ("100%",)) == {"v": "100%"}


def test_threads_do_not_interleave_transactions(db: Database) -> None:
    db.executescript(DDL)
    db.execute("INSERT INTO kv (k, v, n) VALUES ('counter', 'c', 0)")

    def bump() -> None:
        for _ in range(20):
            with db.transaction():
                n = db.fetchone("SELECT n FROM kv WHERE k = 'counter'")["n"]
                db.execute("UPDATE kv SET n = ? WHERE k = 'counter'", (n + 1,))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.fetchone("SELECT n FROM kv WHERE k = 'counter'")["n"] == 80


def test_qmark_conversion() -> None:
    assert qmark_to_format("SELECT * FROM t WHERE a = ? AND b LIKE 'x?%'") == \
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x?%%'"


def test_bad_dsn_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError, match="unsupported database DSN"):
        Database.connect("mysql://nope")
    with pytest.raises(DatabaseError, match="cannot connect to PostgreSQL at postgresql://u@127.0.0.1:1"):
        Database.connect("postgresql://u:secret@127.0.0.1:1/x")


def test_sqlite_pragmas_and_persistence(tmp_path) -> None:
    path = tmp_path / "p.db"
    db = Database.connect(f"sqlite:///{path}")
    assert db.fetchone("PRAGMA journal_mode") == {"journal_mode": "wal"}
    assert db.fetchone("PRAGMA synchronous") == {"synchronous": 2}  # FULL
    db.close()


def test_sqlite_write_survives_kill_9(tmp_path) -> None:
    """An acknowledged write is on disk even when the writer dies without closing anything."""
    path = tmp_path / "k.db"
    script = (
        "import os, sys\n"
        "from qmtl.services.storage.sql import Database\n"
        f"db = Database.connect('sqlite:///{path}')\n"
        "db.executescript('CREATE TABLE t (k TEXT PRIMARY KEY)')\n"
        "db.execute('INSERT INTO t (k) VALUES (?)', ('acked',))\n"
        "print('ok', flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok" and proc.returncode == -9
    db = Database.connect(f"sqlite:///{path}")
    assert db.fetchall("SELECT k FROM t") == [{"k": "acked"}]
    db.close()


@pytest.mark.parametrize("dsn, shown", [
    ("postgresql://u:p@ss@db.example:5432/q", "postgresql://u@db.example:5432/q"),
    ("postgresql://u:a@b@c@h/q?sslmode=require", "postgresql://u@h/q?sslmode=require"),
    ("postgresql://u@h/q?password=s3cr@t&sslmode=disable", "postgresql://u@h/q?password=***&sslmode=disable"),
    ("postgresql://h/q", "postgresql://h/q"),
    ("redis://:pw@d@127.0.0.1:6379/0", "redis://@127.0.0.1:6379/0"),
])
def test_redact_never_leaks_a_password(dsn: str, shown: str) -> None:
    """Issue 8 section 5: a password containing '@' leaked its tail through the first-'@' split."""
    from qmtl.services.storage.sql import redact

    out = redact(dsn)
    assert out == shown
    assert not any(secret in out for secret in ("p@ss", "ss@", "a@b", "s3cr", "pw@d", "@d@"))


def test_compress_fast_stores_large_values_with_lz4_on_postgresql(db_backend) -> None:
    """The gateway asks for lz4 on the columns holding submitted documents: on PostgreSQL a stored
    document is then compressed with it (and a second start changes nothing); SQLite has no choice."""
    db = db_backend("lz4")
    db.execute("CREATE TABLE docs (k TEXT PRIMARY KEY, body TEXT NOT NULL, note TEXT)")
    if db.kind == "sqlite":
        assert db.compress_fast("docs", ("body",)) is False
        return
    assert db.compress_fast("docs", ("body",)) is True
    assert db.compress_fast("docs", ("body",)) is True  # already lz4: nothing to alter
    db.execute("INSERT INTO docs (k, body, note) VALUES (?, ?, ?)",
               ("a", '{"nodes": [' + ",".join(f'{{"i": {i}}}' for i in range(5000)) + "]}", "x" * 5000))
    row = db.fetchone("SELECT pg_column_compression(body) AS body, pg_column_compression(note) AS note "
                      "FROM docs")
    assert row == {"body": "lz4", "note": "pglz"}  # only the column asked for
