"""The GSG in SQL tables, through the shared ``Database`` seam (SQLite embedded, PostgreSQL in prod).

Tables: ``gsg_node`` (one row per NodeID), ``gsg_tag`` (node, tag) so tag queries are index lookups,
``gsg_edge`` (upstream, downstream) and ``gsg_use`` (node, strategy).  Every insert is
``ON CONFLICT DO NOTHING``: NodeIDs are content addresses, so a second writer of the same node writes
the same row, and concurrent submissions sharing a sub-DAG cannot conflict.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from .store import Edge, GraphNode, GraphStore, check_match_mode

_DDL = """
CREATE TABLE IF NOT EXISTS gsg_node (
    node_id TEXT PRIMARY KEY, op TEXT NOT NULL, interval_s BIGINT, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gsg_tag (
    node_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (node_id, tag));
CREATE INDEX IF NOT EXISTS gsg_tag_by_tag ON gsg_tag (tag);
CREATE TABLE IF NOT EXISTS gsg_edge (
    src TEXT NOT NULL, dst TEXT NOT NULL, PRIMARY KEY (src, dst));
CREATE TABLE IF NOT EXISTS gsg_use (
    node_id TEXT NOT NULL, strategy_id TEXT NOT NULL, PRIMARY KEY (node_id, strategy_id));
"""

# Rows per multi-row INSERT: keeps statements well under SQLite's bound-parameter limit.
_CHUNK = 200


class SqlGraphStore(GraphStore):
    def __init__(self, db: Any) -> None:
        self.db = db
        self.db.executescript(_DDL)

    def upsert(self, strategy_id: str, nodes: Sequence[GraphNode], edges: Sequence[Edge]) -> None:
        node_rows = [(n.node_id, n.op, n.interval, json.dumps(list(n.tags))) for n in nodes]
        tag_rows = [(n.node_id, t) for n in nodes for t in n.tags]
        use_rows = [(n.node_id, strategy_id) for n in nodes]
        with self.db.transaction():
            self._insert("gsg_node", ("node_id", "op", "interval_s", "tags"), node_rows)
            self._insert("gsg_tag", ("node_id", "tag"), tag_rows)
            self._insert("gsg_edge", ("src", "dst"), list(edges))
            self._insert("gsg_use", ("node_id", "strategy_id"), use_rows)

    def _insert(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        row_sql = "(" + ",".join("?" * len(columns)) + ")"
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i:i + _CHUNK]
            sql = (f"INSERT INTO {table} ({','.join(columns)}) VALUES "
                   + ",".join([row_sql] * len(chunk)) + " ON CONFLICT DO NOTHING")
            self.db.execute(sql, tuple(v for row in chunk for v in row))

    def existing(self, node_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(dict.fromkeys(node_ids))
        found: dict[str, list[str]] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.db.fetchall(f"SELECT node_id FROM gsg_node WHERE node_id IN ({marks})",
                                        tuple(chunk)):
                found[row["node_id"]] = []
            for row in self.db.fetchall(
                    f"SELECT node_id, strategy_id FROM gsg_use WHERE node_id IN ({marks})", tuple(chunk)):
                found.setdefault(row["node_id"], []).append(row["strategy_id"])
        return {k: sorted(v) for k, v in found.items()}

    def dependents(self, node_id: str) -> list[str]:
        rows = self.db.fetchall(
            "WITH RECURSIVE down(id) AS ("
            " SELECT dst FROM gsg_edge WHERE src = ?"
            " UNION SELECT e.dst FROM gsg_edge e JOIN down d ON e.src = d.id)"
            " SELECT id FROM down", (node_id,))
        return sorted(r["id"] for r in rows)

    def by_tag(self, tags: Sequence[str], match_mode: str = "any",
               interval: int | None = None) -> list[GraphNode]:
        check_match_mode(match_mode)
        wanted = sorted(set(tags))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        having = f" HAVING COUNT(DISTINCT t.tag) = {len(wanted)}" if match_mode == "all" else ""
        sql = (f"SELECT n.node_id, n.op, n.interval_s, n.tags FROM gsg_node n WHERE n.node_id IN ("
               f"SELECT t.node_id FROM gsg_tag t WHERE t.tag IN ({marks}) GROUP BY t.node_id{having})")
        params: tuple = tuple(wanted)
        if interval is not None:
            sql += " AND n.interval_s = ?"
            params += (interval,)
        rows = self.db.fetchall(sql + " ORDER BY n.node_id", params)
        return [GraphNode(r["node_id"], r["op"], r["interval_s"], tuple(json.loads(r["tags"])))
                for r in rows]
