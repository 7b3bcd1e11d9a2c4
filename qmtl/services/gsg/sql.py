"""The GSG in SQL tables, through the shared ``Database`` seam (SQLite embedded, PostgreSQL in prod).

Tables (schema version 2): ``gsg_node`` (one row per NodeID, with a database-numbered ``id``),
``gsg_strategy`` (one numbered row per strategy id), ``gsg_tag`` (node, tag) so tag queries are index
lookups, ``gsg_edge`` (upstream, downstream) and ``gsg_use`` (node, strategy), the last three keyed by
those numbers.

Why numbers: NodeIDs are content hashes, so rows keyed by them land on a random B-tree page each, and a
200-node submission dirtied (and wrote to the WAL) about one page per row across four trees.  Numbered
in insertion order, a submission's new nodes, edges and uses append at the right edge of their trees;
only the NodeID index itself stays random.  Version 1 (text keys) is upgraded in place by migration 2.

Every insert is ``ON CONFLICT DO NOTHING``: NodeIDs are content addresses, so a second writer of the
same node writes the same row, and concurrent submissions sharing a sub-DAG cannot conflict.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from ..storage.migrations import migrate
from ..storage.sql import Column
from .store import Edge, GraphNode, GraphStore

_DDL_V1 = """
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

# Migration 2: numbered nodes and strategies (see the docstring).  The version-1 rows are copied (nodes
# numbered in NodeID order), the old tables dropped and the new ones take their names.
_DDL_V2 = """
CREATE TABLE gsg_node_v2 (
    id {id_key}, node_id TEXT NOT NULL UNIQUE, op TEXT NOT NULL, interval_s BIGINT, tags TEXT NOT NULL);
CREATE TABLE gsg_strategy (id {id_key}, strategy_id TEXT NOT NULL UNIQUE);
CREATE TABLE gsg_tag_v2 (node BIGINT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (node, tag)){key_table};
CREATE TABLE gsg_edge_v2 (src BIGINT NOT NULL, dst BIGINT NOT NULL, PRIMARY KEY (src, dst)){key_table};
CREATE TABLE gsg_use_v2 (
    node BIGINT NOT NULL, strategy BIGINT NOT NULL, PRIMARY KEY (node, strategy)){key_table};
INSERT INTO gsg_node_v2 (node_id, op, interval_s, tags)
    SELECT node_id, op, interval_s, tags FROM gsg_node ORDER BY node_id;
INSERT INTO gsg_strategy (strategy_id) SELECT DISTINCT strategy_id FROM gsg_use ORDER BY strategy_id;
INSERT INTO gsg_tag_v2 (node, tag) SELECT n.id, t.tag FROM gsg_tag t JOIN gsg_node_v2 n ON n.node_id = t.node_id;
INSERT INTO gsg_edge_v2 (src, dst) SELECT a.id, b.id FROM gsg_edge e
    JOIN gsg_node_v2 a ON a.node_id = e.src JOIN gsg_node_v2 b ON b.node_id = e.dst;
INSERT INTO gsg_use_v2 (node, strategy) SELECT n.id, s.id FROM gsg_use u
    JOIN gsg_node_v2 n ON n.node_id = u.node_id JOIN gsg_strategy s ON s.strategy_id = u.strategy_id;
DROP TABLE gsg_tag;
DROP TABLE gsg_edge;
DROP TABLE gsg_use;
DROP TABLE gsg_node;
ALTER TABLE gsg_node_v2 RENAME TO gsg_node;
ALTER TABLE gsg_tag_v2 RENAME TO gsg_tag;
ALTER TABLE gsg_edge_v2 RENAME TO gsg_edge;
ALTER TABLE gsg_use_v2 RENAME TO gsg_use;
CREATE INDEX gsg_tag_by_tag ON gsg_tag (tag);
"""

_NODE_COLUMNS = (("node_id", "TEXT"), ("op", "TEXT"), ("interval_s", "BIGINT"), ("tags", "TEXT"))
_STRATEGY_COLUMNS = (("strategy_id", "TEXT"),)
_TAG_COLUMNS = (("node", "BIGINT"), ("tag", "TEXT"))
_EDGE_COLUMNS = (("src", "BIGINT"), ("dst", "BIGINT"))
_USE_COLUMNS = (("node", "BIGINT"), ("strategy", "BIGINT"))


def migrations(db: Any) -> tuple[str, ...]:
    """The GSG's schema migrations, in order, spelled for ``db``'s backend."""
    return tuple(ddl.format(key_table=db.key_table, id_key=db.id_key) for ddl in (_DDL_V1, _DDL_V2))


