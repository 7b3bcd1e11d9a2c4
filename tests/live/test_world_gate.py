"""``WorldGate`` against the real gateway + world service (SQLite with the in-process bus, PostgreSQL
with Redis Streams): it opens on a paper/live decision with the strategy active, and closes, within a
bounded time and saying why, when activation is flipped off, during an apply's freeze and switch, when
the policy is tightened, when the decision expires or is missing, when the world is deleted, and when
the gateway is killed.

Every wait is bounded (``FOLLOW_S``); the gates run with short tuning so the whole file stays well
under a minute.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from qmtl.live.gate import WorldGate
from qmtl.live.gate_state import GateState
from tests.live.conftest import WorldStack
from tests.live.worlds import activate, evaluate, trading_world
from tests.services.gateway_process import free_port, start_gateway, stop_gateway
from tests.redis_support import delete_keys

# An event reaches the gate in about 0.1 s here; the bound leaves room for a loaded 2-core machine.
FOLLOW_S = 3.0
TUNING = {"grace_s": 1.0, "resync_s": 2.0, "backoff_base_s": 0.1, "backoff_cap_s": 0.5}


def until(gate: WorldGate, wanted: Callable[[GateState], bool], within: float = FOLLOW_S) -> GateState:
    deadline = time.monotonic() + within
    while True:
        state = gate.state()
        if wanted(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"gate did not change as expected within {within} s: {state}")
        time.sleep(0.02)


def is_open(state: GateState) -> bool:
    return state.open


def is_closed(state: GateState) -> bool:
    return not state.open


def transitions(gate: WorldGate, state: str, reason: str) -> float:
    value = gate.metrics.registry.get_sample_value(
        "qmtl_order_gate_transitions_total",
        {"world": gate.world, "strategy": gate.strategy_id, "state": state, "reason": reason})
    return value or 0.0


class Lines(logging.Handler):
    """The gate's log records (attached to its own logger: nothing else's configuration matters)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_opens_on_paper_and_follows_activation_off_and_on(world_stack: WorldStack) -> None:
    trading_world(world_stack.client, "w", "s")
    lines, logger = Lines(), logging.getLogger("qmtl.live.gate")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    try:
        with WorldGate(world_stack.url, "w", "s", **TUNING) as gate:
            assert gate.state() == GateState(True, "paper", "open", gate.state().detail) and gate.state().open
            activate(world_stack.client, "w", "s", False)
            closed = until(gate, is_closed)
            assert closed == GateState(False, "paper", "inactive", "strategy is not active in the world")
            activate(world_stack.client, "w", "s", True)
            assert until(gate, is_open).domain == "paper"
            labels = {"world": "w", "strategy": "s"}
            assert gate.metrics.registry.get_sample_value("qmtl_order_gate_open", labels) == 1
            assert transitions(gate, "closed", "inactive") == 1 and transitions(gate, "open", "open") == 2
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    changes = [(r.ids["gate"], r.ids["gate_reason"]) for r in lines.records]  # type: ignore[attr-defined]
    assert changes[-4:] == [("open", "open"), ("closed", "inactive"), ("open", "open"), ("closed", "stopped")]
    assert changes[:-4] in ([], [("closed", "starting")])  # closed until the first answer, if asked before
    assert all(r.ids["world_id"] == "w" and r.ids["strategy_id"] == "s" for r in lines.records)  # type: ignore[attr-defined]


def test_live_decision_closes_when_the_policy_is_tightened(world_stack: WorldStack) -> None:
    trading_world(world_stack.client, "w", "s", live=True)
    with WorldGate(world_stack.url, "w", "s", **TUNING) as gate:
        assert gate.state().open and gate.state().domain == "live"
        resp = world_stack.client.put("/worlds/w/policy", json={"max_mode": "paper"})
        assert resp.status_code == 200, resp.text
        closed = until(gate, is_closed)
        assert closed.domain is None and closed.detail.startswith("decision is compute-only")
        assert "invalidated" in closed.detail
        assert transitions(gate, "closed", "decision_gated") == 1


def test_closed_throughout_freeze_and_switch_of_an_apply(world_stack: WorldStack) -> None:
    """The apply is held inside its freeze and switch phases (the world service's ``on_phase``
    hook); the gate must close during the freeze and not reopen before the unfreeze."""
    trading_world(world_stack.client, "w", "s")
    ws = world_stack.world_service
    observe = ws.on_phase
    reached = {p: threading.Event() for p in ("freeze", "switch")}
    go_on = {p: threading.Event() for p in ("freeze", "switch")}

    def hold(world: str, run: str, phase: str) -> None:
        if observe is not None:
            observe(world, run, phase)
        if phase in reached:
            reached[phase].set()
            go_on[phase].wait(15)

    ws.on_phase = hold
    with WorldGate(world_stack.url, "w", "s", **TUNING) as gate:
        assert gate.state().open

        def run_apply() -> None:
            with httpx.Client(base_url=world_stack.url, timeout=30) as c:
                etag = c.get("/worlds/w/activation").json()["etag"]
                answers.append(c.post("/worlds/w/apply", json={"run_id": "r1", "etag": etag}))

        answers: list[httpx.Response] = []
        applying = threading.Thread(target=run_apply, daemon=True)
        applying.start()
        try:
            for phase in ("freeze", "switch"):
                assert reached[phase].wait(10), f"apply did not reach {phase}"
                state = until(gate, lambda s, p=phase: not s.open and f"(phase {p})" in s.detail)
                assert state.detail == f"world is frozen by apply run 'r1' (phase {phase})"
                held_until = time.monotonic() + 0.5
                while time.monotonic() < held_until:  # and it stays closed while the phase lasts
                    assert not gate.state().open
                    time.sleep(0.02)
                go_on[phase].set()
        finally:
            for event in go_on.values():
                event.set()
            applying.join(15)
        assert answers and answers[0].status_code == 200, answers
        assert until(gate, is_open).domain == "paper"  # s stays in the applied active set
        assert transitions(gate, "closed", "frozen") >= 1


