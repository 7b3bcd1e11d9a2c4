"""World service logic: every state change goes through here, is audited, and is announced on the bus.

Each change runs in one database transaction (state + audit rows commit together); bus events are
published after the commit, so a subscriber never sees an event for state that was rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from qmtl.services.evidence import evidence_problem
from qmtl.services.bus import TOPIC_ACTIVATION, TOPIC_APPLY, TOPIC_DECISION, Bus

from .activation_cache import ActivationCache
from .envelopes import (ActivationEnvelope, DecisionEnvelope, StoredDecision, decided_mode, effective_ttl,
                        etag_of, iso, resolve_decision)
from .errors import ApiError, unknown_world
from .policy import Candidate, Policy, PolicyError, evaluate_policy, policy_from_obj, preset
from .schemas import (ActivationUpdate, AllocationsUpdate, ApplyPlan, ApplyRequest, EvaluateRequest,
                      WorldCreate, WorldUpdate)
from .store import WorldStore

Event = tuple[str, str, dict[str, Any], str]  # topic, type, data, idempotency key
#: the activation topic's event for a deleted world (data: ``world_id``, ``deleted``, ``at``)
WORLD_DELETED = "WorldDeleted"


class WorldService:
    def __init__(self, store: WorldStore, bus: Bus, cache: ActivationCache | None = None,
                 clock: Callable[[], float] = time.time,
                 on_phase: Callable[[str, str, str], None] | None = None) -> None:
        """``on_phase(world_id, run_id, phase)`` is called after each apply phase has committed (an
        observer: progress reporting, or a test stopping a run between phases as a crash would)."""
        self.on_phase = on_phase
        self.store = store
        self.bus = bus
        self.cache = cache
        self.clock = clock

    # worlds -------------------------------------------------------------------------------------------
    def world(self, world_id: str) -> dict[str, Any]:
        world = self.store.get_world(world_id)
        if world is None:
            raise unknown_world(world_id)
        return _world_view(world)

    def list_worlds(self) -> list[dict[str, Any]]:
        return [_world_view(w) for w in self.store.list_worlds()]

    def create_world(self, req: WorldCreate, actor: str) -> dict[str, Any]:
        policy = _chosen_policy(req.policy, req.preset) or preset("sandbox")
        now = self.clock()
        world = {"id": req.id, "name": req.name, "description": req.description,
                 "allow_live": req.allow_live, "policy": policy.model_dump(exclude_none=True),
                 "decision_ttl": req.decision_ttl, "created_at": now, "updated_at": now}
        with self.store.db.transaction():
            if self.store.get_world(req.id) is not None:
                raise ApiError(409, "E_WORLD_EXISTS", f"world {req.id!r} already exists")
            self.store.put_world(world)
            self.store.audit(req.id, actor, "world.create", now, None, _world_view(world))
        return _world_view(world)

    def update_world(self, world_id: str, req: WorldUpdate, actor: str) -> dict[str, Any]:
        policy = _chosen_policy(req.policy, req.preset)
        now = self.clock()
        with self.store.db.transaction():
            before = self.store.get_world(world_id)
            if before is None:
                raise unknown_world(world_id)
            after = dict(before)
            for field in ("name", "description", "allow_live", "decision_ttl"):
                if getattr(req, field) is not None:
                    after[field] = getattr(req, field)
            if policy is not None:
                after["policy"] = policy.model_dump(exclude_none=True)
            after["updated_at"] = now
            self.store.put_world(after)
            self.store.audit(world_id, actor, "world.update", now, _world_view(before), _world_view(after))
            changed = [f for f in ("policy", "allow_live") if after[f] != before[f]]
            events = self._invalidate(before, " and ".join(changed) + " changed", now, actor) if changed else []
            if after["decision_ttl"] < before["decision_ttl"]:
                events += self._cut_ttl(before, after["decision_ttl"], now, actor)
        self._publish(events)
        return _world_view(after)

    def delete_world(self, world_id: str, actor: str) -> None:
        now = self.clock()
        with self.store.db.transaction():
            before = self.store.get_world(world_id)
            if before is None:
                raise unknown_world(world_id)
            self.store.delete_world(world_id)
            self.store.audit(world_id, actor, "world.delete", now, _world_view(before), None)
        # Announced on the activation topic, the one every follower of a world listens to: a live
        # process's order gate reads the world at once (now unknown) and closes, instead of trading on
        # until its next periodic read.
        self._publish([(TOPIC_ACTIVATION, WORLD_DELETED, {"world_id": world_id, "deleted": True, "at": iso(now)},
                        f"{_key_scope(before)}:delete")])

    def policy(self, world_id: str) -> dict[str, Any]:
        return self.world(world_id)["policy"]

    def set_policy(self, world_id: str, policy: Policy, actor: str) -> dict[str, Any]:
        now = self.clock()
        doc = policy.model_dump(exclude_none=True)
        with self.store.db.transaction():
            world = self.store.get_world(world_id)
            if world is None:
                raise unknown_world(world_id)
            before = world["policy"]
            self.store.put_world({**world, "policy": doc, "updated_at": now})
            self.store.audit(world_id, actor, "policy.update", now, before, doc)
            events = self._invalidate(world, "policy changed", now, actor) if doc != before else []
        self._publish(events)
        return doc

    # evaluation and decisions -------------------------------------------------------------------------
    def evaluate(self, world_id: str, req: EvaluateRequest, actor: str) -> dict[str, Any]:
        """Record the request's metrics, then evaluate EVERY strategy of the world on its latest metrics.

        Top-k, correlation caps and hysteresis are properties of the world's whole active set, so a
        request about strategy B re-ranks A too (on A's stored metrics) instead of dropping it.  Each
        strategy's evidence (as_of, fingerprint, synthetic) is the one its own metrics came with.
        """
        now = self.clock()
        events: list[Event] = []
        with self.store.db.transaction():
            world = self.store.get_world(world_id)
            if world is None:
                raise unknown_world(world_id)
            policy = Policy.model_validate(world["policy"])
            for s in req.strategies:
                self.store.put_strategy_metrics(world_id, s.strategy_id, {
                    "metrics": s.metrics, "returns": s.returns, "as_of": req.as_of,
                    "dataset_fingerprint": req.dataset_fingerprint, "synthetic": req.synthetic_data,
                    "updated_at": now})
            entries = {e["strategy_id"]: e for e in self.store.strategy_metrics(world_id)}
            problems = {sid: _evidence_of(e, now) for sid, e in entries.items()}
            previous = self.store.latest_evaluation(world_id)
            prev_active = [sid for sid in (previous["result"]["active"] if previous else []) if sid in entries]
            candidates = [Candidate(sid, e["metrics"], e["returns"], _blocked(problems[sid], e))
                          for sid, e in sorted(entries.items())]
            prev_returns = {sid: entries[sid]["returns"] for sid in prev_active if entries[sid]["returns"]}
            evaluation = evaluate_policy(policy, candidates, prev_active, prev_returns)
            result = {"active": list(evaluation.active), "weights": evaluation.weights,
                      "results": {sid: r.to_json() for sid, r in evaluation.results.items()}}
            seq = self.store.add_evaluation(world_id, now, req.as_of, req.dataset_fingerprint,
                                            req.model_dump(), result)
            self.store.audit(world_id, actor, "evaluation", now, None,
                             {"evaluation_seq": seq, "active": result["active"],
                              "requested": [s.strategy_id for s in req.strategies]})
            for sid, res in evaluation.results.items():
                mode, reason = decided_mode(res.passed, sid in evaluation.active, policy.max_mode,
                                            world["allow_live"], problems[sid], entries[sid]["synthetic"])
                events.append(self._record_decision(world, sid, mode, reason, entries[sid], seq, now, actor))
        self._publish(events)
        return {"world_id": world_id, "evaluation_seq": seq, **result}

    def _record_decision(self, world: dict[str, Any], sid: str, mode: str, reason: str,
                         entry: dict[str, Any], seq: int, now: float, actor: str) -> Event:
        # A decision is as fresh as the strategy's own metrics: re-ranking it in another strategy's
        # evaluation must not restart its TTL (else evidence would never go stale in a busy world), nor
        # lengthen it: the same metrics decided again keep the shortest TTL they were ever decided under
        # (a raised decision_ttl never stretches a decision, so it must not revive a stale one either).
        before = self.store.get_decision(world["id"], sid)
        decided_at = min(now, float(entry["updated_at"]))
        ttl = world["decision_ttl"]
        if before is not None and float(before["decided_at"]) == decided_at:
            ttl = min(ttl, int(before["ttl"]))
        decision = {"mode": mode, "reason": reason, "decided_at": decided_at, "ttl": ttl,
                    "as_of": entry["as_of"], "dataset_fingerprint": entry["dataset_fingerprint"],
                    "evaluation_seq": seq}
        self.store.put_decision(world["id"], sid, decision)
        self.store.audit(world["id"], actor, "decision", now, _decision_view(before),
                         {"strategy_id": sid, **decision})
        return (TOPIC_DECISION, "DecisionUpdated", {"world_id": world["id"], "strategy_id": sid, **decision},
                f"{_key_scope(world)}:{seq}:{sid}")

    def _invalidate(self, world: dict[str, Any], why: str, now: float, actor: str) -> list[Event]:
        """A change to what decides (policy, allow_live) voids every standing decision at once: each
        becomes compute-only until the world is evaluated again.  Runs inside the caller's transaction."""
        reason = f"{why} at {iso(now)}: decision invalidated until the world is evaluated again"
        ids = self.store.invalidate_decisions(world["id"], reason)
        if not ids:
            return []
        seq = self.store.audit(world["id"], actor, "decisions.invalidate", now, None,
                               {"strategies": ids, "reason": reason})
        return [(TOPIC_DECISION, "DecisionUpdated",
                 {"world_id": world["id"], "strategy_id": sid, "mode": "compute-only", "reason": reason},
                 f"{_key_scope(world)}:invalidate:{seq}:{sid}") for sid in ids]

    def _cut_ttl(self, world: dict[str, Any], ttl: int, now: float, actor: str) -> list[Event]:
        """A lowered ``decision_ttl`` shortens the decisions already made, at once: their stored TTL is
        cut (readers would apply ``effective_ttl`` anyway; the rows then say what holds), the cut is
        audited, and each is announced so a live order gate re-reads and closes if it has expired.
        Runs inside the caller's transaction."""
        rows = self.store.cut_decision_ttl(world["id"], ttl)
        if not rows:
            return []
        seq = self.store.audit(world["id"], actor, "decisions.ttl_cut", now,
                               {"decision_ttl": world["decision_ttl"]},
                               {"decision_ttl": ttl, "strategies": [r["strategy_id"] for r in rows]})
        return [(TOPIC_DECISION, "DecisionUpdated", {"world_id": world["id"], **_decision_view(row)},
                 f"{_key_scope(world)}:ttl_cut:{seq}:{row['strategy_id']}") for row in rows]

    def decide(self, world_id: str, strategy_id: str, hint: str | None = None) -> DecisionEnvelope:
        world = self.store.get_world(world_id)
        if world is None:
            raise unknown_world(world_id)
        return self._resolve(world, strategy_id, self.clock(), hint)

    def _resolve(self, world: dict[str, Any], strategy_id: str, now: float,
                 hint: str | None = None) -> DecisionEnvelope:
        row = self.store.get_decision(world["id"], strategy_id)
        stored = None if row is None else StoredDecision(
            row["mode"], row["reason"], row["decided_at"], effective_ttl(row["ttl"], world["decision_ttl"]),
            row["as_of"], row["dataset_fingerprint"])
        return resolve_decision(world["id"], strategy_id, world["allow_live"], stored, now, hint,
                                world["decision_ttl"])

    # activation ---------------------------------------------------------------------------------------
    def activation(self, world_id: str, strategy_id: str | None = None,
                   side: str | None = None) -> dict[str, Any]:
        self.world(world_id)
        state = self.store.activation_state(world_id)
        if strategy_id is not None:
            row = self.store.get_activation(world_id, strategy_id, side)
            return _strategy_envelope(state, row, strategy_id, side).model_dump()
        return _world_envelope(state, self.store.activations(world_id))

    def update_activation(self, world_id: str, req: ActivationUpdate, actor: str) -> dict[str, Any]:
        """Set one strategy's activation or the world's freeze/drain flags.

        A strategy is only made active when the world's decision for it, resolved now, lets it trade
        (paper or live); ids the world has never heard of are refused, active or not.
        """
        now = self.clock()
        with self.store.db.transaction():
            world = self.store.get_world(world_id)
            if world is None:
                raise unknown_world(world_id)
            if req.strategy_id is not None:
                self.check_known(world_id, [req.strategy_id])
                if req.active:
                    self.check_allowed(world, [req.strategy_id], now)
            before = _world_envelope(self.store.activation_state(world_id), self.store.activations(world_id))
            state = self.store.activation_state(world_id)
            if req.strategy_id is not None:
                weight = req.weight if req.weight is not None else (1.0 if req.active else 0.0)
                self.store.put_activation(world_id, req.strategy_id, req.side, bool(req.active),
                                          weight if req.active else 0.0, now)
            if req.freeze is not None:
                state["freeze"] = req.freeze
            if req.drain is not None:
                state["drain"] = req.drain
            events = self._bump(state, now, actor, "activation.update", before)
        self._publish(events)
        return self.activation(world_id, req.strategy_id, req.side)

    def check_known(self, world_id: str, ids: list[str]) -> None:
        """404 for ids never bound to, evaluated in or activated in this world."""
        known = ({b["strategy_id"] for b in self.store.bindings(world_id)}
                 | {d["strategy_id"] for d in self.store.decisions(world_id)}
                 | {a["strategy_id"] for a in self.store.activations(world_id)})
        unknown = sorted(set(ids) - known)
        if unknown:
            raise ApiError(404, "E_UNKNOWN_STRATEGY",
                           f"strategy_id: {unknown} never submitted to or evaluated in world {world_id!r}")

    def denials(self, world: dict[str, Any], ids: list[str], now: float) -> dict[str, str]:
        """The ids whose current decision keeps orders gated (validate/compute-only), with why."""
        denied = {}
        for sid in ids:
            env = self._resolve(world, sid, now)
            if env.orders_gated:
                denied[sid] = f"{env.effective_mode}: {env.reason}"
        return denied

    def check_allowed(self, world: dict[str, Any], ids: list[str], now: float) -> None:
        denied = self.denials(world, ids, now)
        if denied:
            listed = "; ".join(f"{sid} ({why})" for sid, why in sorted(denied.items()))
            raise ApiError(409, "E_ACTIVATION_DENIED",
                           f"the world's decisions do not allow activating: {listed}")

    def check_fundable(self, world: dict[str, Any], weights: dict[str, float], now: float) -> None:
        """The one check before money is allocated to strategies (``PUT /allocations``, rebalance
        apply): every id must be known to the world (404 ``E_UNKNOWN_STRATEGY``, a weight of 0 too: a
        typo must not pass silently), and every id given a positive weight must have a decision that
        lets it trade now (409 ``E_ACTIVATION_DENIED``)."""
        self.check_known(world["id"], list(weights))
        self.check_allowed(world, [sid for sid, w in weights.items() if w > 0], now)

    def _bump(self, state: dict[str, Any], now: float, actor: str, action: str,
              before: dict[str, Any]) -> list[Event]:
        """Advance the world's activation sequence, audit the change, return its event."""
        world_id = state["world_id"]
        state = {**state, "sequence": state["sequence"] + 1, "updated_at": now}
        self.store.put_activation_state(state)
        after = _world_envelope(state, self.store.activations(world_id))
        self.store.audit(world_id, actor, action, now, before, after)
        scope = _key_scope(self.store.get_world(world_id))
        return [(TOPIC_ACTIVATION, "ActivationUpdated", after, f"{scope}:{state['sequence']}")]

    # two-phase apply ----------------------------------------------------------------------------------
    def apply(self, world_id: str, req: ApplyRequest, actor: str) -> dict[str, Any]:
        """Run ``freeze/drain -> switch -> unfreeze``, each phase its own committed, observable step.

        A new run must name the world's current activation ``etag`` (what the caller planned against)
        and may only activate strategies the world's decisions allow.  A run that stopped between
        phases (crash, lost connection) is completed by a retry with the same ``run_id``: the stored
        plan is used and the phases already recorded are not run again.
        """
        # One run at a time per world, across every process serving it (the phases commit one by one).
        with self.store.db.exclusive(f"apply:{world_id}"):
            existing = self.store.get_apply_run(world_id, req.run_id)
            if existing is not None and existing["status"] == "completed":
                return _run_view(world_id, existing)
            world = self.store.get_world(world_id)
            if world is None:
                raise unknown_world(world_id)
            if existing is None:
                resolved = self._start_run(world, req)
                done: set[str] = set()
            else:
                resolved, done = existing["plan"], {p["phase"] for p in existing["phases"]}
            for phase, freeze in (("freeze", True), ("switch", None), ("unfreeze", False)):
                if phase in done:
                    continue
                self._phase(world_id, req.run_id, phase, actor, freeze=freeze, drain=freeze, plan=resolved)
                if self.on_phase is not None:
                    self.on_phase(world_id, req.run_id, phase)
            self.store.put_apply_run(world_id, req.run_id, "completed", resolved, self.clock())
            return _run_view(world_id, self.store.get_apply_run(world_id, req.run_id))

    def _start_run(self, world: dict[str, Any], req: ApplyRequest) -> dict[str, Any]:
        world_id = world["id"]
        current = _world_envelope(self.store.activation_state(world_id), self.store.activations(world_id))
        if req.etag != current["etag"]:
            raise ApiError(409, "E_ETAG_MISMATCH",
                           f"etag: {req.etag!r} is not the world's current activation etag "
                           f"{current['etag']!r}; re-read GET /worlds/{world_id}/activation and plan again")
        plan = req.plan or self._default_plan(world)
        self.check_known(world_id, plan.activate + plan.deactivate)
        self.check_allowed(world, plan.activate, self.clock())
        resolved = _resolve_plan(plan, self.store.activations(world_id))
        self.store.put_apply_run(world_id, req.run_id, "running", resolved, self.clock())
        return resolved

    def apply_run(self, world_id: str, run_id: str) -> dict[str, Any]:
        self.world(world_id)
        run = self.store.get_apply_run(world_id, run_id)
        if run is None:
            raise ApiError(404, "E_UNKNOWN_RUN", f"no apply run {run_id!r} in world {world_id!r}")
        return _run_view(world_id, run)

    def _default_plan(self, world: dict[str, Any]) -> ApplyPlan:
        """The latest evaluation's active set, minus what the decisions (resolved now) keep gated."""
        latest = self.store.latest_evaluation(world["id"])
        if latest is None:
            raise ApiError(409, "E_NO_PLAN", f"world {world['id']!r} has no evaluation to apply; "
                                             "evaluate first or pass an explicit plan")
        denied = self.denials(world, latest["result"]["active"], self.clock())
        active = [sid for sid in latest["result"]["active"] if sid not in denied]
        current = {a["strategy_id"] for a in self.store.activations(world["id"]) if a["active"]}
        weights = {sid: latest["result"]["weights"][sid] for sid in active}
        return ApplyPlan(activate=active, deactivate=sorted(current - set(active)), weights=weights)

    def _phase(self, world_id: str, run_id: str, phase: str, actor: str, plan: dict[str, Any],
               freeze: bool | None = None, drain: bool | None = None) -> None:
        now = self.clock()
        with self.store.db.transaction():
            world = self.store.get_world(world_id)
            if world is None:
                raise unknown_world(world_id)
            before = _world_envelope(self.store.activation_state(world_id), self.store.activations(world_id))
            state = self.store.activation_state(world_id)
            detail: dict[str, Any] = {"freeze": freeze, "drain": drain}
            if phase == "switch":
                # Decisions may have changed since the plan was made (a resumed run, a policy change):
                # what is no longer allowed is skipped, never activated.
                skipped = self.denials(world, list(plan["weights"]), now)
                for sid in plan["deactivate"]:
                    self.store.put_activation(world_id, sid, None, False, 0.0, now)
                    self.store.deactivate_every_side(world_id, sid, now)
                for sid, weight in plan["weights"].items():
                    if sid not in skipped:
                        self.store.put_activation(world_id, sid, None, True, weight, now)
                detail = {"plan": plan, "skipped": skipped}
            if freeze is not None:
                state["freeze"] = freeze
            if drain is not None:
                state["drain"] = drain
            state["phase"] = "idle" if phase == "unfreeze" else phase
            state["run_id"] = run_id
            self.store.add_apply_phase(world_id, run_id, phase, now, detail)
            events = self._bump(state, now, actor, f"apply.{phase}", before)
            events.append((TOPIC_APPLY, "ApplyPhase",
                           {"world_id": world_id, "run_id": run_id, "phase": phase, "detail": detail},
                           f"{_key_scope(world)}:{run_id}:{phase}"))
        self._publish(events)

    # world-strategy bindings (blueprint 4.3): recorded idempotently as the gateway accepts submissions
    def bind(self, world_id: str, strategy_id: str, actor: str) -> tuple[dict[str, Any], bool]:
        """Record the binding; returns it and whether it was new (a repeat changes nothing)."""
        now = self.clock()
        with self.store.db.transaction():
            self.world(world_id)
            existing = self.store.get_binding(world_id, strategy_id)
            if existing is None:
                self.store.add_binding(world_id, strategy_id, now)
                self.store.audit(world_id, actor, "binding.create", now, None, {"strategy_id": strategy_id})
            row = existing or {"world_id": world_id, "strategy_id": strategy_id, "created_at": now}
        return {**row, "created_at": iso(row["created_at"])}, existing is None

    def bindings(self, world_id: str) -> list[dict[str, Any]]:
        self.world(world_id)
        return [{**b, "created_at": iso(b["created_at"])} for b in self.store.bindings(world_id)]

    # allocations and audit ----------------------------------------------------------------------------
    def allocations(self, world_id: str) -> dict[str, Any]:
        self.world(world_id)
        explicit = self.store.get_allocations(world_id)
        if explicit is not None:
            body = {"world_id": world_id, "source": "explicit", "allocations": explicit["weights"],
                    "updated_at": iso(explicit["updated_at"])}
        else:
            rows = [a for a in self.store.activations(world_id) if a["active"]]
            body = {"world_id": world_id, "source": "active_set",
                    "allocations": {a["strategy_id"]: a["weight"] for a in rows},
                    "updated_at": iso(max((a["updated_at"] for a in rows), default=None))}
        return {**body, "strategies": ranked(body["allocations"]), "etag": etag_of(body)}

    def set_allocations(self, world_id: str, req: AllocationsUpdate, actor: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.db.transaction():
            before = self.allocations(world_id)
            self.check_fundable(self.store.get_world(world_id), req.allocations, now)
            self.store.put_allocations(world_id, req.allocations, now)
            self.store.audit(world_id, actor, "allocations.update", now, before["allocations"],
                             req.allocations)
        return self.allocations(world_id)

    def audit_log(self, world_id: str, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """A world's audit entries after ``after_seq``.  The log outlives a deleted world (it must
        outlive what it records), so it stays readable; an id that never had a world is 404 whatever
        ``after_seq`` asks for."""
        entries = self.store.audit_log(world_id, after_seq, limit)
        if not entries and self.store.get_world(world_id) is None \
                and (after_seq == 0 or not self.store.audit_log(world_id, 0, 1)):
            raise unknown_world(world_id)
        return [{**e, "at": iso(e["at"])} for e in entries]

    # events -------------------------------------------------------------------------------------------
    def _publish(self, events: list[Event]) -> None:
        for topic, type_, data, key in events:
            self.bus.publish(topic, type_, data, key)
            if topic == TOPIC_ACTIVATION and self.cache is not None:
                if type_ == WORLD_DELETED:
                    self.cache.delete(data["world_id"])  # a mirror of a world that is gone is a lie
                else:
                    self.cache.set(data["world_id"], data)


def ranked(weights: dict[str, float]) -> list[dict[str, Any]]:
    """Each allocated strategy's weight, rank (1 = largest weight, ties by id) and contribution (its
    share of what the world allocates)."""
    total = sum(weights.values())
    order = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"strategy_id": sid, "weight": w, "rank": i + 1, "contribution": (w / total) if total else 0.0}
            for i, (sid, w) in enumerate(order)]


def _key_scope(world: dict[str, Any] | None) -> str:
    """The prefix of a world's event idempotency keys: its id *and* when it was created.

    Sequences restart when a world is deleted and created again, while the bus (Redis in prod)
    remembers every key it saw; keyed by id alone, the new world's events would be taken for the old
    world's repeats and never reach a subscriber.
    """
    if world is None:
        raise unknown_world("?")
    return f"{world['id']}@{float(world['created_at']):.6f}"


def _chosen_policy(doc: dict[str, Any] | None, preset_name: str | None) -> Policy | None:
    if doc is not None and preset_name is not None:
        raise PolicyError("give either 'policy' or 'preset', not both")
    if preset_name is not None:
        return preset(preset_name)
    return None if doc is None else policy_from_obj(doc)


def _evidence_of(entry: dict[str, Any], now: float) -> str | None:
    return evidence_problem(entry["as_of"], entry["dataset_fingerprint"], now)


def _blocked(problem: str | None, entry: dict[str, Any]) -> str | None:
    """Why a candidate may not enter the active set whatever its metrics: bad or synthetic evidence."""
    if problem is not None:
        return problem
    return "synthetic data is never evidence" if entry["synthetic"] else None


def _resolve_plan(plan: ApplyPlan, current: list[dict[str, Any]]) -> dict[str, Any]:
    """Fix the weights a plan will set, so the resulting active set never holds more than the whole.

    Without explicit weights every strategy of the resulting active set (those staying and those
    joining) gets an equal share: staying ones are re-weighted too, otherwise activating B beside A at
    1.0 would leave 1.5 active.  Explicit weights apply to the activated strategies while those
    staying keep theirs, and the sum of both must not exceed 1 (409 ``E_WEIGHT_SUM``)."""
    staying: dict[str, float] = {}
    for a in current:  # a strategy's rows (unsided, long, short) count together
        if a["active"] and a["strategy_id"] not in plan.deactivate and a["strategy_id"] not in plan.activate:
            staying[a["strategy_id"]] = staying.get(a["strategy_id"], 0.0) + float(a["weight"])
    if plan.weights is not None:
        weights = {sid: float(plan.weights.get(sid, 0.0)) for sid in plan.activate}
        total = sum(weights.values()) + sum(staying.values())
        if total > 1.0 + 1e-9:
            raise ApiError(409, "E_WEIGHT_SUM",
                           f"plan.weights: with the strategies staying active ({sorted(staying)}) the active "
                           f"weights would sum to {total:.6g}, more than 1; deactivate some or lower the weights")
    else:
        resulting = set(staying) | set(plan.activate)
        weights = {sid: 1.0 / len(resulting) for sid in sorted(resulting)}
    return {"activate": sorted(plan.activate), "deactivate": sorted(plan.deactivate), "weights": weights}


def _world_view(world: dict[str, Any]) -> dict[str, Any]:
    return {"id": world["id"], "name": world.get("name"), "description": world.get("description"),
            "allow_live": world["allow_live"], "policy": world["policy"],
            "decision_ttl": world["decision_ttl"], "created_at": iso(world["created_at"]),
            "updated_at": iso(world["updated_at"])}


def _decision_view(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: v for k, v in row.items() if k != "world_id"}


def _strategy_envelope(state: dict[str, Any], row: dict[str, Any] | None, strategy_id: str,
                       side: str | None) -> ActivationEnvelope:
    """One strategy's activation; frozen or draining worlds report it inactive (orders must stop)."""
    stored_active = bool(row and row["active"])
    payload = {"world_id": state["world_id"], "strategy_id": strategy_id, "side": side,
               "active": stored_active and not (state["freeze"] or state["drain"]),
               "weight": row["weight"] if row else 0.0, "freeze": state["freeze"], "drain": state["drain"],
               "phase": state["phase"], "sequence": state["sequence"], "run_id": state["run_id"],
               "updated_at": iso(state["updated_at"])}
    return ActivationEnvelope(etag=etag_of(payload), **payload)


def _world_envelope(state: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    strategies = [_strategy_envelope(state, r, r["strategy_id"], r["side"]).model_dump() for r in rows]
    active = [s for s in strategies if s["active"]]
    payload = {"world_id": state["world_id"], "strategy_id": None, "side": None, "active": bool(active),
               "weight": sum(s["weight"] for s in active), "freeze": state["freeze"],
               "drain": state["drain"], "phase": state["phase"], "sequence": state["sequence"],
               "run_id": state["run_id"], "updated_at": iso(state["updated_at"]), "strategies": strategies}
    return {**payload, "etag": etag_of(payload)}


def _run_view(world_id: str, run: dict[str, Any]) -> dict[str, Any]:
    return {"world_id": world_id, "run_id": run["run_id"], "status": run["status"], "plan": run["plan"],
            "phases": [{**p, "at": iso(p["at"])} for p in run["phases"]]}