class SqlGraphStore(GraphStore):
    def __init__(self, db: Any) -> None:
        self.db = db
        migrate(self.db, "gsg", migrations(db))

    def upsert(self, strategy_id: str, nodes: Sequence[GraphNode], edges: Sequence[Edge]) -> None:
        """See ``GraphStore.upsert``; an edge must join nodes upserted with it or already in the graph
        (its rows hold the nodes' numbers), else ``ValueError`` and nothing of this upsert is written."""
        if "," in strategy_id:  # ``existing`` reads users back as one comma-joined string
            raise ValueError(f"strategy id {strategy_id!r} must not contain ','")
        # One statement per table; rows sorted by key so concurrent upserts of shared nodes lock
        # rows in the same order (no deadlock on PostgreSQL).
        by_id = {n.node_id: (n.node_id, n.op, n.interval, json.dumps(list(n.tags)) if n.tags else "[]")
                 for n in nodes}  # most nodes have no tags: no json.dumps for each of them
        node_rows = [by_id[k] for k in sorted(by_id)]
        edge_ends = {end for edge in edges for end in edge}
        with self.db.transaction():
            sid = self._keys("gsg_strategy", "strategy_id", _STRATEGY_COLUMNS, [(strategy_id,)], set())
            key = self._keys("gsg_node", "node_id", _NODE_COLUMNS, node_rows, edge_ends - by_id.keys())
            tags = sorted({(key[n.node_id], t) for n in nodes for t in n.tags})
            self.db.insert_many("gsg_tag", _TAG_COLUMNS, tags)
            self.db.insert_many("gsg_edge", _EDGE_COLUMNS, sorted({(key[a], key[b]) for a, b in edges}))
            self.db.insert_many("gsg_use", _USE_COLUMNS, sorted({(key[k], sid[strategy_id]) for k in by_id}))

    def _keys(self, table: str, name: str, columns: Sequence[Column], rows: list[tuple],
              more: set[str]) -> dict[str, int]:
        """Insert ``rows`` (their first column is ``name``) and answer the number of every row's name and
        of the names in ``more``: the inserted rows' numbers come back from the INSERT, the others (rows
        that existed, or another transaction inserted first) are read.  A name of ``more`` that is not in
        the table is refused (an edge must join nodes of the graph)."""
        got = {r[name]: r["id"] for r in self.db.insert_many(table, columns, rows, returning=f"id, {name}")}
        missing = sorted(({r[0] for r in rows} | more) - got.keys())
        if missing:
            where, params = self.db.any_of(name, missing)
            found = self.db.fetchall(f"SELECT id, {name} FROM {table} WHERE {where}", params)
            got.update((r[name], r["id"]) for r in found)
        unknown = [m for m in missing if m not in got]
        if unknown:
            raise ValueError(f"edge names {unknown[0]}, which is neither upserted with it nor in the graph")
        return got

    def existing(self, node_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(dict.fromkeys(node_ids))
        if not ids:
            return {}
        where, params = self.db.any_of("n.node_id", ids)
        # One row per node (its users joined): a popular node's users do not come back row by row.
        # A subquery per node, not a join and GROUP BY: PostgreSQL planned the join as a scan of the
        # whole use table (time growing with the graph, not the submission); this form can only be
        # answered through the (node, strategy) key, so it costs the same however big the graph is.
        users = self.db.list_agg("s.strategy_id")
        found: dict[str, list[str]] = {}
        for row in self.db.fetchall(
                f"SELECT n.node_id AS node_id, (SELECT {users} FROM gsg_use u JOIN gsg_strategy s "
                f"ON s.id = u.strategy WHERE u.node = n.id) AS users FROM gsg_node n WHERE {where}", params):
            found[row["node_id"]] = row["users"].split(",") if row["users"] else []
        return {k: sorted(v) for k, v in found.items()}

    def dependents(self, node_id: str) -> list[str]:
        rows = self.db.fetchall(
            "WITH RECURSIVE down(id) AS ("
            " SELECT e.dst FROM gsg_edge e JOIN gsg_node n ON e.src = n.id WHERE n.node_id = ?"
            " UNION SELECT e.dst FROM gsg_edge e JOIN down d ON e.src = d.id)"
            " SELECT n.node_id FROM down JOIN gsg_node n ON n.id = down.id", (node_id,))
        return sorted(r["node_id"] for r in rows)

    def _select_by_tag(self, tags: list[str], require_all: bool,
                       interval: int | None) -> list[GraphNode]:
        marks = ",".join("?" * len(tags))
        having = f" HAVING COUNT(DISTINCT t.tag) = {len(tags)}" if require_all else ""
        sql = (f"SELECT n.node_id, n.op, n.interval_s, n.tags FROM gsg_node n WHERE n.id IN ("
               f"SELECT t.node FROM gsg_tag t WHERE t.tag IN ({marks}) GROUP BY t.node{having})")
        params: tuple = tuple(tags)
        if interval is not None:
            sql += " AND n.interval_s = ?"
            params += (interval,)
        rows = self.db.fetchall(sql + " ORDER BY n.node_id", params)
        return [GraphNode(r["node_id"], r["op"], r["interval_s"], tuple(json.loads(r["tags"])))
                for r in rows]