def test_closed_when_the_decision_expires_and_without_one(world_stack: WorldStack) -> None:
    trading_world(world_stack.client, "w", "s", decision_ttl=3)
    decision = world_stack.client.get("/worlds/w/decide", params={"strategy_id": "s"}).json()
    expires = datetime.fromisoformat(decision["decided_at"]).timestamp() + decision["ttl"]
    with WorldGate(world_stack.url, "w", "s", **TUNING) as gate, \
            WorldGate(world_stack.url, "w", "never-evaluated", **TUNING) as undecided, \
            WorldGate(world_stack.url, "no-such-world", "s", **TUNING) as unknown:
        assert gate.state().open
        closed = until(gate, is_closed, within=decision["ttl"] + FOLLOW_S)
        assert time.time() >= expires and closed.detail.startswith("decision expired at")
        assert transitions(gate, "closed", "decision_expired") == 1
        assert not undecided.state().open and undecided.state().detail.startswith("no decision")
        assert not unknown.state().open and "E_UNKNOWN_WORLD" in unknown.state().detail
        evaluate(world_stack.client, "w", "s")  # a fresh evaluation renews the decision
        assert until(gate, is_open).domain == "paper"


def test_closes_at_once_when_its_world_is_deleted(world_stack: WorldStack) -> None:
    """A world deleted through the gateway is announced (``WorldDeleted`` on the activation topic):
    the gate reads the world at once and closes on the unknown world, well before its periodic read
    (set to a minute here, so only the event can close it in time)."""
    trading_world(world_stack.client, "w", "s")
    with WorldGate(world_stack.url, "w", "s", **{**TUNING, "resync_s": 60.0}) as gate:
        assert gate.state().open
        time.sleep(0.3)  # both event streams subscribed (they open within ms of the first read)
        started = time.monotonic()
        assert world_stack.client.delete("/worlds/w").status_code == 204
        closed = until(gate, is_closed)
        assert time.monotonic() - started < FOLLOW_S
        assert closed.reason == "error" and "E_UNKNOWN_WORLD" in closed.detail, closed
        assert transitions(gate, "closed", "error") == 1


@pytest.fixture(params=["sqlite", "postgresql+redis"])
def gateway_home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A home for a gateway process: the dev profile (SQLite under it, the in-process bus, whose
    event numbers start again from 1 after a restart), or a ``qmtl.yml`` for the prod profile
    (PostgreSQL, Redis Streams: numbers go on) with Redis keys of its own, removed after."""
    if request.param == "sqlite":
        yield tmp_path
        return
    dsn = request.getfixturevalue("pg_dsn")
    redis_url = request.getfixturevalue("redis_url")
    prefix = f"qmtl-gate-test:{uuid.uuid4().hex[:10]}"
    (tmp_path / "qmtl.yml").write_text(
        f"profile: prod\nredis_prefix: '{prefix}'\n"
        f"gateway:\n  database_dsn: '{dsn}'\n  redis_dsn: '{redis_url}'\n"
        f"worldservice:\n  database_dsn: '{dsn}'\n  redis_dsn: '{redis_url}'\n")
    yield tmp_path
    delete_keys(redis_url, prefix)


def test_closed_while_the_gateway_is_killed_and_reopens_after(gateway_home: Path) -> None:
    """A real gateway process killed with SIGKILL and started again on the same port and home: the
    gate keeps its answer for ``grace_s``, then closes as unreachable; it reconnects with backoff once
    the gateway is back, and follows the new process's events."""
    tmp_path = gateway_home
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_gateway(tmp_path, port)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            trading_world(client, "w", "s")
        with WorldGate(url, "w", "s", **TUNING) as gate:
            assert gate.state().open
            killed = time.monotonic()  # before the kill: the streams may break before wait() returns
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            closed = until(gate, is_closed, within=TUNING["grace_s"] + FOLLOW_S)
            assert time.monotonic() - killed >= TUNING["grace_s"]  # the last answer stood for the grace
            assert "gateway unreachable" in closed.detail and closed.domain is None
            assert gate.metrics.registry.get_sample_value(
                "qmtl_order_gate_stream_failures_total", {"world": "w", "strategy": "s", "topic": "activation"}) >= 1
            proc = start_gateway(tmp_path, port)
            assert until(gate, is_open, within=TUNING["backoff_cap_s"] + FOLLOW_S).domain == "paper"
            with httpx.Client(base_url=url, timeout=30) as client:
                activate(client, "w", "s", False)
            assert until(gate, is_closed).detail == "strategy is not active in the world"
        # the prod run really ran on PostgreSQL, the dev run on SQLite files
        assert any(tmp_path.rglob("*.db")) != (tmp_path / "qmtl.yml").exists()
    finally:
        stop_gateway(proc)


def test_closed_when_no_gateway_ever_answers() -> None:
    """Nothing listens on the port: the gate starts closed saying what failed, and after the grace
    says the gateway is unreachable (it never had an answer to keep)."""
    with WorldGate(f"http://127.0.0.1:{free_port()}", "w", "s", **TUNING) as gate:
        first = gate.state()
        assert not first.open and first.detail.startswith("no answer from the world yet")
        assert "connection refused" in first.detail
        later = until(gate, lambda s: "unreachable" in s.detail, within=TUNING["grace_s"] + FOLLOW_S)
        assert not later.open and later.domain is None
        assert transitions(gate, "open", "open") == 0
