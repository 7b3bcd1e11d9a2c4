"""SQL for the world service's state, over the shared ``Database`` seam.

Tables are prefixed ``ws_`` so the gateway may share one database.  Column names avoid PostgreSQL
reserved words (``freeze`` is one: the flag is stored as ``is_frozen``).  JSON goes in TEXT columns; booleans
are INTEGER 0/1; times are epoch seconds (DOUBLE PRECISION).  Every method is one small query; the
service layer groups them in transactions.
"""

from __future__ import annotations

import json
from typing import Any

from qmtl.services.storage.migrations import migrate
from qmtl.services.storage.sql import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS ws_worlds (
    id TEXT PRIMARY KEY, name TEXT, description TEXT, allow_live INTEGER NOT NULL,
    policy TEXT NOT NULL, decision_ttl INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS ws_evaluations (
    world_id TEXT NOT NULL, seq INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    as_of TEXT, dataset_fingerprint TEXT, request TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (world_id, seq));
CREATE TABLE IF NOT EXISTS ws_decisions (
    world_id TEXT NOT NULL, strategy_id TEXT NOT NULL, mode TEXT NOT NULL, reason TEXT NOT NULL,
    decided_at DOUBLE PRECISION NOT NULL, ttl INTEGER NOT NULL, as_of TEXT, dataset_fingerprint TEXT,
    evaluation_seq INTEGER NOT NULL, PRIMARY KEY (world_id, strategy_id));
CREATE TABLE IF NOT EXISTS ws_activation_state (
    world_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, is_frozen INTEGER NOT NULL,
    is_draining INTEGER NOT NULL, phase TEXT NOT NULL, run_id TEXT, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS ws_activations (
    world_id TEXT NOT NULL, strategy_id TEXT NOT NULL, side TEXT NOT NULL, active INTEGER NOT NULL,
    weight DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (world_id, strategy_id, side));
CREATE TABLE IF NOT EXISTS ws_apply_runs (
    world_id TEXT NOT NULL, run_id TEXT NOT NULL, status TEXT NOT NULL, plan TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (world_id, run_id));
CREATE TABLE IF NOT EXISTS ws_apply_phases (
    world_id TEXT NOT NULL, run_id TEXT NOT NULL, idx INTEGER NOT NULL, phase TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (world_id, run_id, idx));
CREATE TABLE IF NOT EXISTS ws_allocations (
    world_id TEXT PRIMARY KEY, weights TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS ws_bindings (
    world_id TEXT NOT NULL, strategy_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (world_id, strategy_id));
CREATE TABLE IF NOT EXISTS ws_audit (
    world_id TEXT NOT NULL, seq INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, before TEXT, after TEXT, PRIMARY KEY (world_id, seq))
"""

# Version 2: world-wide evaluation keeps each strategy's latest metrics; rebalancing runs by run_id.
MIGRATION_2 = """
CREATE TABLE ws_strategy_metrics (
    world_id TEXT NOT NULL, strategy_id TEXT NOT NULL, metrics TEXT NOT NULL, returns TEXT,
    as_of TEXT, dataset_fingerprint TEXT, synthetic INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (world_id, strategy_id));
CREATE TABLE ws_rebalance_runs (
    run_id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, result TEXT NOT NULL)
"""
MIGRATIONS = (SCHEMA, MIGRATION_2)

_PER_WORLD_TABLES = ("ws_evaluations", "ws_decisions", "ws_activation_state", "ws_activations",
                     "ws_apply_runs", "ws_apply_phases", "ws_allocations", "ws_bindings",
                     "ws_strategy_metrics")


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class WorldStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db, "worldservice", MIGRATIONS)

    # worlds -----------------------------------------------------------------------------------------
    def get_world(self, world_id: str) -> dict[str, Any] | None:
        row = self.db.fetchone("SELECT * FROM ws_worlds WHERE id = ?", (world_id,))
        return _world(row) if row else None

    def list_worlds(self) -> list[dict[str, Any]]:
        return [_world(r) for r in self.db.fetchall("SELECT * FROM ws_worlds ORDER BY id")]

    def put_world(self, w: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO ws_worlds (id, name, description, allow_live, policy, decision_ttl, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " name = excluded.name, description = excluded.description, allow_live = excluded.allow_live,"
            " policy = excluded.policy, decision_ttl = excluded.decision_ttl,"
            " updated_at = excluded.updated_at",
            (w["id"], w.get("name"), w.get("description"), int(bool(w["allow_live"])),
             _dumps(w["policy"]), w["decision_ttl"], w["created_at"], w["updated_at"]))

    def delete_world(self, world_id: str) -> None:
        """Drop the world and its state; the audit log stays (it must outlive what it records)."""
        self.db.execute("DELETE FROM ws_worlds WHERE id = ?", (world_id,))
        for table in _PER_WORLD_TABLES:
            self.db.execute(f"DELETE FROM {table} WHERE world_id = ?", (world_id,))

    # evaluations and decisions ------------------------------------------------------------------------
    def add_evaluation(self, world_id: str, at: float, as_of: str | None, fingerprint: str | None,
                       request: dict[str, Any], result: dict[str, Any]) -> int:
        seq = self._next("ws_evaluations", "seq", world_id)
        self.db.execute(
            "INSERT INTO ws_evaluations (world_id, seq, created_at, as_of, dataset_fingerprint, request,"
            " result) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (world_id, seq, at, as_of, fingerprint, _dumps(request), _dumps(result)))
        return seq

    def latest_evaluation(self, world_id: str) -> dict[str, Any] | None:
        row = self.db.fetchone("SELECT * FROM ws_evaluations WHERE world_id = ? ORDER BY seq DESC LIMIT 1",
                               (world_id,))
        if row is None:
            return None
        return {**row, "request": _loads(row["request"]), "result": _loads(row["result"])}

    def put_decision(self, world_id: str, strategy_id: str, d: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO ws_decisions (world_id, strategy_id, mode, reason, decided_at, ttl, as_of,"
            " dataset_fingerprint, evaluation_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (world_id, strategy_id) DO UPDATE SET mode = excluded.mode,"
            " reason = excluded.reason, decided_at = excluded.decided_at, ttl = excluded.ttl,"
            " as_of = excluded.as_of, dataset_fingerprint = excluded.dataset_fingerprint,"
            " evaluation_seq = excluded.evaluation_seq",
            (world_id, strategy_id, d["mode"], d["reason"], d["decided_at"], d["ttl"], d["as_of"],
             d["dataset_fingerprint"], d["evaluation_seq"]))

    def get_decision(self, world_id: str, strategy_id: str) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM ws_decisions WHERE world_id = ? AND strategy_id = ?",
                                (world_id, strategy_id))

    def decisions(self, world_id: str) -> list[dict[str, Any]]:
        return self.db.fetchall("SELECT * FROM ws_decisions WHERE world_id = ? ORDER BY strategy_id",
                                (world_id,))

    def invalidate_decisions(self, world_id: str, reason: str) -> list[str]:
        """Turn every decision of the world into compute-only with ``reason``; returns the ids."""
        ids = [d["strategy_id"] for d in self.decisions(world_id)]
        self.db.execute("UPDATE ws_decisions SET mode = 'compute-only', reason = ? WHERE world_id = ?",
                        (reason, world_id))
        return ids

    def cut_decision_ttl(self, world_id: str, ttl: int) -> list[dict[str, Any]]:
        """Shorten every decision of the world whose TTL is over ``ttl`` to ``ttl``; returns the rows
        as they are now (only those cut)."""
        ids = [d["strategy_id"] for d in self.decisions(world_id) if d["ttl"] > ttl]
        if not ids:
            return []
        self.db.execute("UPDATE ws_decisions SET ttl = ? WHERE world_id = ? AND ttl > ?", (ttl, world_id, ttl))
        return [d for d in self.decisions(world_id) if d["strategy_id"] in ids]

    # latest metrics per strategy (what world-wide evaluation ranks) --------------------------------
    def put_strategy_metrics(self, world_id: str, strategy_id: str, m: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO ws_strategy_metrics (world_id, strategy_id, metrics, returns, as_of,"
            " dataset_fingerprint, synthetic, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (world_id, strategy_id) DO UPDATE SET metrics = excluded.metrics,"
            " returns = excluded.returns, as_of = excluded.as_of,"
            " dataset_fingerprint = excluded.dataset_fingerprint, synthetic = excluded.synthetic,"
            " updated_at = excluded.updated_at",
            (world_id, strategy_id, _dumps(m["metrics"]), _dumps(m["returns"]), m["as_of"],
             m["dataset_fingerprint"], int(bool(m["synthetic"])), m["updated_at"]))

    def strategy_metrics(self, world_id: str) -> list[dict[str, Any]]:
        rows = self.db.fetchall("SELECT * FROM ws_strategy_metrics WHERE world_id = ? ORDER BY strategy_id",
                                (world_id,))
        return [{**r, "metrics": _loads(r["metrics"]), "returns": _loads(r["returns"]),
                 "synthetic": bool(r["synthetic"])} for r in rows]

    # activation ---------------------------------------------------------------------------------------
    def activation_state(self, world_id: str) -> dict[str, Any]:
        row = self.db.fetchone("SELECT * FROM ws_activation_state WHERE world_id = ?", (world_id,))
        if row is None:
            return {"world_id": world_id, "sequence": 0, "freeze": False, "drain": False,
                    "phase": "idle", "run_id": None, "updated_at": None}
        return {"world_id": row["world_id"], "sequence": row["sequence"], "freeze": bool(row["is_frozen"]),
                "drain": bool(row["is_draining"]), "phase": row["phase"], "run_id": row["run_id"],
                "updated_at": row["updated_at"]}

    def put_activation_state(self, s: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO ws_activation_state (world_id, sequence, is_frozen, is_draining, phase, run_id,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (world_id) DO UPDATE SET"
            " sequence = excluded.sequence, is_frozen = excluded.is_frozen,"
            " is_draining = excluded.is_draining,"
            " phase = excluded.phase, run_id = excluded.run_id, updated_at = excluded.updated_at",
            (s["world_id"], s["sequence"], int(s["freeze"]), int(s["drain"]), s["phase"], s["run_id"],
             s["updated_at"]))

    def activations(self, world_id: str) -> list[dict[str, Any]]:
        rows = self.db.fetchall(
            "SELECT * FROM ws_activations WHERE world_id = ? ORDER BY strategy_id, side", (world_id,))
        return [_activation(r) for r in rows]

    def get_activation(self, world_id: str, strategy_id: str, side: str | None) -> dict[str, Any] | None:
        row = self.db.fetchone(
            "SELECT * FROM ws_activations WHERE world_id = ? AND strategy_id = ? AND side = ?",
            (world_id, strategy_id, side or ""))
        return _activation(row) if row else None

    def put_activation(self, world_id: str, strategy_id: str, side: str | None, active: bool,
                       weight: float, at: float) -> None:
        self.db.execute(
            "INSERT INTO ws_activations (world_id, strategy_id, side, active, weight, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (world_id, strategy_id, side) DO UPDATE SET"
            " active = excluded.active, weight = excluded.weight, updated_at = excluded.updated_at",
            (world_id, strategy_id, side or "", int(active), weight, at))

    def deactivate_every_side(self, world_id: str, strategy_id: str, at: float) -> None:
        """Turn off every activation row of the strategy (plain, long, short): a plan or a deactivation
        names a strategy, not one of its sides, and a side left active would keep it trading."""
        self.db.execute(
            "UPDATE ws_activations SET active = 0, weight = 0, updated_at = ?"
            " WHERE world_id = ? AND strategy_id = ? AND active <> 0", (at, world_id, strategy_id))

    # apply --------------------------------------------------------------------------------------------
    def get_apply_run(self, world_id: str, run_id: str) -> dict[str, Any] | None:
        row = self.db.fetchone("SELECT * FROM ws_apply_runs WHERE world_id = ? AND run_id = ?",
                               (world_id, run_id))
        if row is None:
            return None
        phases = self.db.fetchall(
            "SELECT phase, at, detail FROM ws_apply_phases WHERE world_id = ? AND run_id = ? ORDER BY idx",
            (world_id, run_id))
        return {**row, "plan": _loads(row["plan"]),
                "phases": [{**p, "detail": _loads(p["detail"])} for p in phases]}

    def put_apply_run(self, world_id: str, run_id: str, status: str, plan: dict[str, Any],
                      at: float) -> None:
        self.db.execute(
            "INSERT INTO ws_apply_runs (world_id, run_id, status, plan, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (world_id, run_id) DO UPDATE SET status = excluded.status",
            (world_id, run_id, status, _dumps(plan), at))

    def add_apply_phase(self, world_id: str, run_id: str, phase: str, at: float,
                        detail: dict[str, Any]) -> None:
        idx = self.db.fetchone(
            "SELECT COALESCE(MAX(idx), 0) + 1 AS n FROM ws_apply_phases WHERE world_id = ? AND run_id = ?",
            (world_id, run_id))["n"]
        self.db.execute(
            "INSERT INTO ws_apply_phases (world_id, run_id, idx, phase, at, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (world_id, run_id, idx, phase, at, _dumps(detail)))

    # allocations --------------------------------------------------------------------------------------
    def get_allocations(self, world_id: str) -> dict[str, Any] | None:
        row = self.db.fetchone("SELECT * FROM ws_allocations WHERE world_id = ?", (world_id,))
        return None if row is None else {"weights": _loads(row["weights"]), "updated_at": row["updated_at"]}

    def put_allocations(self, world_id: str, weights: dict[str, float], at: float) -> None:
        self.db.execute(
            "INSERT INTO ws_allocations (world_id, weights, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (world_id) DO UPDATE SET weights = excluded.weights,"
            " updated_at = excluded.updated_at", (world_id, _dumps(weights), at))

    def all_allocations(self) -> dict[str, dict[str, Any]]:
        rows = self.db.fetchall("SELECT * FROM ws_allocations ORDER BY world_id")
        return {r["world_id"]: {"weights": _loads(r["weights"]), "updated_at": r["updated_at"]} for r in rows}

    # rebalancing runs (idempotency by run_id, across worlds) ------------------------------------------
    def get_rebalance_run(self, run_id: str) -> dict[str, Any] | None:
        row = self.db.fetchone("SELECT * FROM ws_rebalance_runs WHERE run_id = ?", (run_id,))
        return None if row is None else _loads(row["result"])

    def put_rebalance_run(self, run_id: str, at: float, result: dict[str, Any]) -> bool:
        """Record the run; False when a run with this id was recorded first (by a concurrent apply)."""
        return bool(self.db.fetchall(
            "INSERT INTO ws_rebalance_runs (run_id, created_at, result) VALUES (?, ?, ?)"
            " ON CONFLICT (run_id) DO NOTHING RETURNING run_id", (run_id, at, _dumps(result))))

    # world-strategy bindings ---------------------------------------------------------------------------
    def get_binding(self, world_id: str, strategy_id: str) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM ws_bindings WHERE world_id = ? AND strategy_id = ?",
                                (world_id, strategy_id))

    def add_binding(self, world_id: str, strategy_id: str, at: float) -> None:
        self.db.execute("INSERT INTO ws_bindings (world_id, strategy_id, created_at) VALUES (?, ?, ?)",
                        (world_id, strategy_id, at))

    def bindings(self, world_id: str) -> list[dict[str, Any]]:
        return self.db.fetchall("SELECT * FROM ws_bindings WHERE world_id = ? ORDER BY strategy_id",
                                (world_id,))

    # audit --------------------------------------------------------------------------------------------
    def audit(self, world_id: str, actor: str, action: str, at: float, before: Any, after: Any) -> int:
        """Append an audit entry; returns its sequence number (unique within the world)."""
        seq = self._next("ws_audit", "seq", world_id)
        self.db.execute(
            "INSERT INTO ws_audit (world_id, seq, at, actor, action, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (world_id, seq, at, actor, action, _dumps(before), _dumps(after)))
        return seq

    def audit_log(self, world_id: str, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.fetchall(
            "SELECT * FROM ws_audit WHERE world_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (world_id, after_seq, limit))
        return [{**r, "before": _loads(r["before"]), "after": _loads(r["after"])} for r in rows]

    def _next(self, table: str, column: str, world_id: str) -> int:
        row = self.db.fetchone(f"SELECT COALESCE(MAX({column}), 0) + 1 AS n FROM {table} WHERE world_id = ?",
                               (world_id,))
        return int(row["n"])


def _world(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "allow_live": bool(row["allow_live"]), "policy": _loads(row["policy"])}


def _activation(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "side": row["side"] or None, "active": bool(row["active"])}
