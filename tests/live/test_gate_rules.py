"""The gate's rules without a server: the verdict on each kind of fact, the reconnect waits, the SSE
frames, and the constructor's errors for bad arguments."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from qmtl.live.event_stream import ServerEvent, server_events
from qmtl.live.gate import (REASON_CODES, ActivationAnswer, DecisionAnswer, WorldFacts, WorldGate, backoff_delay,
                            verdict)

NOW = 1_800_000_000.0  # wall clock: decisions expire in it
MONO = 5_000.0  # the monotonic clock: the grace is measured in it


def decision(mode: str = "paper", decided_at: float | None = NOW - 10, ttl: int = 300) -> DecisionAnswer:
    at = None if decided_at is None else datetime.fromtimestamp(decided_at, timezone.utc)
    return DecisionAnswer(effective_mode=mode, reason=f"{mode} because", ttl=ttl, decided_at=at)


def activation(active: bool = True, freeze: bool = False, drain: bool = False, phase: str = "idle",
               run_id: str | None = None) -> ActivationAnswer:
    return ActivationAnswer(active=active, freeze=freeze, drain=drain, phase=phase, run_id=run_id)


def facts(**changes) -> WorldFacts:
    return WorldFacts(**{"decision": decision(), "activation": activation(), **changes})


@pytest.mark.parametrize("given, code, domain, fragment", [
    (facts(), "open", "paper", "valid until"),
    (facts(decision=decision("live")), "open", "live", "live: active"),
    (WorldFacts(), "starting", None, "no answer"),
    (facts(decision=decision("compute-only", decided_at=None)), "no_decision", None, "no decision"),
    (facts(decision=decision(decided_at=NOW - 301)), "decision_expired", None, "ttl 300 s"),
    (facts(decision=decision(decided_at=NOW - 300)), "decision_expired", None, "expired"),
    (facts(decision=decision("validate")), "decision_gated", None, "decision is validate"),
    (facts(decision=decision("compute-only")), "decision_gated", None, "compute-only"),
    (facts(activation=activation(False, freeze=True, phase="freeze", run_id="r1")), "frozen", "paper",
     "apply run 'r1' (phase freeze)"),
    (facts(activation=activation(True, freeze=True)), "frozen", "paper", "frozen"),
    (facts(activation=activation(True, drain=True)), "draining", "paper", "draining"),
    (facts(activation=activation(False)), "inactive", "paper", "not active"),
    (facts(error="E_UNKNOWN_WORLD: no world"), "error", None, "E_UNKNOWN_WORLD"),
    (facts(down_since=MONO - 2.5, down_why="refused"), "unreachable", None, "unreachable for 2.5 s"),
    (facts(down_since=MONO - 1.5, down_why="refused"), "open", "paper", "active"),  # within the grace
    (facts(stopped=True), "stopped", None, "stopped"),
])
def test_verdict(given: WorldFacts, code: str, domain: str | None, fragment: str) -> None:
    state = verdict(given, NOW, MONO, grace_s=2.0)
    assert state.reason in REASON_CODES
    assert (state.reason, state.open, state.domain) == (code, code == "open", domain)
    assert fragment in state.detail


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    for failures, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8), (6, 5.0), (60, 5.0)):
        waits = [backoff_delay(failures, 0.2, 5.0) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # drawn, not fixed: processes do not reconnect in step


def test_server_events_parses_frames_and_skips_comments() -> None:
    lines = [": connected", "", "id: 7", "event: ActivationUpdated", 'data: {"a":', "data: 1}", "",
             ": keep-alive", "", "data:x", "", "id: 9", "data: cut off"]

    async def collect() -> list[ServerEvent]:
        async def source():
            for line in lines:
                yield line
        return [e async for e in server_events(source())]

    assert asyncio.run(collect()) == [ServerEvent("7", "ActivationUpdated", '{"a":\n1}'),
                                      ServerEvent(None, "message", "x")]


@pytest.mark.parametrize("args, kwargs, field", [
    (("127.0.0.1:8000", "w", "s"), {}, "gateway_url"),
    (("ftp://h", "w", "s"), {}, "gateway_url"),
    (("http://h", " ", "s"), {}, "world"),
    (("http://h", "w", None), {}, "strategy_id"),
    (("http://h", "w", "s"), {"grace_s": -1}, "grace_s"),
    (("http://h", "w", "s"), {"resync_s": float("nan")}, "resync_s"),
    (("http://h", "w", "s"), {"tick_s": True}, "tick_s"),
    (("http://h", "w", "s"), {"backoff_base_s": 2.0, "backoff_cap_s": 1.0}, "backoff_cap_s"),
])
def test_bad_arguments_name_the_field(args, kwargs, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        WorldGate(*args, **kwargs)


def test_an_unstarted_gate_is_closed() -> None:
    gate = WorldGate("http://127.0.0.1:9", "w", "s")
    state = gate.state()
    assert not state.open and "no answer" in state.detail
    assert gate.metrics.registry.get_sample_value("qmtl_order_gate_open", {"world": "w", "strategy": "s"}) == 0
