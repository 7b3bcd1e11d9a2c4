"""World policies: the pydantic model, the documented presets, and pure evaluation.

A policy is a conjunction of rules checked per strategy:

* ``thresholds``: ``{metric: {min?, max?}}``, bounds inclusive; a missing metric fails its rule.
* ``hysteresis``: ``{metric, enter, exit}``; a strategy enters the active set only with
  ``metric >= enter`` and, once active (in the previous evaluation's active set), stays while
  ``metric >= exit``.  Put the hysteresis metric here, not in ``thresholds`` too, or the threshold
  would override the band.
* ``correlation``: ``{max}``; the Pearson correlation of a candidate's returns with each strategy
  already active (previous active set) and each candidate admitted before it in this evaluation (in rank
  order) must be ``<= max``.  Without ``returns`` the rule cannot be checked and fails (default-safe).
* ``top_k``: ``{metric, k, order}``; among strategies passing every other rule, the best ``k`` by
  ``metric`` (``desc``: higher is better) are kept.

``max_drawdown`` is compared as a positive fraction (0.1 = 10%); negative inputs (as empyrical reports
them) are taken by absolute value.  ``max_mode`` caps the mode a passing strategy can get ("paper" for
the sandbox preset: everything passes, never live).  ``calendar`` (``24/7``, ``exchange``, ``252x24h``)
says how submitters annualise the metrics this world judges (``Runner.submit`` reads it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qmtl.calendars import CalendarName
from qmtl.services.request_guard import MAX_JSON_DEPTH, InputError, check_document


# Policies are strict and finite: "yes" is not a boolean, "1" not a number, and .nan/.inf (YAML) or
# 1e309 are no bounds at all (a NaN bound would pass or fail everything silently).
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Bounds(BaseModel):
    model_config = _STRICT
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Bounds":
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class TopK(BaseModel):
    model_config = _STRICT
    metric: str
    k: int = Field(ge=1)
    order: Literal["desc", "asc"] = "desc"


class CorrelationCap(BaseModel):
    model_config = _STRICT
    max: float = Field(ge=-1.0, le=1.0)


class Hysteresis(BaseModel):
    model_config = _STRICT
    metric: str
    enter: float
    exit: float

    @model_validator(mode="after")
    def _band(self) -> "Hysteresis":
        if self.exit > self.enter:
            raise ValueError(f"exit {self.exit} must not exceed enter {self.enter}")
        return self


class Policy(BaseModel):
    model_config = _STRICT
    thresholds: dict[str, Bounds] = Field(default_factory=dict)
    top_k: TopK | None = None
    correlation: CorrelationCap | None = None
    hysteresis: Hysteresis | None = None
    max_mode: Literal["validate", "paper", "live"] = "live"
    #: the market calendar the world's metrics are annualised with (``qmtl.calendars``); None: the
    #: submitter's choice, by default 252 days of 24 h
    calendar: CalendarName | None = None


PRESETS: dict[str, Policy] = {
    # Everything passes and becomes active, but a sandbox world never trades live.
    "sandbox": Policy(max_mode="paper"),
    # Few, proven, uncorrelated strategies: Sharpe band 1.5 in / 1.2 out, drawdown <= 10 %.
    "conservative": Policy(
        thresholds={"max_drawdown": Bounds(max=0.10), "trades": Bounds(min=50),
                    "win_rate": Bounds(min=0.5), "profit_factor": Bounds(min=1.3)},
        hysteresis=Hysteresis(metric="sharpe", enter=1.5, exit=1.2),
        correlation=CorrelationCap(max=0.6),
        top_k=TopK(metric="sharpe", k=5)),
    # Sharpe band 1.0 in / 0.8 out, drawdown <= 20 %, correlation cap 0.8, best 10.
    "moderate": Policy(
        thresholds={"max_drawdown": Bounds(max=0.20), "trades": Bounds(min=30),
                    "profit_factor": Bounds(min=1.1)},
        hysteresis=Hysteresis(metric="sharpe", enter=1.0, exit=0.8),
        correlation=CorrelationCap(max=0.8),
        top_k=TopK(metric="sharpe", k=10)),
    # Sharpe >= 0.5, drawdown <= 35 %, at least 10 trades, best 20, no correlation cap.
    "aggressive": Policy(
        thresholds={"sharpe": Bounds(min=0.5), "max_drawdown": Bounds(max=0.35),
                    "trades": Bounds(min=10)},
        top_k=TopK(metric="sharpe", k=20)),
}


class PolicyError(ValueError):
    """A policy document we cannot use; the message names the field."""


def preset(name: str) -> Policy:
    try:
        return PRESETS[name].model_copy(deep=True)
    except KeyError:
        raise PolicyError(f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def policy_from_obj(obj: Any) -> Policy:
    """Validate a decoded document; ``{"preset": name}`` selects a preset."""
    if isinstance(obj, Mapping) and set(obj) == {"preset"}:
        return preset(str(obj["preset"]))
    try:
        return Policy.model_validate(obj)
    except ValidationError as exc:
        raise PolicyError(_describe(exc)) from None


def parse_policy(text: str | bytes, content_type: str = "application/json") -> Policy:
    """Parse a JSON or YAML policy document (YAML for ``*yaml*`` content types; JSON is YAML too).

    What the request guard refuses in JSON bodies (nesting, huge or non-finite numbers, NUL
    characters) is ``InputError`` here too, whatever the syntax: 400 ``E_SCHEMA`` on either.  What is
    wrong with the policy itself is ``PolicyError`` (400 ``E_POLICY``)."""
    try:
        obj = yaml.safe_load(text)
    except RecursionError:
        raise InputError(f"policy: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        kind = "YAML" if "yaml" in content_type else "JSON"
        raise PolicyError(f"policy is not valid {kind}: {exc}") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise InputError(f"policy: number out of range: {exc}") from None
    # The rules RequestGuard applies to JSON bodies (NUL characters, nesting, 64-bit integers, finite
    # numbers), for a YAML body the guard could not parse: InputError, answered 400 E_SCHEMA.
    check_document(obj, "policy")
    if not isinstance(obj, Mapping):
        raise PolicyError("policy must be a mapping (thresholds, top_k, correlation, hysteresis, max_mode, "
                          "calendar)")
    return policy_from_obj(obj)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "policy"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# -- evaluation ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One strategy as evaluation sees it; ``blocked`` says why its data is not evidence (then it fails
    the ``evidence`` rule and can never take a place in the active set)."""

    strategy_id: str
    metrics: Mapping[str, float]
    returns: Sequence[float] | None = None
    blocked: str | None = None


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    passed: bool
    value: float | None
    threshold: Any
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "value": self.value,
                "threshold": self.threshold, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class StrategyResult:
    passed: bool
    rules: tuple[RuleResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "rules": [r.to_json() for r in self.rules]}


