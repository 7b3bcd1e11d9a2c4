"""Decision and activation envelopes, and the default-safe rules that produce a decision.

Modes and domains (blueprint 1.3): ``validate -> backtest`` (orders gated off), ``compute-only ->
backtest`` (orders gated off), ``paper -> dryrun``, ``live -> live``.  Whatever is unknown, missing or
stale resolves to compute-only: the service never defaults towards trading.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel

from qmtl.services.evidence import evidence_problem

Mode = Literal["validate", "compute-only", "paper", "live"]
Domain = Literal["backtest", "dryrun", "live"]

MODE_RANK: dict[str, int] = {"compute-only": 0, "validate": 1, "paper": 2, "live": 3}
DOMAIN_OF_MODE: dict[str, Domain] = {"validate": "backtest", "compute-only": "backtest",
                                      "paper": "dryrun", "live": "live"}
GATED_MODES = frozenset({"validate", "compute-only"})


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def etag_of(payload: dict[str, Any]) -> str:
    """A strong ETag over an envelope's content (minus the etag itself)."""
    body = json.dumps({k: v for k, v in payload.items() if k != "etag"}, sort_keys=True, default=str)
    return '"' + hashlib.blake2b(body.encode(), digest_size=12).hexdigest() + '"'


class DecisionEnvelope(BaseModel):
    world_id: str
    strategy_id: str
    effective_mode: Mode
    execution_domain: Domain
    reason: str
    ttl: int
    etag: str
    as_of: str | None
    dataset_fingerprint: str | None
    orders_gated: bool
    decided_at: str | None


class ActivationEnvelope(BaseModel):
    world_id: str
    strategy_id: str | None = None
    side: str | None = None
    active: bool
    weight: float
    freeze: bool
    drain: bool
    phase: str
    sequence: int
    run_id: str | None
    etag: str
    updated_at: str | None


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """What an evaluation recorded for one strategy (the input to ``resolve_decision``)."""

    mode: str
    reason: str
    decided_at: float
    ttl: int
    as_of: str | None
    dataset_fingerprint: str | None


def effective_ttl(stored_ttl: int, world_ttl: int) -> int:
    """The TTL a stored decision is read with: its own, but never longer than the world's current
    ``decision_ttl``.  Lowering a world's TTL must shorten the decisions already made (a paper or live
    decision may not outlive what the world now accepts); raising it never stretches them, since they
    were made under the shorter promise.  Every reader of a decision goes through this."""
    return min(int(stored_ttl), int(world_ttl))


def resolve_decision(world_id: str, strategy_id: str, allow_live: bool, stored: StoredDecision | None,
                     now: float, hint: str | None = None, default_ttl: int = 300) -> DecisionEnvelope:
    """Apply the default-safe rules to a stored decision at time ``now``.

    Order of checks: no decision -> stale -> unusable evidence (``as_of`` missing, unparsable or in the
    future of the decision; ``dataset_fingerprint`` missing or not of the runtime's form; see
    ``qmtl.services.evidence``) -> live without ``allow_live`` -> hint.  A hint can only lower the mode;
    a higher hint is refused and the reason says so.
    """
    ignored = "" if hint in (None, "compute-only") else f"; hint {hint!r} ignored"
    if hint == "live" and not allow_live:
        ignored += " (world does not allow live)"
    if stored is None:
        return _envelope(world_id, strategy_id, "compute-only", "no decision for this strategy in this "
                         f"world: default-safe compute-only{ignored}", default_ttl, None, None, None)

    def safe(why: str) -> DecisionEnvelope:
        return _envelope(world_id, strategy_id, "compute-only",
                         f"{why}: default-safe compute-only{ignored}",
                         stored.ttl, stored.as_of, stored.dataset_fingerprint, stored.decided_at)

    if now > stored.decided_at + stored.ttl:
        return safe(f"decision is stale (decided at {iso(stored.decided_at)}, ttl {stored.ttl}s)")
    # Checked against the time the decision was made: an as_of from that moment's future was made up.
    problem = evidence_problem(stored.as_of, stored.dataset_fingerprint, stored.decided_at)
    if problem is not None:
        return safe(f"decision evidence unusable: {problem}")
    mode, reason = stored.mode if stored.mode in MODE_RANK else "compute-only", stored.reason
    if mode == "live" and not allow_live:
        mode, reason = "paper", f"{reason}; live downgraded to paper: world does not allow live"
    if hint is not None:
        hint = hint if hint in MODE_RANK else "compute-only"
        if MODE_RANK[hint] < MODE_RANK[mode]:
            mode, reason = hint, f"{reason}; lowered to {hint} by hint"
        elif MODE_RANK[hint] > MODE_RANK[mode]:
            why = ("world does not allow live" if hint == "live" and not allow_live
                   else f"policy decided {mode}")
            reason = f"{reason}; hint {hint!r} downgraded to {mode}: {why}"
    return _envelope(world_id, strategy_id, mode, reason, stored.ttl, stored.as_of,
                     stored.dataset_fingerprint, stored.decided_at)


def _envelope(world_id: str, strategy_id: str, mode: str, reason: str, ttl: int, as_of: str | None,
              fingerprint: str | None, decided_at: float | None) -> DecisionEnvelope:
    payload = {"world_id": world_id, "strategy_id": strategy_id, "effective_mode": mode,
               "execution_domain": DOMAIN_OF_MODE[mode], "reason": reason, "ttl": ttl,
               "as_of": as_of, "dataset_fingerprint": fingerprint,
               "orders_gated": mode in GATED_MODES, "decided_at": iso(decided_at)}
    return DecisionEnvelope(etag=etag_of(payload), **payload)


def decided_mode(passed: bool, active: bool, max_mode: str, allow_live: bool,
                 evidence: str | None = None, synthetic: bool = False) -> tuple[str, str]:
    """The mode an evaluation records for one strategy, with its reason.

    Unusable evidence (``qmtl.services.evidence``) gives compute-only and synthetic data at most
    validate, whatever the policy said: neither can be argued with by good metrics.
    """
    if evidence is not None:
        return "compute-only", f"evidence unusable: {evidence}: default-safe compute-only"
    if synthetic:
        return "validate", ("the replay ran on synthetic data, which is never evidence: capped at "
                            "validate (backtest, orders gated off)")
    if not passed:
        return "validate", "policy failed: stays in validation (backtest, orders gated off)"
    if not active:
        return "validate", "policy passed but not selected into the active set"
    mode = "live" if allow_live else "paper"
    if MODE_RANK[mode] > MODE_RANK[max_mode]:
        return max_mode, f"policy passed and active; capped at {max_mode} by policy max_mode"
    if mode == "paper":
        return "paper", "policy passed and active; world does not allow live"
    return "live", "policy passed and active; world allows live"
