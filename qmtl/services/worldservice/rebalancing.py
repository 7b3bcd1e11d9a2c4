"""Allocations across worlds and rebalancing: plan (what the world-wide evaluations ask for against
what is allocated now) and apply (set the planned allocations, audited, idempotent by ``run_id``).

A world's target is its latest evaluation's active set, restricted to strategies whose decision lets
them trade (paper or live), with the evaluation's weights renormalised over them.  Applying checks
each world's allocations ``etag`` (the state the plan was made against) and the decisions again, and
changes every world of the run in one transaction or none.
"""

from __future__ import annotations

from typing import Any

from .envelopes import etag_of, iso
from .errors import ApiError, unknown_world
from .schemas import RebalanceApplyRequest, RebalancePlanRequest
from .service import WorldService


class Rebalancer:
    def __init__(self, ws: WorldService) -> None:
        self.ws = ws
        self.store = ws.store

    def overview(self) -> dict[str, Any]:
        """Every world's allocations, and per strategy its weight in each world it is allocated in."""
        worlds = [self.ws.allocations(w["id"]) for w in self.store.list_worlds()]
        by_strategy: dict[str, dict[str, float]] = {}
        for view in worlds:
            for sid, weight in view["allocations"].items():
                by_strategy.setdefault(sid, {})[view["world_id"]] = weight
        body = {"worlds": worlds, "strategies": by_strategy}
        return {**body, "etag": etag_of(body)}

    def plan(self, req: RebalancePlanRequest) -> dict[str, Any]:
        ids = req.world_ids if req.world_ids is not None else [w["id"] for w in self.store.list_worlds()]
        return {"plans": [self._plan_world(wid) for wid in dict.fromkeys(ids)]}

    def _plan_world(self, world_id: str) -> dict[str, Any]:
        world = self.store.get_world(world_id)
        if world is None:
            raise unknown_world(world_id)
        current = self.ws.allocations(world_id)
        latest = self.store.latest_evaluation(world_id)
        wanted = latest["result"]["weights"] if latest else {}
        denied = self.ws.denials(world, list(wanted), self.ws.clock())
        kept = {sid: w for sid, w in wanted.items() if sid not in denied}
        total = sum(kept.values())
        target = {sid: w / total for sid, w in sorted(kept.items())} if total else {}
        ids = sorted(set(target) | set(current["allocations"]))
        deltas = {sid: target.get(sid, 0.0) - current["allocations"].get(sid, 0.0) for sid in ids}
        return {"world_id": world_id, "etag": current["etag"], "current": current["allocations"],
                "target": target, "deltas": {k: v for k, v in deltas.items() if abs(v) > 1e-12},
                "excluded": denied, "evaluation_seq": latest["seq"] if latest else None}

    def apply(self, req: RebalanceApplyRequest, actor: str) -> dict[str, Any]:
        """Set each planned world's allocations; a repeated ``run_id`` returns the first answer."""
        done = self.store.get_rebalance_run(req.run_id)
        if done is not None:
            return done
        now = self.ws.clock()
        with self.store.db.transaction():
            for plan in req.plans:
                world = self.store.get_world(plan.world_id)
                if world is None:
                    raise unknown_world(plan.world_id)
                before = self.ws.allocations(plan.world_id)
                if plan.etag != before["etag"]:
                    raise ApiError(409, "E_ETAG_MISMATCH",
                                   f"plans: world {plan.world_id!r} allocations changed since etag {plan.etag!r} "
                                   f"(now {before['etag']!r}); plan again")
                self.ws.check_fundable(world, plan.target, now)
                self.store.put_allocations(plan.world_id, plan.target, now)
                self.store.audit(plan.world_id, actor, "rebalance.apply", now, before["allocations"],
                                 {"run_id": req.run_id, "allocations": plan.target})
            result = {"run_id": req.run_id, "status": "completed", "applied_at": iso(now),
                      "worlds": [self.ws.allocations(p.world_id) for p in req.plans]}
            if not self.store.put_rebalance_run(req.run_id, now, result):  # rolls the changes back
                raise ApiError(409, "E_RUN_CONFLICT", f"run_id: {req.run_id!r} was applied concurrently; "
                                                      "repeat the request to read its result")
        return result
