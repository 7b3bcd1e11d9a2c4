"""Default-safe decision rules (each downgrade reason) and the mode -> domain mapping."""

from __future__ import annotations

import pytest

from qmtl.services.worldservice.envelopes import (DOMAIN_OF_MODE, StoredDecision, decided_mode,
                                                  resolve_decision)

NOW = 1_000_000.0
AS_OF = "1970-01-12T00:00:00+00:00"  # before NOW
FP = "blake3:" + "ab" * 32


def stored(mode: str = "live", **kw) -> StoredDecision:
    base = dict(reason="policy passed and active", decided_at=NOW - 10, ttl=60, as_of=AS_OF,
                dataset_fingerprint=FP)
    base.update(kw)
    return StoredDecision(mode=mode, **base)


def test_mapping() -> None:
    assert DOMAIN_OF_MODE == {"validate": "backtest", "compute-only": "backtest", "paper": "dryrun",
                              "live": "live"}


def test_fresh_live_decision_on_live_world() -> None:
    env = resolve_decision("w", "s", True, stored(), NOW)
    assert (env.effective_mode, env.execution_domain, env.orders_gated) == ("live", "live", False)
    assert env.as_of == AS_OF and env.dataset_fingerprint == FP and env.ttl == 60


@pytest.mark.parametrize("decision, reason", [
    (None, "no decision"),
    (stored(decided_at=NOW - 61), "stale"),
    (stored(as_of=None), "as_of is missing"),
    (stored(dataset_fingerprint=None), "dataset_fingerprint is missing"),
    # present is not enough: each must be what the runtime produces (issue 8, section 1)
    (stored(as_of=" "), "as_of is missing"),
    (stored(as_of="not-a-date"), "not an ISO 8601 time"),
    (stored(as_of="1970-01-12"), "not an ISO 8601 time with a timezone"),
    (stored(as_of="2999-01-01T00:00:00Z"), "lies in the future"),
    (stored(dataset_fingerprint=" "), "dataset_fingerprint is missing"),
    (stored(dataset_fingerprint="fp1"), "not of the form the runtime produces"),
    (stored(dataset_fingerprint="blake3:" + "AB" * 32), "not of the form the runtime produces"),
])
def test_default_safe_downgrades(decision, reason) -> None:
    env = resolve_decision("w", "s", True, decision, NOW, hint="live")
    assert env.effective_mode == "compute-only"
    assert env.execution_domain == "backtest" and env.orders_gated is True
    assert reason in env.reason and "default-safe" in env.reason


def test_live_without_allow_live_is_downgraded() -> None:
    env = resolve_decision("w", "s", False, stored(), NOW)
    assert env.effective_mode == "paper" and "world does not allow live" in env.reason


def test_live_hint_is_only_a_hint() -> None:
    env = resolve_decision("w", "s", False, stored("paper"), NOW, hint="live")
    assert env.effective_mode == "paper"
    assert "hint 'live' downgraded to paper: world does not allow live" in env.reason
    env = resolve_decision("w", "s", True, stored("validate"), NOW, hint="live")
    assert env.effective_mode == "validate" and env.orders_gated
    assert "policy decided validate" in env.reason


def test_lower_hint_is_honoured_and_unknown_hint_is_safe() -> None:
    assert resolve_decision("w", "s", True, stored(), NOW, hint="paper").effective_mode == "paper"
    env = resolve_decision("w", "s", True, stored(), NOW, hint="shadow")
    assert env.effective_mode == "compute-only" and env.orders_gated


def test_etag_changes_with_content() -> None:
    a = resolve_decision("w", "s", True, stored(), NOW)
    b = resolve_decision("w", "s", True, stored(), NOW + 1)
    c = resolve_decision("w", "s", False, stored(), NOW)
    assert a.etag == b.etag != c.etag


def test_decided_mode() -> None:
    assert decided_mode(False, False, "live", True)[0] == "validate"
    assert decided_mode(True, False, "live", True)[0] == "validate"
    assert decided_mode(True, True, "live", True)[0] == "live"
    assert decided_mode(True, True, "live", False)[0] == "paper"
    assert decided_mode(True, True, "paper", True) == ("paper", "policy passed and active; capped at paper "
                                                                "by policy max_mode")


def test_decided_mode_puts_evidence_and_synthetic_data_before_the_policy() -> None:
    mode, reason = decided_mode(True, True, "live", True, evidence="as_of is missing")
    assert mode == "compute-only" and "as_of is missing" in reason
    mode, reason = decided_mode(True, True, "live", True, synthetic=True)
    assert mode == "validate" and "synthetic" in reason and DOMAIN_OF_MODE[mode] == "backtest"


def test_runtime_fingerprint_has_the_form_the_services_require() -> None:
    """The form checked by the services is the one the runtime writes (not a second definition)."""
    import pandas as pd

    from qmtl.runtime.data import load
    from qmtl.runner.runner import dataset_fingerprint
    from qmtl.services.evidence import FINGERPRINT_RE, evidence_problem

    bars = pd.DataFrame({"ts": [60, 120], "open": [1.0, 2.0], "high": [1.0, 2.0], "low": [1.0, 2.0],
                         "close": [1.0, 2.0], "volume": [1.0, 1.0]})
    fp = dataset_fingerprint([load(bars)])
    assert FINGERPRINT_RE.match(fp)
    assert evidence_problem("2024-01-01T00:00:00+00:00", fp, NOW * 2000) is None
