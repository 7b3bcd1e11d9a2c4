"""Request bodies at the HTTP boundary (pydantic validates here and nowhere else)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

WORLD_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _addressable(value: str) -> str:
    """Refuse a control character in an id.  Ids written here are read back through a query
    (``?strategy_id=``) or a path (``/apply/{run_id}``), where the request guard refuses control
    characters: such an id would be stored and then be out of reach of every reader."""
    if _CONTROL.search(value):
        raise ValueError("must not contain a control character")
    return value


def _path_segment(value: str) -> str:
    """A run id is a path segment of ``GET /worlds/{id}/apply/{run_id}``: no '/', and not '.' or '..'
    (the request guard refuses those in a path, so the run could never be read back)."""
    if "/" in value or value in (".", ".."):
        raise ValueError("must be usable as a path segment (no '/', not '.' or '..')")
    return value


StrategyId = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_addressable)]
RunId = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_addressable),
                  AfterValidator(_path_segment)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class WorldCreate(_Strict):
    id: str = Field(pattern=WORLD_ID)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    allow_live: bool = False
    policy: dict[str, Any] | None = None
    preset: str | None = None
    decision_ttl: int = Field(default=300, ge=1, le=7 * 86400)


class WorldUpdate(_Strict):
    """Partial update: fields left out keep their value."""

    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    allow_live: bool | None = None
    policy: dict[str, Any] | None = None
    preset: str | None = None
    decision_ttl: int | None = Field(default=None, ge=1, le=7 * 86400)


class StrategyMetrics(_Strict):
    strategy_id: StrategyId
    metrics: dict[str, float] = Field(default_factory=dict)
    returns: list[float] | None = Field(default=None, max_length=100_000)


class EvaluateRequest(_Strict):
    strategies: list[StrategyMetrics] = Field(min_length=1, max_length=10_000)
    as_of: str | None = Field(default=None, max_length=64)
    dataset_fingerprint: str | None = Field(default=None, max_length=256)
    #: The replay ran on generated bars (``Runner.submit`` without data): the world caps it at validate.
    synthetic_data: bool = False

    @model_validator(mode="after")
    def _unique(self) -> "EvaluateRequest":
        ids = [s.strategy_id for s in self.strategies]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate strategy_id in strategies: {dupes}")
        return self


class BindingCreate(_Strict):
    strategy_id: StrategyId


class ActivationUpdate(_Strict):
    """Either one strategy's activation (``strategy_id`` + ``active``) or world flags (freeze/drain)."""

    strategy_id: StrategyId | None = None
    side: str | None = Field(default=None, pattern=r"^(long|short)$")
    active: bool | None = None
    weight: float | None = Field(default=None, ge=0.0, le=1.0)
    freeze: bool | None = None
    drain: bool | None = None

    @model_validator(mode="after")
    def _shape(self) -> "ActivationUpdate":
        if self.strategy_id is None:
            if self.active is not None or self.weight is not None or self.side is not None:
                raise ValueError("active/weight/side need a strategy_id")
            if self.freeze is None and self.drain is None:
                raise ValueError("nothing to change: give strategy_id+active, or freeze/drain")
        elif self.active is None:
            raise ValueError("active is required with strategy_id")
        return self


class ApplyPlan(_Strict):
    activate: list[StrategyId] = Field(default_factory=list)
    deactivate: list[StrategyId] = Field(default_factory=list)
    weights: dict[StrategyId, float] | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> "ApplyPlan":
        both = sorted(set(self.activate) & set(self.deactivate))
        if both:
            raise ValueError(f"strategies both activated and deactivated: {both}")
        if self.weights is not None:
            _check_weights(self.weights)
        return self


class ApplyRequest(_Strict):
    """``etag``: the world's activation etag the plan was made against (``GET .../activation``); a new
    run is refused when the world changed since.  A retry of an unfinished run ignores it."""

    run_id: RunId
    etag: str = Field(min_length=1, max_length=64)
    plan: ApplyPlan | None = None


class AllocationsUpdate(_Strict):
    allocations: dict[StrategyId, float]

    @model_validator(mode="after")
    def _valid(self) -> "AllocationsUpdate":
        _check_weights(self.allocations)
        return self


class RebalancePlanRequest(_Strict):
    """Which worlds to plan for (default: every world)."""

    world_ids: list[str] | None = Field(default=None, max_length=1000)


class WorldRebalance(_Strict):
    """One world's part of a rebalance: the allocations to set, against the etag they were planned on."""

    world_id: str = Field(min_length=1, max_length=64)
    etag: str = Field(min_length=1, max_length=64)
    target: dict[StrategyId, float]

    @model_validator(mode="after")
    def _valid(self) -> "WorldRebalance":
        _check_weights(self.target)
        return self


class RebalanceApplyRequest(_Strict):
    run_id: RunId
    plans: list[WorldRebalance] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> "RebalanceApplyRequest":
        ids = [p.world_id for p in self.plans]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a world appears twice in plans: {sorted({i for i in ids if ids.count(i) > 1})}")
        return self


def _check_weights(weights: dict[str, float]) -> None:
    negative = sorted(k for k, w in weights.items() if w < 0)
    if negative:
        raise ValueError(f"weights must be >= 0: {negative}")
    total = sum(weights.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"weights sum to {total:.6g}, more than 1")
