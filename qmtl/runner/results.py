"""What ``Runner.submit`` hands back: the world's decision (the source of truth) next to the local
precheck, kept apart so nobody mistakes a local number for a promotion.

``status``:
* ``accepted`` — the gateway took the DAG and the world evaluated it; ``decision`` says what may run.
* ``rejected`` — compile/lint/run errors, an unknown world, or the gateway refused the submission;
  ``downgrade_reason`` says which (and ``precheck.diagnostics`` carries the compiler's findings).
* ``safe_mode`` — a gateway was configured but did not answer; ``decision`` is a local default-safe
  envelope (compute-only, backtest, orders gated) and ``downgrade_reason`` says what failed.

``safe_mode`` (the flag) is also set on an ``accepted`` result whose world decision cannot be acted on
— none, stale (past its ttl), or without ``as_of``/``dataset_fingerprint`` — with the reason.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from qmtl.ir.diagnostics import Diagnostic
from qmtl.runtime.metrics import Metrics
from qmtl.services.worldservice.envelopes import DecisionEnvelope, etag_of, iso

Status = Literal["accepted", "rejected", "safe_mode"]
#: How long a locally made safe envelope is good for: short, so a caller retries the world soon.
LOCAL_DECISION_TTL = 60


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class DiagnosticInfo(_Model):
    """A compiler ``Diagnostic`` at the SDK boundary (JSON-friendly)."""

    code: str
    severity: str
    message: str
    file: str | None = None
    line: int = 0
    col: int = 0

    @classmethod
    def of(cls, d: Diagnostic) -> "DiagnosticInfo":
        loc = d.loc
        return cls(code=d.code, severity=d.severity, message=d.message,
                   file=loc.file if loc else None, line=loc.line if loc else 0,
                   col=loc.col if loc else 0)

    def format(self) -> str:
        # A finding with no line (a data file, the replay as a whole) names just the file.
        where = self.file or "<strategy>"
        if self.line > 0:
            where += f":{self.line}:{self.col}"
        return f"{where}: {self.severity}[{self.code}]: {self.message}"


class Precheck(_Model):
    """The local replay: computed here, advisory only — the world decides."""

    metrics: Metrics = Field(default_factory=Metrics)
    diagnostics: list[DiagnosticInfo] = Field(default_factory=list)
    returns_source: str | None = None
    data_source: str | None = None
    synthetic_data: bool = False
    dataset_fingerprint: str | None = None
    as_of: str | None = None
    bars: int = 0


class NodeRef(_Model):
    """One node of the submitted DAG as the gateway's graph store saw it."""

    node_id: str
    name: str | None = None
    op: str | None = None
    used_by: list[str] = Field(default_factory=list)
    source: str | None = Field(default=None, description="where the local replay took this node's "
                               "values from: 'artifact <path>' (stored for these bars by an earlier "
                               "run), 'computed, stored <path>', or 'computed (not stored: why)'")
    artifact: str | None = Field(default=None, description="the artifact the gateway's index lists "
                                 "for this node on the submitted data (registered by an earlier run)")


class RuleResult(_Model):
    """One policy rule as the world judged it (``threshold:sharpe``, ``top_k:sharpe``, …)."""

    rule: str
    passed: bool
    value: Any = None
    threshold: Any = None
    detail: str = ""


class WorldEvaluation(_Model):
    """What the world's policy made of this strategy's metrics: why it was (not) selected."""

    evaluation_seq: int | None = None
    passed: bool
    active: bool
    weight: float = 0.0
    rules: list[RuleResult] = Field(default_factory=list)

    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]


class AllocationSnapshot(_Model):
    """The world's capital allocation for this strategy when the submission finished."""

    weight: float = 0.0
    rank: int | None = None  # 1 = the largest weight in the world; None when not allocated
    contribution: float = 0.0  # share of what the world allocates
    etag: str | None = None
    updated_at: str | None = None


