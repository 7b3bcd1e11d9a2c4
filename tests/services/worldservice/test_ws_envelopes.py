"""Default-safe decision rules (each downgrade reason) and the mode -> domain mapping."""

from __future__ import annotations

import pytest

from qmtl.services.worldservice.envelopes import (DOMAIN_OF_MODE, StoredDecision, decided_mode,
                                                  resolve_decision)

NOW = 1_000_000.0


def stored(mode: str = "live", **kw) -> StoredDecision:
    base = dict(reason="policy passed and active", decided_at=NOW - 10, ttl=60, as_of="2024-01-01",
                dataset_fingerprint="fp1")
    base.update(kw)
    return StoredDecision(mode=mode, **base)


def test_mapping() -> None:
    assert DOMAIN_OF_MODE == {"validate": "backtest", "compute-only": "backtest", "paper": "dryrun",
                              "live": "live"}


def test_fresh_live_decision_on_live_world() -> None:
    env = resolve_decision("w", "s", True, stored(), NOW)
    assert (env.effective_mode, env.execution_domain, env.orders_gated) == ("live", "live", False)
    assert env.as_of == "2024-01-01" and env.dataset_fingerprint == "fp1" and env.ttl == 60


@pytest.mark.parametrize("decision, reason", [
    (None, "no decision"),
    (stored(decided_at=NOW - 61), "stale"),
    (stored(as_of=None), "no as_of"),
    (stored(dataset_fingerprint=None), "no dataset_fingerprint"),
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
