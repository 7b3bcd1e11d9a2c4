"""``WorldGate``: the order gate that follows one world's decision and activation for one strategy
(docs/design.md "Order gate").

How it learns.  A background thread runs an asyncio loop with one httpx client on the gateway.  Two
server-sent event streams (``GET /events``, topics ``activation`` and ``decision``, opened
``from_latest``) say *that* something about the world changed; the world's answers over HTTP
(``GET /worlds/{w}/decide`` and ``/worlds/{w}/activation?strategy_id=``) say *what* is true.  Each
stream, once open, asks for a fresh read: a change is then either in that read or announced after
it, so nothing is missed however long an outage lasted, and no event history is replayed.  The
answers are read again every ``resync_s`` whatever happens, so a connection that went silent is
noticed.  Streams that fail reconnect with exponential backoff and jitter.

Default-safe.  ``state()`` is open only when a current (unexpired) decision says paper or live, the
strategy is active and the world is neither frozen nor draining, and the gateway could be reached
within the last ``grace_s``; every other case is closed, with the reason.  Each change of answer is
counted in prometheus metrics and logged as one structured line.

Threads.  The live runner is synchronous and calls ``state()`` once per order from its own thread:
``state()`` reads the latest facts (one reference, written only by the gate's thread) and the clock,
never the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlsplit

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, ValidationError

from .event_stream import ServerEvent, server_events
from .gate_state import GateState

log = logging.getLogger(__name__)

TOPICS = ("activation", "decision")
TRADING_MODES = frozenset({"paper", "live"})
# The gateway writes a keep-alive comment every 15 s on an idle stream: a read waiting longer than
# this is a dead connection.
STREAM_READ_TIMEOUT_S = 25.0
#: Why a gate is in its state: the ``reason`` label of ``qmtl_order_gate_transitions``.
REASON_CODES = ("open", "starting", "stopped", "unreachable", "error", "no_decision", "decision_expired",
                "decision_gated", "frozen", "draining", "inactive")


class DecisionAnswer(BaseModel):
    """What the gate reads of the world's decision envelope (``GET /worlds/{w}/decide``)."""

    model_config = ConfigDict(extra="ignore")
    effective_mode: str
    reason: str
    ttl: int
    decided_at: datetime | None


class ActivationAnswer(BaseModel):
    """What the gate reads of a strategy's activation envelope (``GET /worlds/{w}/activation``)."""

    model_config = ConfigDict(extra="ignore")
    active: bool
    freeze: bool
    drain: bool
    phase: str
    run_id: str | None


@dataclass(frozen=True)
class WorldFacts:
    """What the gate last learnt, and since when (``time.monotonic()``: a step of the wall clock must
    not shorten or stretch the grace) it has failed to confirm it."""

    decision: DecisionAnswer | None = None
    activation: ActivationAnswer | None = None
    error: str | None = None
    down_since: float | None = None
    down_why: str = ""
    stopped: bool = False


def verdict(facts: WorldFacts, now: float, monotonic_now: float, grace_s: float) -> GateState:
    """The gate's answer at wall time ``now`` (decisions expire in wall time) and ``monotonic_now``
    (what ``facts.down_since`` is measured in); its reason is one of ``REASON_CODES``.

    The checks run from "cannot know" to "knows it must not trade", so the reason given is the most
    basic one.  ``domain`` names the decided trading mode whenever the decision allows trading, even
    when activation keeps the gate closed; it is None when no usable decision says paper or live.
    """
    def closed(code: str, why: str, domain: str | None = None) -> GateState:
        return GateState(False, domain, code, why)

    if facts.stopped:
        return closed("stopped", "the gate is stopped")
    if facts.down_since is not None and monotonic_now - facts.down_since > grace_s:
        return closed("unreachable", f"gateway unreachable for {monotonic_now - facts.down_since:.1f} s "
                                     f"(grace {grace_s:g} s): {facts.down_why}")
    if facts.error is not None:
        return closed("error", facts.error)
    decision, activation = facts.decision, facts.activation
    if decision is None or activation is None:
        detail = f": {facts.down_why}" if facts.down_why else ""
        return closed("starting", f"no answer from the world yet{detail}")
    if decision.decided_at is None:
        return closed("no_decision", f"no decision: {decision.reason}")
    expires = decision.decided_at.timestamp() + decision.ttl
    if now >= expires:
        return closed("decision_expired", f"decision expired at {_iso(expires)} (ttl {decision.ttl} s) "
                                          "and no newer one was made")
    if decision.effective_mode not in TRADING_MODES:
        return closed("decision_gated", f"decision is {decision.effective_mode}: {decision.reason}")
    domain = decision.effective_mode
    apply_run = f" by apply run {activation.run_id!r} (phase {activation.phase})" \
        if activation.phase != "idle" else ""
    if activation.freeze:
        return closed("frozen", f"world is frozen{apply_run}", domain)
    if activation.drain:
        return closed("draining", f"world is draining{apply_run}", domain)
    if not activation.active:
        return closed("inactive", "strategy is not active in the world", domain)
    return GateState(True, domain, "open", f"{domain}: active, decision valid until {_iso(expires)}")