class SubmitResult(_Model):
    status: Status
    world: str
    strategy_id: str | None = None
    decision: DecisionEnvelope | None = None
    activation: dict[str, Any] | None = None
    evaluation: WorldEvaluation | None = None
    allocation: AllocationSnapshot | None = None
    precheck: Precheck = Field(default_factory=Precheck)
    safe_mode: bool = False
    downgrade_reason: str | None = None
    reused_nodes: list[NodeRef] = Field(default_factory=list)
    new_nodes: list[NodeRef] = Field(default_factory=list)
    queue_map: dict[str, str] = Field(default_factory=dict)
    gateway_url: str | None = None
    embedded: bool = False
    notes: list[str] = Field(default_factory=list)
    #: the local replay's returns (``qmtl.runtime.performance.Performance``): series, not JSON fields
    _performance: Any = PrivateAttr(default=None)

    @property
    def performance(self):
        """What the local replay earned (returns, equity, drawdown, metrics), or None when it never
        ran (a compile error, unusable data)."""
        return self._performance

    @property
    def returns(self):
        """Per-bar returns of the precheck replay, indexed by UTC timestamps."""
        return self._required().returns

    @property
    def equity(self):
        return self._required().equity

    @property
    def drawdown(self):
        return self._required().drawdown

    def report(self, path: Any, title: str | None = None):
        """Write the replay's tear sheet (self-contained HTML) to ``path``; returns the path."""
        perf = self._required()
        return perf.report(path, title=title or f"{perf.strategy or 'strategy'} in world {self.world}")

    def _required(self):
        if self._performance is None:
            raise ValueError(f"no replay to report on: {self.downgrade_reason or self.status}")
        return self._performance

    def summary(self) -> list[tuple[str, str]]:
        """The few facts a person reads first, as (label, text) pairs: bounded whatever the size of
        the strategy (node lists are counted, not listed)."""
        facts = [("status", self.status + (" (safe mode)" if self.safe_mode and self.status != "safe_mode" else "")),
                 ("world", self.world)]
        if self.strategy_id:
            facts.append(("strategy", self.strategy_id[:19]))
        if self.decision is not None:
            facts.append(("decision", f"{self.decision.effective_mode}, {self.decision.execution_domain}"
                                      + (", orders gated" if self.decision.orders_gated else "")))
        m = self.precheck.metrics
        shown = [f"{k} {_num(getattr(m, k))}" for k in ("sharpe", "max_drawdown", "total_return")
                 if getattr(m, k) is not None]
        if shown:
            facts.append(("precheck", ", ".join(shown) + f" over {m.bars} bars"))
        facts.append(("nodes", f"{len(self.reused_nodes)} reused, {len(self.new_nodes)} new"))
        if self.downgrade_reason:
            reason = self.downgrade_reason
            facts.append(("reason", reason if len(reason) <= 200 else reason[:199] + "…"))
        return facts

    def __repr__(self) -> str:
        return "<SubmitResult " + "; ".join(f"{k} {v}" for k, v in self.summary()) + ">"

    def __str__(self) -> str:
        return repr(self)

    def _repr_html_(self) -> str:
        import html
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self.summary())
        return f"<div><b>SubmitResult</b><table>{rows}</table></div>"


def _num(x: float) -> str:
    return f"{x:.4g}"


def local_safe_decision(world: str, strategy_id: str | None, reason: str,
                        precheck: Precheck) -> DecisionEnvelope:
    """The envelope the SDK assumes when the world cannot be asked: compute-only, backtest, orders
    gated. It is never better than what the world service itself would say without a decision."""
    payload = {"world_id": world, "strategy_id": strategy_id or "", "effective_mode": "compute-only",
               "execution_domain": "backtest", "reason": f"{reason}: local default-safe compute-only",
               "ttl": LOCAL_DECISION_TTL, "as_of": precheck.as_of,
               "dataset_fingerprint": precheck.dataset_fingerprint, "orders_gated": True,
               "decided_at": iso(time.time())}
    return DecisionEnvelope(etag=etag_of(payload), **payload)