@dataclass(frozen=True, slots=True)
class Evaluation:
    active: tuple[str, ...]
    weights: dict[str, float]
    results: dict[str, StrategyResult] = field(default_factory=dict)


def metric_value(metrics: Mapping[str, float], name: str) -> float | None:
    raw = metrics.get(name)
    if raw is None or not isinstance(raw, (int, float)) or math.isnan(raw):
        return None
    return abs(float(raw)) if name == "max_drawdown" else float(raw)


def _threshold_rule(metric: str, bounds: Bounds, metrics: Mapping[str, float]) -> RuleResult:
    value = metric_value(metrics, metric)
    spec = bounds.model_dump(exclude_none=True)
    if value is None:
        return RuleResult(f"threshold:{metric}", False, None, spec, f"metric {metric!r} missing")
    low_ok = bounds.min is None or value >= bounds.min
    high_ok = bounds.max is None or value <= bounds.max
    detail = "within bounds" if low_ok and high_ok else (
        f"{value:.6g} < min {bounds.min:g}" if not low_ok else f"{value:.6g} > max {bounds.max:g}")
    return RuleResult(f"threshold:{metric}", low_ok and high_ok, value, spec, detail)


def _hysteresis_rule(h: Hysteresis, metrics: Mapping[str, float], was_active: bool) -> RuleResult:
    value = metric_value(metrics, h.metric)
    bar = h.exit if was_active else h.enter
    spec = {"enter": h.enter, "exit": h.exit}
    if value is None:
        return RuleResult(f"hysteresis:{h.metric}", False, None, spec, f"metric {h.metric!r} missing")
    state = "active: stays while" if was_active else "inactive: enters when"
    return RuleResult(f"hysteresis:{h.metric}", value >= bar, value, spec, f"{state} >= {bar}")


def correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson correlation over the common tail; None when undefined (short or constant series)."""
    n = min(len(a), len(b))
    if n < 2:
        return None
    x, y = np.asarray(a[-n:], dtype=float), np.asarray(b[-n:], dtype=float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _correlation_rule(cap: CorrelationCap, cand: Candidate,
                      peers: Mapping[str, Sequence[float]]) -> RuleResult:
    if not cand.returns:
        return RuleResult("correlation", False, None, cap.max,
                          "returns required to check the correlation cap")
    worst_id, worst = None, None
    for peer_id, peer_returns in peers.items():
        if peer_id == cand.strategy_id:
            continue
        rho = correlation(cand.returns, peer_returns)
        if rho is not None and (worst is None or rho > worst):
            worst_id, worst = peer_id, rho
    if worst is None:
        return RuleResult("correlation", True, None, cap.max, "no active peer to compare with")
    ok = worst <= cap.max
    return RuleResult("correlation", ok, worst, cap.max, f"max correlation {worst:.4f} with {worst_id}")


def _rank_key(order: str, metric: str):
    def key(cand: Candidate) -> tuple[float, str]:
        value = metric_value(cand.metrics, metric)
        score = -math.inf if value is None else value
        return (-score if order == "desc" else score, cand.strategy_id)
    return key


def evaluate_policy(policy: Policy, candidates: Sequence[Candidate], previous_active: Sequence[str] = (),
                    active_returns: Mapping[str, Sequence[float]] | None = None) -> Evaluation:
    """Check every rule for every candidate and select the active set; weights are equal among it.

    ``previous_active`` feeds hysteresis; ``active_returns`` are the returns of strategies already active
    (for the correlation cap).  Candidates are visited in rank order (top_k metric when set, else id) so
    the greedy correlation admission is deterministic.
    """
    prev = set(previous_active)
    rules = {c.strategy_id: _own_rules(policy, c, c.strategy_id in prev) for c in candidates}
    ordered = _rank_order(policy, candidates)
    admitted = _admit(policy.correlation, ordered, rules, dict(active_returns or {}))
    if policy.top_k is not None:
        admitted = _apply_top_k(policy.top_k, ordered, rules, admitted)
    results = {c.strategy_id: StrategyResult(all(r.passed for r in rules[c.strategy_id]),
                                             tuple(rules[c.strategy_id])) for c in candidates}
    active = tuple(sorted(admitted))
    weights = {sid: 1.0 / len(active) for sid in active} if active else {}
    return Evaluation(active, weights, results)


def _own_rules(policy: Policy, cand: Candidate, was_active: bool) -> list[RuleResult]:
    """The rules a candidate passes or fails on its own metrics, whatever the other candidates do."""
    own = [_threshold_rule(m, b, cand.metrics) for m, b in sorted(policy.thresholds.items())]
    if cand.blocked is not None:
        own.insert(0, RuleResult("evidence", False, None, None, cand.blocked))
    if policy.hysteresis is not None:
        own.append(_hysteresis_rule(policy.hysteresis, cand.metrics, was_active))
    return own


def _rank_order(policy: Policy, candidates: Sequence[Candidate]) -> list[Candidate]:
    if policy.top_k is not None:
        return sorted(candidates, key=_rank_key(policy.top_k.order, policy.top_k.metric))
    return sorted(candidates, key=lambda c: c.strategy_id)


def _admit(cap: CorrelationCap | None, ordered: Sequence[Candidate], rules: dict[str, list[RuleResult]],
           peers: dict[str, Sequence[float]]) -> list[str]:
    """Ids passing every rule so far, in rank order; with a correlation cap each one admitted becomes a
    peer the later (lower-ranked) candidates are checked against."""
    admitted: list[str] = []
    for cand in ordered:
        own = rules[cand.strategy_id]
        if cap is not None:
            own.append(_correlation_rule(cap, cand, peers))
            if all(r.passed for r in own) and cand.returns:
                peers[cand.strategy_id] = cand.returns
        if all(r.passed for r in own):
            admitted.append(cand.strategy_id)
    return admitted


def _apply_top_k(tk: TopK, ordered: Sequence[Candidate], rules: dict[str, list[RuleResult]],
                 admitted: list[str]) -> list[str]:
    """Add each candidate's top_k rule (its rank among the admitted) and keep the best ``k``."""
    rank_of: dict[str, int] = {}
    for i, sid in enumerate(admitted):
        rank_of.setdefault(sid, i + 1)
    for cand in ordered:
        value, rank = metric_value(cand.metrics, tk.metric), rank_of.get(cand.strategy_id)
        if rank is None:
            rule = RuleResult(f"top_k:{tk.metric}", False, value, tk.k, "not ranked: another rule failed")
        else:
            rule = RuleResult(f"top_k:{tk.metric}", rank <= tk.k, value, tk.k,
                              f"rank {rank} of {len(admitted)} eligible")
        rules[cand.strategy_id].append(rule)
    return admitted[:tk.k]