def backoff_delay(failures: int, base_s: float, cap_s: float) -> float:
    """Seconds to wait before reconnecting after ``failures`` failures in a row: the ceiling doubles
    per failure up to ``cap_s``, and the wait is drawn from its upper half, so processes that lost the
    gateway together do not come back in step, yet none retries at once."""
    ceiling = min(cap_s, base_s * 2.0 ** min(failures - 1, 30))
    return ceiling / 2 + random.random() * ceiling / 2


class GateMetrics:
    """The order gates' metrics on one prometheus registry.  A process with several gates passes one
    ``GateMetrics`` to all of them: a registry takes each metric name once."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        labels = ["world", "strategy"]
        self.open = Gauge("qmtl_order_gate_open", "1 while the order gate lets orders through, else 0.",
                          labels, registry=self.registry)
        self.transitions = Counter("qmtl_order_gate_transitions",
                                   "Changes of the order gate's answer, by the state entered and why.",
                                   [*labels, "state", "reason"], registry=self.registry)
        self.reconnects = Counter("qmtl_order_gate_stream_failures",
                                  "Event streams from the gateway lost or refused (each is retried).",
                                  [*labels, "topic"], registry=self.registry)


class _Unreachable(Exception):
    """No usable answer from the gateway (connection, timeout, 5xx, not JSON)."""


class _Refused(Exception):
    """The gateway answered with a client error: the world or the request is wrong, not the network."""


class WorldGate:
    """An ``OrderGate`` following ``world``'s decision and activation for ``strategy_id`` through the
    gateway at ``gateway_url``.  ``start()`` (or ``with``) runs it in a daemon thread; ``state()`` is
    cheap and never blocks on the network.

    Tuning (keyword only, seconds): ``grace_s`` how long the last answer stands while the gateway
    cannot be reached (then closed); ``resync_s`` how often the answers are read again without an
    event; ``http_timeout_s`` per request; ``backoff_base_s``/``backoff_cap_s`` the reconnect waits;
    ``start_timeout_s`` how long ``start()`` waits for the first answer; ``tick_s`` how often the
    gate re-checks itself (expiry, grace) to record transitions when no order asks.  ``metrics``: a
    ``GateMetrics`` shared with other gates (default: a registry of this gate's own).
    """

    def __init__(self, gateway_url: str, world: str, strategy_id: str, *, grace_s: float = 2.0,
                 resync_s: float = 5.0, http_timeout_s: float = 2.0, backoff_base_s: float = 0.2,
                 backoff_cap_s: float = 5.0, start_timeout_s: float = 5.0, tick_s: float = 0.1,
                 metrics: GateMetrics | None = None) -> None:
        self.gateway_url = _checked_url(gateway_url)
        self.world = _checked_id("world", world)
        self.strategy_id = _checked_id("strategy_id", strategy_id)
        for name, value in (("grace_s", grace_s), ("resync_s", resync_s), ("http_timeout_s", http_timeout_s),
                            ("backoff_base_s", backoff_base_s), ("backoff_cap_s", backoff_cap_s),
                            ("start_timeout_s", start_timeout_s), ("tick_s", tick_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")
        if backoff_cap_s < backoff_base_s:
            raise ValueError(f"backoff_cap_s: {backoff_cap_s!r} is below backoff_base_s {backoff_base_s!r}")
        self.grace_s, self.resync_s, self.http_timeout_s = float(grace_s), float(resync_s), float(http_timeout_s)
        self.backoff_base_s, self.backoff_cap_s = float(backoff_base_s), float(backoff_cap_s)
        self.start_timeout_s, self.tick_s = float(start_timeout_s), float(tick_s)
        self.metrics = metrics if metrics is not None else GateMetrics()
        self._facts = WorldFacts()
        self._last: tuple[str, bool, str | None] | None = None
        self._note_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._first_read = threading.Event()
        self._broken: dict[str, str] = {}  # source ("read" or a topic) -> why it failed, until cured
        self._connected: set[str] = set()
        path = f"/worlds/{quote(self.world, safe='')}"
        self._decide_path, self._activation_path = f"{path}/decide", f"{path}/activation"

    # --- the caller's side ---------------------------------------------------------------------------

    def state(self) -> GateState:
        answer = verdict(self._facts, time.time(), time.monotonic(), self.grace_s)
        self._note(answer)
        return answer

    def start(self) -> "WorldGate":
        """Start following the world (no-op when running); waits up to ``start_timeout_s`` for the
        first answer, and never raises for an unreachable gateway: the gate then says so."""
        if self._thread is not None:
            return self
        self._facts, self._broken, self._connected = WorldFacts(), {}, set()
        self._first_read.clear()
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=f"qmtl-order-gate:{self.world}",
                                        daemon=True)
        self._thread.start()
        self._first_read.wait(self.start_timeout_s)
        self.state()
        return self

    def stop(self) -> None:
        """Stop following; the gate stays closed (reason ``stopped``) until started again."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        try:
            loop.call_soon_threadsafe(stopping.set)
        except RuntimeError:  # the loop already ended
            pass
        thread.join(timeout=self.http_timeout_s + 5.0)
        self._thread = None
        self._facts = replace(self._facts, stopped=True)
        self.state()

    def __enter__(self) -> "WorldGate":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- transitions -------------------------------------------------------------------------------

    def _note(self, answer: GateState) -> None:
        """Count and log a change of answer (the per-order path only compares a tuple)."""
        code = answer.reason
        key = (code, answer.open, answer.domain)
        if key == self._last:
            return
        with self._note_lock:
            if key == self._last:
                return
            self._last = key
            labels = {"world": self.world, "strategy": self.strategy_id}
            self.metrics.open.labels(**labels).set(1 if answer.open else 0)
            entered = "open" if answer.open else "closed"
            self.metrics.transitions.labels(**labels, state=entered, reason=code).inc()
        log.log(logging.INFO if answer.open else logging.WARNING, "order gate %s (%s): %s", entered, code,
                answer.detail, extra={"ids": {"world_id": self.world, "strategy_id": self.strategy_id,
                                              "gate": entered, "gate_reason": code, "domain": answer.domain}})

    # --- the gate's thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.run_until_complete(self._main())
        except Exception as exc:  # never a silent death: the gate closes and says why
            log.exception("order gate thread failed")
            self._facts = replace(self._facts, error=f"the gate's thread failed: {type(exc).__name__}: {exc}")
        finally:
            self._first_read.set()
            loop.close()

    async def _main(self) -> None:
        stopping = self._stopping
        assert stopping is not None
        wake = asyncio.Event()
        wake.set()  # the first read runs at once
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=self.http_timeout_s) as client:
            loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                *((f"{t} events", lambda t=t: self._follow(client, t, wake)) for t in TOPICS),
                ("reads", lambda: self._keep_reading(client, wake)),
                ("checks", self._keep_checking)]
            tasks = [asyncio.create_task(self._guarded(name, body)) for name, body in loops]
            await stopping.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _guarded(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run one of the gate's loops; a bug in it closes the gate (reason ``error``) and it restarts
        after the longest backoff, instead of dying unseen while the gate keeps an old answer."""
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("order gate loop %r failed", name)
                self._facts = replace(self._facts, error=f"the gate's {name} loop failed: "
                                                         f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self.backoff_cap_s)

    async def _keep_checking(self) -> None:
        while True:
            self.state()
            await asyncio.sleep(self.tick_s)

    async def _keep_reading(self, client: httpx.AsyncClient, wake: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(wake.wait(), self.resync_s)
            except asyncio.TimeoutError:
                pass
            wake.clear()
            await self._read(client)
            self._first_read.set()

    async def _read(self, client: httpx.AsyncClient) -> None:
        """Read the decision and the activation (the truth the events only point at)."""
        params = {"strategy_id": self.strategy_id}
        # Both reads finish (or fail) before either answer counts: no request is left running unread.
        answers = await asyncio.gather(_get_json(client, self._decide_path, params),
                                       _get_json(client, self._activation_path, params),
                                       return_exceptions=True)
        failures = [a for a in answers if isinstance(a, BaseException)]
        try:
            if failures:
                raise next((f for f in failures if isinstance(f, _Unreachable)), failures[0])
            facts = replace(self._facts, decision=DecisionAnswer.model_validate(answers[0]),
                            activation=ActivationAnswer.model_validate(answers[1]), error=None)
        except _Unreachable as exc:
            self._failed("read", str(exc))
            return
        except _Refused as exc:
            facts = replace(self._facts, error=f"the gateway refused to say: {exc}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            facts = replace(self._facts, error=f"the gateway's answer is not a decision/activation "
                                               f"envelope: {where}: {first['msg']}")
        # The gateway answered: what failed before and is connected again counts as cured.
        self._broken.pop("read", None)
        for topic in self._connected:
            self._broken.pop(topic, None)
        if not self._broken:
            facts = replace(facts, down_since=None, down_why="")
        self._facts = facts
        self.state()

    def _failed(self, source: str, why: str) -> None:
        self._broken[source] = why
        facts = self._facts
        self._facts = replace(facts, down_why=why,
                              down_since=facts.down_since if facts.down_since is not None else time.monotonic())
        self.state()

    async def _follow(self, client: httpx.AsyncClient, topic: str, wake: asyncio.Event) -> None:
        """Keep one event stream open; every event about this world (and strategy) asks for a read."""
        failures = 0
        params = {"topic": topic, "from_latest": "true"}
        timeout = httpx.Timeout(self.http_timeout_s, read=STREAM_READ_TIMEOUT_S)
        while True:
            try:
                async with client.stream("GET", "/events", params=params, timeout=timeout) as resp:
                    if resp.status_code != 200:
                        raise _Unreachable(f"HTTP {resp.status_code}")
                    self._connected.add(topic)
                    failures = 0
                    wake.set()  # subscribed: read what is true now
                    async for event in server_events(resp.aiter_lines()):
                        if self._concerns(topic, event):
                            wake.set()
                why = "the gateway ended the stream"
            except (httpx.HTTPError, _Unreachable) as exc:
                why = _transport_problem(exc)
            self._connected.discard(topic)
            self._failed(topic, f"{topic} event stream: {why}")
            self.metrics.reconnects.labels(world=self.world, strategy=self.strategy_id, topic=topic).inc()
            failures += 1
            await asyncio.sleep(backoff_delay(failures, self.backoff_base_s, self.backoff_cap_s))

    def _concerns(self, topic: str, event: ServerEvent) -> bool:
        """Whether an event is about this world (and, for decisions, this strategy).  One that cannot
        be understood counts as relevant: reading the truth again is always safe."""
        try:
            body = json.loads(event.data)["data"]
            if body.get("world_id") != self.world:
                return False
            return topic != "decision" or body.get("strategy_id") == self.strategy_id
        except (ValueError, KeyError, TypeError, AttributeError):
            return True


async def _get_json(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> Any:
    """The JSON answer of a GET; ``_Unreachable`` when the gateway gave none, ``_Refused`` for a 4xx
    (the same two outcomes the SDK's gateway client distinguishes)."""
    try:
        resp = await client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise _Unreachable(f"GET {path}: {_transport_problem(exc)}") from None
    if resp.status_code >= 500:
        raise _Unreachable(f"GET {path}: HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        raise _Unreachable(f"GET {path}: answer is not JSON (HTTP {resp.status_code})") from None
    if resp.status_code >= 400:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        code = err.get("code", f"HTTP_{resp.status_code}") if isinstance(err, dict) else f"HTTP_{resp.status_code}"
        message = err.get("message", "") if isinstance(err, dict) else ""
        raise _Refused(f"GET {path}: {code}: {message}")
    return body


def _transport_problem(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"connection refused or unreachable ({exc})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _checked_url(url: object) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"gateway_url: expected an http(s) URL such as http://127.0.0.1:8000, got {url!r}")
    return url.rstrip("/")  # type: ignore[union-attr]


def _checked_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: must be a non-empty string, got {value!r}")
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
