"""The GSG in SQL tables, through the shared ``Database`` seam (SQLite embedded, PostgreSQL in prod).

Tables: ``gsg_node`` (one row per NodeID), ``gsg_tag`` (node, tag) so tag queries are index lookups,
``gsg_edge`` (upstream, downstream) and ``gsg_use`` (node, strategy).  Every insert is
``ON CONFLICT DO NOTHING``: NodeIDs are content addresses, so a second writer of the same node writes
the same row, and concurrent submissions sharing a sub-DAG cannot conflict.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from ..storage.migrations import migrate
from .store import Edge, GraphNode, GraphStore

_DDL = """
CREATE TABLE IF NOT EXISTS gsg_node (
    node_id TEXT PRIMARY KEY, op TEXT NOT NULL, interval_s BIGINT, tags TEXT NOT NULL){key_table};
CREATE TABLE IF NOT EXISTS gsg_tag (
    node_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (node_id, tag)){key_table};
CREATE INDEX IF NOT EXISTS gsg_tag_by_tag ON gsg_tag (tag);
CREATE TABLE IF NOT EXISTS gsg_edge (
    src TEXT NOT NULL, dst TEXT NOT NULL, PRIMARY KEY (src, dst)){key_table};
CREATE TABLE IF NOT EXISTS gsg_use (
    node_id TEXT NOT NULL, strategy_id TEXT NOT NULL, PRIMARY KEY (node_id, strategy_id)){key_table};
"""

_NODE_COLUMNS = (("node_id", "TEXT"), ("op", "TEXT"), ("interval_s", "BIGINT"), ("tags", "TEXT"))
_TAG_COLUMNS = (("node_id", "TEXT"), ("tag", "TEXT"))
_EDGE_COLUMNS = (("src", "TEXT"), ("dst", "TEXT"))
_USE_COLUMNS = (("node_id", "TEXT"), ("strategy_id", "TEXT"))


class SqlGraphStore(GraphStore):
    def __init__(self, db: Any) -> None:
        self.db = db
        migrate(self.db, "gsg", (_DDL.format(key_table=db.key_table),))

    def upsert(self, strategy_id: str, nodes: Sequence[GraphNode], edges: Sequence[Edge]) -> None:
        if "," in strategy_id:  # ``existing`` reads users back as one comma-joined string
            raise ValueError(f"strategy id {strategy_id!r} must not contain ','")
        # One statement per table; rows sorted by key so concurrent upserts of shared nodes lock
        # rows in the same order (no deadlock on PostgreSQL).
        by_id = {n.node_id: (n.node_id, n.op, n.interval, json.dumps(list(n.tags))) for n in nodes}
        node_rows = [by_id[k] for k in sorted(by_id)]
        tag_rows = sorted({(n.node_id, t) for n in nodes for t in n.tags})
        use_rows = sorted({(n.node_id, strategy_id) for n in nodes})
        with self.db.transaction():
            self.db.insert_many("gsg_node", _NODE_COLUMNS, node_rows)
            self.db.insert_many("gsg_tag", _TAG_COLUMNS, tag_rows)
            self.db.insert_many("gsg_edge", _EDGE_COLUMNS, sorted(set(edges)))
            self.db.insert_many("gsg_use", _USE_COLUMNS, use_rows)

    def existing(self, node_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(dict.fromkeys(node_ids))
        if not ids:
            return {}
        where, params = self.db.any_of("n.node_id", ids)
        # One row per node (its users joined): a popular node's users do not come back row by row.
        users = self.db.list_agg("u.strategy_id")
        found: dict[str, list[str]] = {}
        for row in self.db.fetchall(
                f"SELECT n.node_id AS node_id, {users} AS users FROM gsg_node n "
                f"LEFT JOIN gsg_use u ON u.node_id = n.node_id WHERE {where} GROUP BY n.node_id",
                params):
            found[row["node_id"]] = row["users"].split(",") if row["users"] else []
        return {k: sorted(v) for k, v in found.items()}

    def dependents(self, node_id: str) -> list[str]:
        rows = self.db.fetchall(
            "WITH RECURSIVE down(id) AS ("
            " SELECT dst FROM gsg_edge WHERE src = ?"
            " UNION SELECT e.dst FROM gsg_edge e JOIN down d ON e.src = d.id)"
            " SELECT id FROM down", (node_id,))
        return sorted(r["id"] for r in rows)

    def _select_by_tag(self, tags: list[str], require_all: bool,
                       interval: int | None) -> list[GraphNode]:
        marks = ",".join("?" * len(tags))
        having = f" HAVING COUNT(DISTINCT t.tag) = {len(tags)}" if require_all else ""
        sql = (f"SELECT n.node_id, n.op, n.interval_s, n.tags FROM gsg_node n WHERE n.node_id IN ("
               f"SELECT t.node_id FROM gsg_tag t WHERE t.tag IN ({marks}) GROUP BY t.node_id{having})")
        params: tuple = tuple(tags)
        if interval is not None:
            sql += " AND n.interval_s = ?"
            params += (interval,)
        rows = self.db.fetchall(sql + " ORDER BY n.node_id", params)
        return [GraphNode(r["node_id"], r["op"], r["interval_s"], tuple(json.loads(r["tags"])))
                for r in rows]
