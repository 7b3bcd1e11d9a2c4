"""The GSG in Neo4j (prod, when ``gateway.neo4j_uri`` is set), with the official driver.

``(:QmtlNode {node_id})-[:FEEDS]->(:QmtlNode)`` for edges and ``(:QmtlStrategy {id})-[:USES]->`` for
users; every write is a ``MERGE`` so repeated and concurrent upserts converge on one node per NodeID.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .store import Edge, GraphNode, GraphStore

_SCHEMA = (
    "CREATE CONSTRAINT qmtl_node_id IF NOT EXISTS FOR (n:QmtlNode) REQUIRE n.node_id IS UNIQUE",
    "CREATE CONSTRAINT qmtl_strategy_id IF NOT EXISTS FOR (s:QmtlStrategy) REQUIRE s.id IS UNIQUE",
)

_UPSERT_NODES = """
UNWIND $nodes AS row
MERGE (n:QmtlNode {node_id: row.node_id})
  ON CREATE SET n.op = row.op, n.interval = row.interval, n.tags = row.tags
WITH n
MATCH (s:QmtlStrategy {id: $sid})
MERGE (s)-[:USES]->(n)
"""

_UPSERT_EDGES = """
UNWIND $edges AS e
MATCH (a:QmtlNode {node_id: e[0]}), (b:QmtlNode {node_id: e[1]})
MERGE (a)-[:FEEDS]->(b)
"""


class Neo4jGraphStore(GraphStore):
    def __init__(self, uri: str, auth: tuple[str, str] | None) -> None:
        import neo4j  # imported here so the embedded profile never needs the driver loaded

        self.driver = neo4j.GraphDatabase.driver(uri, auth=auth)
        self.driver.verify_connectivity()
        for stmt in _SCHEMA:
            self.driver.execute_query(stmt)

    def upsert(self, strategy_id: str, nodes: Sequence[GraphNode], edges: Sequence[Edge]) -> None:
        rows = [{"node_id": n.node_id, "op": n.op, "interval": n.interval, "tags": list(n.tags)}
                for n in nodes]
        with self.driver.session() as session:
            session.execute_write(self._write, strategy_id, rows, [list(e) for e in edges])

    @staticmethod
    def _write(tx, strategy_id: str, rows: list[dict], edges: list[list[str]]) -> None:
        tx.run("MERGE (:QmtlStrategy {id: $sid})", sid=strategy_id)
        tx.run(_UPSERT_NODES, nodes=rows, sid=strategy_id)
        tx.run(_UPSERT_EDGES, edges=edges)

    def existing(self, node_ids: Iterable[str]) -> dict[str, list[str]]:
        records, _, _ = self.driver.execute_query(
            "MATCH (n:QmtlNode) WHERE n.node_id IN $ids "
            "OPTIONAL MATCH (s:QmtlStrategy)-[:USES]->(n) "
            "RETURN n.node_id AS id, collect(s.id) AS users", ids=list(node_ids))
        return {r["id"]: sorted(r["users"]) for r in records}

    def dependents(self, node_id: str) -> list[str]:
        records, _, _ = self.driver.execute_query(
            "MATCH (:QmtlNode {node_id: $id})-[:FEEDS*1..]->(m:QmtlNode) "
            "RETURN DISTINCT m.node_id AS id", id=node_id)
        return sorted(r["id"] for r in records)

    def _select_by_tag(self, tags: list[str], require_all: bool,
                       interval: int | None) -> list[GraphNode]:
        quantifier = "all" if require_all else "any"
        records, _, _ = self.driver.execute_query(
            f"MATCH (n:QmtlNode) WHERE size(n.tags) > 0 AND {quantifier}(t IN $tags WHERE t IN n.tags) "
            "AND ($interval IS NULL OR n.interval = $interval) "
            "RETURN n.node_id AS id, n.op AS op, n.interval AS interval, n.tags AS tags ORDER BY id",
            tags=tags, interval=interval)
        return [GraphNode(r["id"], r["op"], r["interval"], tuple(r["tags"])) for r in records]

    def close(self) -> None:
        self.driver.close()
