"""The global strategy graph store on SQLite and PostgreSQL (and Neo4j when a server is given)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from qmtl.services.gsg import GraphNode, GraphStore, SqlGraphStore

A, B, C, D, E = (f"blake3:{c * 64}" for c in "abcde")


def _nodes() -> list[GraphNode]:
    return [GraphNode(A, "stream_input", 60, ("BTC", "price")),
            GraphNode(B, "column", 60),
            GraphNode(C, "rolling_mean", 60),
            GraphNode(D, "stream_input", 300, ("ETH", "price")),
            GraphNode(E, "sub", 60)]


_EDGES = [(A, B), (B, C), (C, E), (B, E)]


def _check_store(store: GraphStore) -> None:
    assert store.existing([A, B]) == {}
    store.upsert("s1", _nodes()[:3], _EDGES[:2])
    assert store.existing([A, B, D]) == {A: ["s1"], B: ["s1"]}
    store.upsert("s2", [_nodes()[0], _nodes()[1], _nodes()[4]], [(A, B), (B, E)])
    store.upsert("s2", [_nodes()[0]], [])  # repeating is a no-op, not a second user
    assert store.existing([A, C, E]) == {A: ["s1", "s2"], C: ["s1"], E: ["s2"]}
    store.upsert("s3", [_nodes()[3]], [])
    assert store.dependents(A) == sorted([B, C, E])
    assert store.dependents(C) == []
    assert store.dependents(E) == []
    assert store.dependents("blake3:unknown") == []
    assert [n.node_id for n in store.by_tag(["BTC"])] == [A]
    assert [n.node_id for n in store.by_tag(["price"])] == [A, D]
    assert [n.node_id for n in store.by_tag(["price"], interval=300)] == [D]
    assert [n.node_id for n in store.by_tag(["BTC", "ETH"], "any")] == [A, D]
    assert store.by_tag(["BTC", "ETH"], "all") == []
    assert store.by_tag(["BTC", "price"], "all") == [GraphNode(A, "stream_input", 60, ("BTC", "price"))]
    assert store.by_tag([]) == []
    with pytest.raises(ValueError, match="match_mode"):
        store.by_tag(["BTC"], "some")


def test_sql_graph_store(db_backend) -> None:
    _check_store(SqlGraphStore(db_backend("gsg")))


def test_sql_graph_store_survives_reopen(tmp_path) -> None:
    from qmtl.services.storage.sql import Database

    dsn = f"sqlite:///{tmp_path / 'gsg.db'}"
    db = Database.connect(dsn)
    SqlGraphStore(db).upsert("s1", _nodes()[:2], [(A, B)])
    db.close()
    again = SqlGraphStore(Database.connect(dsn))
    assert again.existing([A, B]) == {A: ["s1"], B: ["s1"]}
    assert again.dependents(A) == [B]


def test_concurrent_upserts_of_a_shared_node_converge(db_backend) -> None:
    # 8 PostgreSQL connections: upserts that lose the race to insert a shared node read its number
    store = SqlGraphStore(db_backend("gsg", pool_size=8))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.upsert(f"s{i}", _nodes()[:2] + [GraphNode(f"blake3:{i:064x}", "sub")],
                                             [(A, B), (B, f"blake3:{i:064x}")]), range(16)))
    assert store.existing([A]) == {A: sorted(f"s{i}" for i in range(16))}
    assert store.dependents(A) == sorted([B] + [f"blake3:{i:064x}" for i in range(16)])
    assert store.db.fetchone("SELECT COUNT(*) AS n FROM gsg_node")["n"] == 18


def test_an_edge_to_a_node_the_graph_lacks_is_refused_and_nothing_is_written(db_backend) -> None:
    store = SqlGraphStore(db_backend("gsg"))
    store.upsert("s1", _nodes()[:1], [])
    with pytest.raises(ValueError, match=f"edge names {C}"):
        store.upsert("s2", _nodes()[1:2], [(A, B), (B, C)])
    assert store.existing([A, B]) == {A: ["s1"]}
    store.upsert("s2", _nodes()[1:3], [(A, B), (B, C)])  # C upserted with it: accepted
    assert store.dependents(A) == [B, C]


def test_neo4j_graph_store() -> None:
    uri = os.environ.get("QMTL_NEO4J_URI")
    if not uri:
        # Neo4j is optional even under QMTL_REQUIRE_SERVICES: the SQL store is the default GSG.
        pytest.skip("no Neo4j server: set QMTL_NEO4J_URI (and QMTL_NEO4J_USER/PASSWORD) to run")
    from qmtl.services.gsg.neo4j_store import Neo4jGraphStore

    auth = (os.environ.get("QMTL_NEO4J_USER", "neo4j"), os.environ.get("QMTL_NEO4J_PASSWORD", ""))
    store = Neo4jGraphStore(uri, auth)
    try:
        store.driver.execute_query("MATCH (n) WHERE n:QmtlNode OR n:QmtlStrategy DETACH DELETE n")
        _check_store(store)
    finally:
        store.close()
