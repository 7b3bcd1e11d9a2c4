"""Response bodies of the world service, as pydantic models.

They exist so the served OpenAPI describes every answer (an outside client can be generated from it)
and so FastAPI checks each answer against its declared shape.  The service layer builds plain dicts;
the routes declare these models as their ``response_model``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .envelopes import ActivationEnvelope


class WorldView(BaseModel):
    id: str
    name: str | None
    description: str | None
    allow_live: bool
    policy: dict[str, Any] = Field(description="The world's policy (see GET /worlds/{id}/policy).")
    decision_ttl: int
    created_at: str | None
    updated_at: str | None


class WorldList(BaseModel):
    worlds: list[WorldView]


class RuleView(BaseModel):
    rule: str = Field(description="threshold:<metric>, hysteresis:<metric>, correlation, top_k:<metric>, "
                                  "or evidence (as_of/fingerprint/synthetic data)")
    passed: bool
    value: float | None
    threshold: Any
    detail: str


class StrategyResultView(BaseModel):
    passed: bool
    rules: list[RuleView]


class EvaluationView(BaseModel):
    """The world-wide evaluation: every strategy of the world on its latest metrics."""

    world_id: str
    evaluation_seq: int
    active: list[str]
    weights: dict[str, float]
    results: dict[str, StrategyResultView]


class WorldActivation(ActivationEnvelope):
    """The world's activation state and every strategy's envelope (``strategy_id`` is null)."""

    strategies: list[ActivationEnvelope]


class PlanView(BaseModel):
    activate: list[str]
    deactivate: list[str]
    weights: dict[str, float]


class PhaseView(BaseModel):
    phase: str = Field(description="freeze | switch | unfreeze")
    at: str | None
    detail: dict[str, Any]


class ApplyRunView(BaseModel):
    world_id: str
    run_id: str
    status: str = Field(description="running | completed")
    plan: PlanView
    phases: list[PhaseView]


class BindingView(BaseModel):
    world_id: str
    strategy_id: str
    created_at: str | None


class BindingList(BaseModel):
    world_id: str
    bindings: list[BindingView]


class AuditEntry(BaseModel):
    world_id: str
    seq: int
    at: str | None
    actor: str
    action: str
    before: Any
    after: Any


class AuditLog(BaseModel):
    world_id: str
    entries: list[AuditEntry]


class AllocationRank(BaseModel):
    strategy_id: str
    weight: float
    rank: int = Field(description="1 = the largest weight in the world (ties by id)")
    contribution: float = Field(description="share of what the world allocates")


class AllocationsView(BaseModel):
    world_id: str
    source: str = Field(description="explicit (PUT, rebalancing) or active_set (weights of the active "
                                    "strategies)")
    allocations: dict[str, float]
    updated_at: str | None
    strategies: list[AllocationRank]
    etag: str


class AllocationsOverview(BaseModel):
    """Allocations across worlds: each world's, and each strategy's weight in every world."""

    worlds: list[AllocationsView]
    strategies: dict[str, dict[str, float]]
    etag: str


class WorldRebalancePlan(BaseModel):
    world_id: str
    etag: str = Field(description="the allocations etag to pass back to POST /rebalancing/apply")
    current: dict[str, float]
    target: dict[str, float]
    deltas: dict[str, float]
    excluded: dict[str, str] = Field(description="active strategies left out: their decision keeps "
                                                 "them gated")
    evaluation_seq: int | None


class RebalancePlan(BaseModel):
    plans: list[WorldRebalancePlan]


class RebalanceResult(BaseModel):
    run_id: str
    status: str
    applied_at: str | None
    worlds: list[AllocationsView]


class Health(BaseModel):
    status: str
