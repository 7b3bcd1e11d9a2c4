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


class AllocationsView(BaseModel):
    world_id: str
    source: str = Field(description="explicit (PUT) or active_set (weights of the active strategies)")
    allocations: dict[str, float]
    updated_at: str | None
    etag: str


class Health(BaseModel):
    status: str
