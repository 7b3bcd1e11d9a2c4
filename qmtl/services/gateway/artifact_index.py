"""The index of stored feature artifacts, kept with the global strategy graph (the gateway's database).

Runs write node values to an artifact store (``qmtl.runtime.artifacts``: a directory, or an object
store several machines share); the runner then registers what it wrote here, keyed like the store by
``(NodeID, dataset_fingerprint)``.  The gateway answers a submission with, per node, the artifact
holding its values on the submitted data (when the submitter sends its nodes' fingerprints), and
tells ``qmtl artifacts gc`` which artifacts belong to nodes a strategy bound to a world still uses.
Rows are immutable: a key names one content, so a second registration changes nothing.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from ..gsg.store import GraphStore
from ..storage.migrations import migrate

_DDL = """
CREATE TABLE IF NOT EXISTS gw_artifact (
    node_id TEXT NOT NULL, fingerprint TEXT NOT NULL, location TEXT NOT NULL, bytes BIGINT NOT NULL,
    rows_ BIGINT NOT NULL, name TEXT NOT NULL, strategy TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (node_id, fingerprint)){key_table};
"""
_COLUMNS = (("node_id", "TEXT"), ("fingerprint", "TEXT"), ("location", "TEXT"), ("bytes", "BIGINT"),
            ("rows_", "BIGINT"), ("name", "TEXT"), ("strategy", "TEXT"), ("created_at", "DOUBLE PRECISION"))


class ArtifactIndex:
    def __init__(self, db: Any, gsg: GraphStore) -> None:
        self.db, self.gsg = db, gsg
        migrate(db, "artifacts", (_DDL.format(key_table=db.key_table),))

    def record(self, artifacts: Iterable[dict[str, Any]]) -> int:
        now = time.time()
        rows = sorted({(a["node_id"], a["fingerprint"]): (a["node_id"], a["fingerprint"], a["location"],
                                                          a["bytes"], a["rows"], a.get("name") or "",
                                                          a.get("strategy") or "", now)
                       for a in artifacts}.values())
        with self.db.transaction():
            self.db.insert_many("gw_artifact", _COLUMNS, rows)
        return len(rows)

    def lookup(self, wanted: dict[str, str]) -> dict[str, str]:
        """NodeID → location of the artifact holding its values on the data ``wanted`` names
        (NodeID → fingerprint), for those the index has."""
        if not wanted:
            return {}
        where, params = self.db.any_of("node_id", sorted(wanted))
        rows = self.db.fetchall(f"SELECT node_id, fingerprint, location FROM gw_artifact WHERE {where}", params)
        return {r["node_id"]: r["location"] for r in rows if wanted.get(r["node_id"]) == r["fingerprint"]}

    def listing(self, node_id: str | None, limit: int) -> list[dict[str, Any]]:
        sql = "SELECT * FROM gw_artifact"
        params: tuple = ()
        if node_id is not None:
            sql += " WHERE node_id = ?"
            params = (node_id,)
        rows = self.db.fetchall(sql + " ORDER BY node_id, fingerprint LIMIT ?", (*params, limit))
        users = self.gsg.existing([r["node_id"] for r in rows])
        bound = self._bound(sorted({s for us in users.values() for s in us}))
        return [{"node_id": r["node_id"], "fingerprint": r["fingerprint"], "location": r["location"],
                 "bytes": r["bytes"], "rows": r["rows_"], "name": r["name"], "strategy": r["strategy"],
                 "created_at": r["created_at"],
                 "used_by": [s for s in users.get(r["node_id"], []) if s in bound]} for r in rows]

    def _bound(self, strategy_ids: list[str]) -> set[str]:
        """The strategies among ``strategy_ids`` bound to some world."""
        if not strategy_ids:
            return set()
        where, params = self.db.any_of("strategy_id", strategy_ids)
        return {r["strategy_id"] for r in self.db.fetchall(
            f"SELECT DISTINCT strategy_id FROM gw_binding WHERE {where}", params)}
