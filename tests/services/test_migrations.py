"""Issue 8 section 5: schema versions and migrations reach existing databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from qmtl.services.storage.migrations import SchemaTooNew, schema_version
from qmtl.services.worldservice.store import MIGRATIONS, SCHEMA, WorldStore


def test_a_database_from_before_versions_is_adopted_and_migrated(db_backend) -> None:
    db = db_backend("old")
    db.executescript(SCHEMA)  # what an older qmtl created: version-1 tables, no qmtl_schema row
    db.execute("INSERT INTO ws_worlds (id, name, description, allow_live, policy, decision_ttl, created_at,"
               " updated_at) VALUES ('w1', NULL, NULL, 0, '{}', 300, 1.0, 1.0)")
    store = WorldStore(db)
    assert schema_version(db, "worldservice") == len(MIGRATIONS) == 2
    assert store.get_world("w1")["id"] == "w1"  # data kept
    store.put_strategy_metrics("w1", "s", {"metrics": {}, "returns": None, "as_of": None,
                                           "dataset_fingerprint": None, "synthetic": False, "updated_at": 2.0})
    assert [m["strategy_id"] for m in store.strategy_metrics("w1")] == ["s"]  # the version-2 table
    WorldStore(db)  # a second start changes nothing
    assert schema_version(db, "worldservice") == 2


def test_a_newer_schema_is_refused(db_backend) -> None:
    db = db_backend("new")
    WorldStore(db)
    db.execute("UPDATE qmtl_schema SET version = 99 WHERE component = 'worldservice'")
    with pytest.raises(SchemaTooNew, match="version 99"):
        WorldStore(db)


def test_every_component_records_its_version(db_backend) -> None:
    from qmtl.services.gateway.submissions import SubmissionStore
    from qmtl.services.gsg import SqlGraphStore

    db = db_backend("all")
    SubmissionStore(db, SqlGraphStore(db))
    WorldStore(db)
    rows = {r["component"]: r["version"] for r in db.fetchall("SELECT component, version FROM qmtl_schema")}
    assert rows == {"gsg": 2, "gateway": 2, "worldservice": 2}


def test_gateway_queues_written_before_version_2_stay_readable(db_backend) -> None:
    """Version 2 stops writing one queue row per node (queues are derived from the domain each
    strategy got); the rows a version-1 gateway wrote are still answered, next to derived ones."""
    from qmtl.services.gateway.app import parse_submission
    from qmtl.services.gateway.sample_dags import chain_dag
    from qmtl.services.gateway.submissions import SubmissionStore, migrations, queue_name
    from qmtl.services.gateway.verify import verify_submission
    from qmtl.services.gsg import SqlGraphStore
    from qmtl.services.storage.migrations import migrate

    db = db_backend("gw1")
    migrate(db, "gateway", migrations(db.key_table)[:1])
    db.execute("INSERT INTO gw_queue (world_id, node_id, domain, queue) VALUES (?, ?, ?, ?)",
               ("old", "blake3:" + "a" * 64, "live", queue_name("old", "live", "blake3:" + "a" * 64)))
    store = SubmissionStore(db, SqlGraphStore(db))
    assert schema_version(db, "gateway") == 2
    req = parse_submission(__import__("json").dumps({"dag": chain_dag("q", 4), "world_ids": ["w"]}).encode())
    dag = verify_submission(req)
    store.record(dag, "{}", {}, {"w": "backtest", "v": "dryrun"})
    src = dag.nodes[0].node_id
    got = store.queues_for([src, "blake3:" + "a" * 64], None)
    assert [(q["node_id"], q["world_id"], q["domain"]) for q in got] == sorted(
        [("blake3:" + "a" * 64, "old", "live"), (src, "v", "dryrun"), (src, "w", "backtest")])
    assert all(q["queue"] == queue_name(q["world_id"], q["domain"], q["node_id"]) for q in got)
    assert [q["world_id"] for q in store.queues_for([src], "w")] == ["w"]


def test_a_version_1_graph_is_renumbered_with_its_nodes_edges_tags_and_users(db_backend) -> None:
    """GSG version 2 keys edges, uses and tags by numbers the database assigns; a graph written with
    version 1 (text keys) keeps every node, edge, tag and user through the upgrade, and takes new
    submissions after it."""
    from qmtl.services.gsg import GraphNode, SqlGraphStore
    from qmtl.services.gsg.sql import migrations
    from qmtl.services.storage.migrations import migrate

    a, b, c, d = (f"blake3:{ch * 64}" for ch in "abcd")
    db = db_backend("gsg1")
    migrate(db, "gsg", migrations(db)[:1])
    db.insert_many("gsg_node", (("node_id", "TEXT"), ("op", "TEXT"), ("interval_s", "BIGINT"), ("tags", "TEXT")),
                   [(a, "stream_input", 60, '["BTC", "price"]'), (b, "column", 60, "[]"), (c, "sub", 60, "[]")])
    db.insert_many("gsg_tag", (("node_id", "TEXT"), ("tag", "TEXT")), [(a, "BTC"), (a, "price")])
    db.insert_many("gsg_edge", (("src", "TEXT"), ("dst", "TEXT")), [(a, b), (b, c)])
    db.insert_many("gsg_use", (("node_id", "TEXT"), ("strategy_id", "TEXT")),
                   [(a, "s1"), (b, "s1"), (a, "s2"), (b, "s2"), (c, "s2")])
    store = SqlGraphStore(db)
    assert schema_version(db, "gsg") == 2
    assert store.existing([a, b, c, d]) == {a: ["s1", "s2"], b: ["s1", "s2"], c: ["s2"]}
    assert store.dependents(a) == sorted([b, c])
    assert [(n.node_id, n.tags) for n in store.by_tag(["BTC"], "all")] == [(a, ("BTC", "price"))]
    store.upsert("s3", [GraphNode(a, "stream_input", 60, ("BTC", "price")), GraphNode(d, "sub", 60)], [(a, d)])
    assert store.existing([a, d]) == {a: ["s1", "s2", "s3"], d: ["s3"]}
    assert store.dependents(a) == sorted([b, c, d])
    SqlGraphStore(db)  # a second start changes nothing
    assert store.existing([d]) == {d: ["s3"]}
