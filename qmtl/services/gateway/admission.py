"""Which execution domain a submission's queues get: the world's decision, but only for the data the
decision was made on.

A stored decision speaks about one dataset (its ``as_of`` and ``dataset_fingerprint``).  A submission
without usable evidence of its own, with synthetic data, or with data other than the decision's cannot
borrow that decision's domain: it gets backtest with orders gated, and the reason says why.
"""

from __future__ import annotations

from typing import Any

from qmtl.services.evidence import evidence_problem

from .models import SubmitMeta


def _gated(mode: str, reason: str) -> dict[str, Any]:
    return {"effective_mode": mode, "execution_domain": "backtest", "orders_gated": True, "reason": reason}


def admit(decision: dict[str, Any], meta: SubmitMeta, now: float) -> dict[str, Any]:
    """The decision this submission may act on (``decision`` is the world's, as ``WorldClient`` gives it)."""
    problem = evidence_problem(meta.as_of, meta.dataset_fingerprint, now)
    if problem is not None:
        return _gated("compute-only", f"submission evidence unusable: {problem}: default-safe compute-only")
    if meta.synthetic_data:
        return _gated("validate", "the submission was replayed on synthetic data, which is never "
                                  "evidence: capped at validate (backtest, orders gated off)")
    if decision.get("orders_gated", True):
        return decision
    same = (decision.get("as_of"), decision.get("dataset_fingerprint")) == (meta.as_of,
                                                                          meta.dataset_fingerprint)
    if not same:
        return _gated("compute-only", "the world's decision was made on other data (as_of "
                      f"{decision.get('as_of')!r}, dataset_fingerprint {decision.get('dataset_fingerprint')!r}); "
                      "evaluate this data first: default-safe compute-only")
    return decision
