"""Schema versions: each component (``worldservice``, ``gateway``, ``gsg``) keeps its version in
``qmtl_schema`` and brings an existing database up to date with its ordered migrations.

``CREATE TABLE IF NOT EXISTS`` alone never changes a table that exists, so a schema change would not
reach a database made by an older qmtl; a migration does.  Migration 1 of every component is its
original DDL (all ``IF NOT EXISTS``), so a database made before versions existed (no row, version 0)
is adopted as it is and then migrated.  All pending migrations and the new version commit in one
transaction.  A database whose version is newer than the code is refused: an older qmtl must not write
to tables it does not understand.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sql import Database, DatabaseError

_TABLE = ("CREATE TABLE IF NOT EXISTS qmtl_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL, "
          "updated_at DOUBLE PRECISION NOT NULL)")


class SchemaTooNew(DatabaseError):
    """The database was migrated by a newer qmtl than this one."""


def schema_version(db: Database, component: str) -> int:
    db.execute(_TABLE)
    row = db.fetchone("SELECT version FROM qmtl_schema WHERE component = ?", (component,))
    return int(row["version"]) if row else 0


def migrate(db: Database, component: str, migrations: Sequence[str]) -> int:
    """Apply ``migrations[current:]`` (each a ``;``-separated script); returns the version reached."""
    import time

    target = len(migrations)
    db.execute(_TABLE)
    with db.transaction():
        if db.kind == "postgresql":  # two services starting at once: one migrates, the other waits
            db.execute("LOCK TABLE qmtl_schema IN EXCLUSIVE MODE")
        current = schema_version(db, component)
        if current > target:
            raise SchemaTooNew(f"the {component} database schema is at version {current}, newer than this "
                               f"qmtl knows ({target}); upgrade qmtl rather than run an older one on it")
        for script in migrations[current:]:
            db.executescript(script)
        if current < target:
            db.execute("INSERT INTO qmtl_schema (component, version, updated_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
                       "updated_at = excluded.updated_at", (component, target, time.time()))
    return target
