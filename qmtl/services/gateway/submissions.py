"""Recording submissions: diff against the GSG, upsert it, and persist the strategy — one transaction.

When the GSG lives in the same SQL database (the embedded default), the diff, the graph upsert and the
strategy row commit together, so an acknowledged submission is never half-written; with Neo4j the
graph upsert is idempotent and is simply redone by a client's retry.

Queue names are a function of (world, execution domain, node) (``queue_name``), so they are not
stored per node: a submission records one ``gw_domain`` row per world it was bound to with the domain
it got, and ``queues_for`` derives the queues of a node from the strategies the graph says use it.
Databases written before (schema version 1) keep their ``gw_queue`` rows, which are still read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ..gsg.store import Edge, GraphNode, GraphStore
from ..storage.migrations import migrate
from .verify import VerifiedDag

_DDL = """
CREATE TABLE IF NOT EXISTS gw_strategy (
    strategy_id TEXT PRIMARY KEY, checksum TEXT NOT NULL, dag TEXT NOT NULL, meta TEXT NOT NULL,
    nodes TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS gw_binding (
    strategy_id TEXT NOT NULL, world_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (strategy_id, world_id)){key_table};
CREATE TABLE IF NOT EXISTS gw_queue (
    world_id TEXT NOT NULL, node_id TEXT NOT NULL, domain TEXT NOT NULL, queue TEXT NOT NULL,
    PRIMARY KEY (world_id, node_id, domain)){key_table};
"""

# Migration 2: the domain each strategy got per world replaces per-node queue rows (see the docstring).
_DOMAIN_DDL = """
CREATE TABLE IF NOT EXISTS gw_domain (
    strategy_id TEXT NOT NULL, world_id TEXT NOT NULL, domain TEXT NOT NULL,
    PRIMARY KEY (strategy_id, world_id, domain)){key_table};
"""


def migrations(key_table: str) -> tuple[str, ...]:
    """The gateway's schema migrations, in order (``key_table``: the backend's ``Database.key_table``)."""
    return _DDL.format(key_table=key_table), _DOMAIN_DDL.format(key_table=key_table)


_BINDING_COLUMNS = (("strategy_id", "TEXT"), ("world_id", "TEXT"), ("created_at", "DOUBLE PRECISION"))
_DOMAIN_COLUMNS = (("strategy_id", "TEXT"), ("world_id", "TEXT"), ("domain", "TEXT"))


def queue_name(world_id: str, domain: str, node_id: str) -> str:
    return f"{world_id}.{domain}.{node_id.removeprefix('blake3:')[:12]}"


@dataclass(frozen=True)
class Recorded:
    strategy_id: str
    created: bool
    nodes: list[dict[str, Any]]  # node_id, name, op, status, used_by
    queues: dict[str, dict[str, str]]  # world -> node_id -> queue


class SubmissionStore:
    def __init__(self, db: Any, gsg: GraphStore) -> None:
        self.db = db
        self.gsg = gsg
        migrate(self.db, "gateway", migrations(db.key_table))
        # The submitted document and the node statuses are most of a submission's bytes.
        db.compress_fast("gw_strategy", ("dag", "nodes"))

    def record(self, dag: VerifiedDag, doc_json: str, meta: dict[str, Any],
               domains: dict[str, str]) -> Recorded:
        """Diff, upsert and persist in one transaction (run again if it lost a deadlock).

        ``doc_json`` is the submitted DAG document as JSON text, stored as given.
        """
        # Everything that does not depend on the database is prepared before the transaction: the
        # writer is held (and every other submission waits) only for the reads and writes.
        graph = dag.graph_nodes(), dag.edges()
        meta_json = json.dumps(meta)
        queues = {w: {n.node_id: queue_name(w, d, n.node_id) for n in dag.nodes} for w, d in domains.items()}
        return self.db.run_transaction(lambda: self._record(dag, graph, doc_json, meta_json, domains, queues))

    def _record(self, dag: VerifiedDag, graph: tuple[list[GraphNode], list[Edge]], doc_json: str,
                meta_json: str, domains: dict[str, str], queues: dict[str, dict[str, str]]) -> Recorded:
        sid = dag.strategy_id
        ids = [n.node_id for n in dag.nodes]
        now = time.time()
        before = self.gsg.existing(ids)
        self.gsg.upsert(sid, *graph)
        nodes = [{"node_id": n.node_id, "name": n.name, "op": n.op,
                  "status": "existing" if n.node_id in before else "new",
                  "used_by": sorted(set(before.get(n.node_id, [])) | {sid})} for n in dag.nodes]
        statuses = [{k: n[k] for k in ("node_id", "name", "op", "status")} for n in nodes]
        # RETURNING tells whether THIS transaction created the row: two concurrent submissions of one
        # strategy cannot both answer "created".
        created = bool(self.db.fetchall(
            "INSERT INTO gw_strategy (strategy_id, checksum, dag, meta, nodes, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING strategy_id",
            (sid, dag.checksum, doc_json, meta_json, json.dumps(statuses), now)))
        self.db.insert_many("gw_binding", _BINDING_COLUMNS,
                            sorted((sid, world, now) for world in domains))
        self.db.insert_many("gw_domain", _DOMAIN_COLUMNS,
                            sorted((sid, world, domain) for world, domain in domains.items()))
        return Recorded(sid, created, nodes, queues)

    def get(self, strategy_id: str) -> dict[str, Any] | None:
        row = self.db.fetchone("SELECT * FROM gw_strategy WHERE strategy_id = ?", (strategy_id,))
        if row is None:
            return None
        worlds = self.db.fetchall("SELECT world_id FROM gw_binding WHERE strategy_id = ? "
                                  "ORDER BY created_at, world_id", (strategy_id,))
        return {"strategy_id": strategy_id, "checksum": row["checksum"], "dag": json.loads(row["dag"]),
                "world_ids": [w["world_id"] for w in worlds], "meta": json.loads(row["meta"]),
                "nodes": json.loads(row["nodes"]), "created_at": row["created_at"]}

    def count(self) -> int:
        row = self.db.fetchone("SELECT COUNT(*) AS n FROM gw_strategy")
        return int(row["n"]) if row else 0

    def queues_for(self, node_ids: list[str], world_id: str | None) -> list[dict[str, str]]:
        """Every (world, node, domain) queue of ``node_ids`` (in ``world_id`` only, when given), sorted by
        node, world and domain: derived from the strategies using each node and the domains they got,
        plus the per-node rows of databases written before those were kept."""
        if not node_ids:
            return []
        found: set[tuple[str, str, str]] = set()  # (node, world, domain)
        users = self.gsg.existing(node_ids)
        strategies = sorted({s for sids in users.values() for s in sids})
        if strategies:
            where, params = self.db.any_of("strategy_id", strategies)
            sql = f"SELECT strategy_id, world_id, domain FROM gw_domain WHERE {where}"
            if world_id is not None:
                sql, params = sql + " AND world_id = ?", (*params, world_id)
            got: dict[str, list[tuple[str, str]]] = {}
            for r in self.db.fetchall(sql, params):
                got.setdefault(r["strategy_id"], []).append((r["world_id"], r["domain"]))
            found.update((node, w, d) for node, sids in users.items() for s in sids for w, d in got.get(s, ()))
        where, params = self.db.any_of("node_id", node_ids)
        sql = f"SELECT world_id, node_id, domain FROM gw_queue WHERE {where}"
        if world_id is not None:
            sql, params = sql + " AND world_id = ?", (*params, world_id)
        found.update((r["node_id"], r["world_id"], r["domain"]) for r in self.db.fetchall(sql, params))
        return [{"world_id": w, "node_id": n, "domain": d, "queue": queue_name(w, d, n)}
                for n, w, d in sorted(found)]
