"""``Runner.submit``: the single entry point from a strategy to a world's decision.

compile + lint (precheck) → replay the data through the generated flow → returns and metrics →
submit the DAG to the gateway → evaluate in the world → read decision and activation.

The world service is the source of truth; the local numbers are a precheck. Failures the user can fix
(compile errors, bad data, an unknown world) come back as a ``rejected`` result; a gateway that does not
answer gives ``safe_mode`` with a local default-safe decision. ``submit`` never raises for either.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import blake3
import numpy as np
import pandas as pd

from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.ir.run_clocks import backtest_clock_findings, missing_as_of
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.compute_cache import ComputeCache, RunContext
from qmtl.runtime.metrics import Calendar, calendar_of
from qmtl.runtime.performance import Performance, datasets_of, strategy_performance
from qmtl.services.client import (GatewayClient, GatewayError, GatewayUnavailable,
                                  configured_gateway_url)
from qmtl.services.worldservice.envelopes import DecisionEnvelope

from .results import (AllocationSnapshot, DiagnosticInfo, NodeRef, Precheck, RuleResult, SubmitResult, WorldEvaluation,
                     local_safe_decision)

#: Synthetic replay used when no data is given: enough bars to warm up any sane strategy.
SYNTHETIC_BARS = 2_000
SYNTHETIC_SEED = 0
#: The world gets at most this many (most recent) returns: enough for a correlation estimate while
#: keeping the evaluate request far below the gateway's body limit.
MAX_RETURNS_SENT = 10_000


@dataclass(frozen=True)
class Replay:
    """What the local run produced: the precheck and the per-bar returns behind its metrics."""

    precheck: Precheck
    returns: list[float]
    ok: bool
    sources: dict[str, str] = field(default_factory=dict)  # NodeID → where the replay got its values
    fingerprints: dict[str, str] = field(default_factory=dict)  # NodeID → fingerprint of its data
    written: list[dict] = field(default_factory=list)  # artifacts the replay stored (for the index)
    performance: Performance | None = None  # the returns behind the metrics, for the user and reports


class Runner:
    """World-driven execution. There is no client-side mode: the world decides what runs where."""

    @staticmethod
    def submit(strategy_cls_or_path: Any, world: str, data: Any = None,
               gateway_url: str | None = None, *, strategy: str | None = None,
               batch_size: int = 10_000, timeout: float = 10.0,
               embedded: bool = False, progress: Any = None,
               calendar: str | Calendar | None = None) -> SubmitResult:
        """Compile, replay and submit a strategy to ``world``; see the module docstring.

        The gateway is ``gateway_url`` → ``$QMTL_GATEWAY_URL`` → ``gateway_url`` in qmtl.yml, else the
        embedded services in-process; ``embedded=True`` uses the embedded services whatever is set.
        ``calendar`` annualises the precheck metrics (``qmtl.calendars``: ``24/7``, ``exchange``,
        ``252x24h``); without one, the world's policy ``calendar`` does, else ``252x24h``.  The
        result's ``returns``/``equity``/``drawdown`` and ``report()`` come from the same replay.
        """
        cal = calendar_of(calendar)  # an unknown name is the caller's error: raise before any work
        compiled, replay = _precheck(strategy_cls_or_path, data, strategy, batch_size, world, progress, cal)
        result = _submit(compiled, replay, world, gateway_url, timeout, embedded, calendar is None)
        if result.performance is None:
            result._performance = replay.performance
        return result


def _submit(compiled: Any, replay: Replay, world: str, gateway_url: str | None, timeout: float,
            embedded: bool, world_calendar: bool = True) -> SubmitResult:
    if compiled is None or not replay.ok:
        return SubmitResult(status="rejected", world=world, precheck=replay.precheck,
                            downgrade_reason=_first_error(replay.precheck))
    from qmtl.config import ConfigError
    try:
        url, config = _gateway_target(gateway_url, embedded)
    except ConfigError as exc:
        return SubmitResult(status="rejected", world=world, precheck=replay.precheck,
                            downgrade_reason=f"unusable configuration: {exc}")
    if url is not None:
        return _submit_to(url, compiled, world, replay, timeout, embedded=False, world_calendar=world_calendar)
    with _embedded_gateway(config) as embedded_url:
        return _submit_to(embedded_url, compiled, world, replay, timeout, embedded=True,
                          world_calendar=world_calendar)


def _in_world_calendar(client: GatewayClient, world: str, replay: Replay) -> tuple[Replay, list[str]]:
    """The replay with its metrics annualised by the world policy's ``calendar`` when it names one
    other than the replay's (the returns stay; only the annualisation changes), and a note saying so."""
    name = (client.get_policy(world) or {}).get("calendar")
    perf = replay.performance
    if not name or perf is None or name == perf.calendar.name:
        return replay, []
    perf = dc_replace(perf, calendar=calendar_of(name))
    precheck = replay.precheck.model_copy(update={"metrics": perf.metrics})
    return dc_replace(replay, precheck=precheck, performance=perf), [
        f"metrics annualised with world {world!r}'s calendar {name!r} ({perf.periods_per_year:,.0f} bars a year)"]


# --- precheck: compile, lint, replay, metrics ------------------------------------------------------


def _precheck(target: Any, data: Any, strategy: str | None,
              batch_size: int, world: str, progress: Any = None,
              calendar: Calendar | None = None) -> tuple[Any, Replay]:
    from qmtl.lint import checked_diagnostics
    from qmtl.compiler.pipeline import compile as compile_strategy
    try:
        compiled = compile_strategy(target, strategy)
    except CompileError as exc:
        return None, _failed(exc.diagnostics)
    diagnostics = checked_diagnostics(compiled) + backtest_clock_findings(compiled.module)
    if any(d.severity == "error" for d in diagnostics):
        return None, _failed(diagnostics)
    return compiled, _replay(compiled, data, batch_size, diagnostics, world, progress, calendar)


#: this process's per-world replay results, scoped by ComputeKey: submitting the same strategy on the
#: same bars to the same world again reuses its precheck; another world, domain, as_of or dataset
#: never does (it replays, reading the shared artifacts instead)
PRECHECKS = ComputeCache()


def _replay(compiled: Any, data: Any, batch_size: int, diagnostics: list[Diagnostic],
            world: str = "", progress: Any = None, calendar: Calendar | None = None) -> Replay:
    calendar = calendar_of(calendar)
    synthetic = data is None
    try:
        source = _synthetic_for(compiled) if synthetic else data
        datasets = datasets_of(source)
        loaded = dict(datasets) if isinstance(source, Mapping) else datasets[0][1]
    except CompileError as exc:
        return _failed(diagnostics + exc.diagnostics)
    except Exception as exc:  # noqa: BLE001 - unreadable data: report, don't crash
        return _failed(diagnostics + [Diagnostic("E510", f"replay failed: {type(exc).__name__}: {exc}")])
    # a local replay runs in the backtest domain, over exactly these bars bound under these tags
    fingerprint, as_of = dataset_fingerprint(d for _, d in datasets), _as_of(d for _, d in datasets)
    if missing_as_of(as_of):
        return _failed(diagnostics + missing_as_of(as_of))
    context = RunContext(world, "backtest", as_of, fingerprint + json.dumps([t for t, _ in datasets]))
    store = ArtifactStore()
    # the strategy (its NodeIDs and outputs) and the store its replay read and wrote
    identity = "blake3:" + blake3.blake3(json.dumps([compiled.dag["checksum"], compiled.dag["outputs"],
                                                     store.root, calendar.name], sort_keys=True).encode()).hexdigest()
    cached = PRECHECKS.get(identity, context)
    if cached is not None:
        return cached
    replay = _run_replay(compiled, datasets, loaded, source, synthetic, batch_size, diagnostics, store,
                         fingerprint, as_of, progress, calendar)
    if replay.ok:
        PRECHECKS.put(identity, context, replay)
    return replay


def _run_replay(compiled: Any, datasets: list, loaded: Any, source: Any, synthetic: bool, batch_size: int,
                diagnostics: list[Diagnostic], store: ArtifactStore, fingerprint: str, as_of: str | None,
                progress: Any = None, calendar: Calendar | None = None) -> Replay:
    try:
        # node values already stored for these bars are read, the rest computed and stored
        run = compiled.run(loaded, batch_size=batch_size, store=store, progress=progress)
    except CompileError as exc:
        return _failed(diagnostics + exc.diagnostics)
    except Exception as exc:  # noqa: BLE001 - user code raised during the replay: report, don't crash
        return _failed(diagnostics + [Diagnostic("E510", f"replay failed: {type(exc).__name__}: {exc}")])
    performance, found = strategy_performance(compiled, run.outputs, datasets, loaded, calendar)
    diagnostics = diagnostics + found
    precheck = Precheck(
        metrics=performance.metrics, diagnostics=[DiagnosticInfo.of(d) for d in diagnostics],
        returns_source=performance.source, data_source=_describe_source(source, synthetic, datasets),
        synthetic_data=synthetic, dataset_fingerprint=fingerprint, as_of=as_of, bars=sum(len(s) for _, d in datasets for s in d.streams))
    sharing = run.sharing
    return Replay(precheck, performance.raw_returns.tail(MAX_RETURNS_SENT).tolist(), ok=True,
                  sources=sharing.sources if sharing is not None else {},
                  fingerprints=sharing.fingerprints if sharing is not None else {},
                  written=sharing.written_artifacts if sharing is not None else [],
                  performance=performance)


def _failed(diagnostics: list[Diagnostic]) -> Replay:
    return Replay(Precheck(diagnostics=[DiagnosticInfo.of(d) for d in diagnostics]), [], ok=False)


def _first_error(precheck: Precheck) -> str:
    errors = [d for d in precheck.diagnostics if d.severity == "error"]
    first = errors[0].format() if errors else "precheck failed"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"precheck failed: {first}{more}"


def _synthetic_for(compiled: Any) -> pd.DataFrame:
    from qmtl.runtime.synthetic import synthetic_bars
    sources = [o.interval for o in compiled.module.outputs if o.kind == "source"] or \
              [o.interval for o in compiled.module.outputs]
    interval = min(sources) if sources else 60
    return synthetic_bars(SYNTHETIC_BARS, symbols=("SYM",), interval=interval, seed=SYNTHETIC_SEED)


def _describe_source(source: Any, synthetic: bool, datasets: list[tuple[str | None, Any]]) -> str:
    if synthetic:
        d = datasets[0][1]
        syms = ",".join(s.key or "SYM" for s in d.streams)
        return f"synthetic: {SYNTHETIC_BARS} seeded bars of {syms} (seed {SYNTHETIC_SEED})"
    if isinstance(source, Mapping):
        return "{" + ", ".join(f"{tag}: {d.source}" for tag, d in datasets) + "}"
    return str(source) if isinstance(source, (str, Path)) else datasets[0][1].source


def dataset_fingerprint(datasets: Iterator[Any] | list[Any]) -> str:
    """BLAKE3 over the loaded data: every stream's key, column names, dtypes and bytes. Two files
    with the same bars give the same fingerprint whatever their format."""
    h = blake3.blake3()
    for dataset in datasets:
        for stream in dataset.streams:
            h.update(f"stream:{stream.key}\n".encode())
            for name in sorted(stream.columns):
                arr = np.ascontiguousarray(stream.columns[name])
                h.update(f"{name}:{arr.dtype.str}:{arr.size}\n".encode())
                h.update(arr.tobytes())
    return "blake3:" + h.hexdigest()


def _as_of(datasets: Iterator[Any]) -> str | None:
    """The data's point in time: the last bar's timestamp (ISO 8601, UTC)."""
    last = [int(s.ts[-1]) for d in datasets for s in d.streams if len(s)]
    return datetime.fromtimestamp(max(last), timezone.utc).isoformat() if last else None


# --- the services ------------------------------------------------------------------------------------


def _gateway_target(explicit: str | None, embedded: bool) -> tuple[str | None, Any]:
    """Where to submit (``configured_gateway_url``'s order; None = embedded) and the config read for
    it (None when not needed). qmtl.yml is read at most once per submit, and a broken one raises
    ``ConfigError`` rather than silently meaning "no gateway"."""
    if not embedded:
        url = configured_gateway_url(explicit)
        if url is not None:
            return url, None
    from qmtl.config import load_config
    config = load_config()
    return (None if embedded else configured_gateway_url(explicit, config.gateway_url)), config


@contextlib.contextmanager
def _embedded_gateway(config: Any) -> Iterator[str]:
    from qmtl.services.app import EmbeddedServices
    with EmbeddedServices(config) as url:
        yield url


def _submit_to(url: str, compiled: Any, world: str, replay: Replay, timeout: float,
               embedded: bool, world_calendar: bool = True) -> SubmitResult:
    notes: list[str] = []
    precheck = replay.precheck
    base = {"world": world, "precheck": precheck, "gateway_url": url, "embedded": embedded,
            "notes": notes}
    strategy_id: str | None = None

    def done(result: SubmitResult) -> SubmitResult:
        result._performance = replay.performance  # the returns behind the metrics the world saw
        return result

    try:
        with GatewayClient(url, timeout=timeout) as client:
            if embedded:
                notes += _ensure_sandbox_world(client, world)
            if world_calendar:
                replay, said = _in_world_calendar(client, world, replay)
                notes += said
                base["precheck"] = precheck = replay.precheck
            ack = client.submit_strategy(compiled.dag, [world], {**_meta(precheck),
                                                                 "node_fingerprints": replay.fingerprints})
            strategy_id = ack["strategy_id"]
            if replay.written:  # the gateway's index: what is stored, for which data, used by whom
                client.register_artifacts(replay.written)
            nodes = _node_refs(ack)
            reused = [_sourced(nodes.get(n) or NodeRef(node_id=n), replay) for n in _ids(ack.get("reused", []))]
            new = [_sourced(nodes.get(n) or NodeRef(node_id=n), replay) for n in _ids(ack.get("new", []))]
            evaluated = client.evaluate(world, _evaluation(strategy_id, precheck, replay.returns))
            decision = client.decide(world, strategy_id)
            activation = client.activation(world, strategy_id)
            allocations = client.allocations(world)
    except GatewayUnavailable as exc:
        reason = f"gateway unavailable: {exc}"
        return done(SubmitResult(status="safe_mode", strategy_id=strategy_id, safe_mode=True,
                                 downgrade_reason=reason,
                                 decision=local_safe_decision(world, strategy_id, reason, precheck),
                                 **base))
    except GatewayError as exc:
        return done(SubmitResult(status="rejected", strategy_id=strategy_id,
                                 downgrade_reason=_rejection(exc, world), **base))
    envelope = DecisionEnvelope.model_validate(decision)
    unusable = unusable_decision(envelope, time.time())
    return done(SubmitResult(status="accepted", strategy_id=strategy_id, decision=envelope,
                             safe_mode=unusable is not None, downgrade_reason=unusable,
                             activation=_activation_of(activation, strategy_id),
                             evaluation=_evaluation_of(evaluated, strategy_id),
                             allocation=_allocation_of(allocations, strategy_id), reused_nodes=reused,
                             new_nodes=new, queue_map=dict(ack.get("queue_map", {})), **base))


def _sourced(ref: NodeRef, replay: Replay) -> NodeRef:
    """The node as the gateway saw it, plus where this replay took its values from."""
    source = replay.sources.get(ref.node_id)
    return ref.model_copy(update={"source": source}) if source else ref


def _ensure_sandbox_world(client: GatewayClient, world: str) -> list[str]:
    """The embedded pair on a fresh machine has no worlds and no server to create one through, so
    the first submission creates ``world`` with the sandbox preset (never live) and says so."""
    try:
        client.get_world(world)
        return []
    except GatewayError as exc:
        if exc.code != "E_UNKNOWN_WORLD":
            raise
    client.create_world(world, preset="sandbox",
                        description="created by Runner.submit on the embedded services")
    return [f"world {world!r} did not exist in the embedded services; created it with the sandbox "
            "preset (paper at most, never live)"]


def unusable_decision(decision: DecisionEnvelope, now: float) -> str | None:
    """Why the world's answer cannot be acted on (no decision, stale, no as_of/fingerprint), or None.

    The world already resolves such a decision to compute-only; saying so here as ``safe_mode`` lets
    a caller tell "the policy put me in backtest" from "nothing usable was decided".
    """
    if decision.decided_at is None:
        return f"the world has no decision for this strategy: {decision.reason}"
    decided = datetime.fromisoformat(decision.decided_at).timestamp()
    if now > decided + decision.ttl:
        return f"the world's decision is stale (decided {decision.decided_at}, ttl {decision.ttl}s)"
    if not decision.as_of or not decision.dataset_fingerprint:
        return "the world's decision has no as_of/dataset_fingerprint: default-safe compute-only"
    return None


def _meta(precheck: Precheck) -> dict[str, Any]:
    # synthetic_data: seeded bars are never evidence; the gateway and the world cap them at backtest.
    return {"as_of": precheck.as_of, "dataset_fingerprint": precheck.dataset_fingerprint,
            "synthetic_data": precheck.synthetic_data}


def _evaluation(strategy_id: str, precheck: Precheck, returns: list[float]) -> dict[str, Any]:
    return {"strategies": [{"strategy_id": strategy_id, "metrics": precheck.metrics.policy_values(),
                            "returns": returns}],
            "as_of": precheck.as_of, "dataset_fingerprint": precheck.dataset_fingerprint,
            "synthetic_data": precheck.synthetic_data}


def _evaluation_of(answer: Any, strategy_id: str) -> WorldEvaluation | None:
    """This strategy's part of ``POST /worlds/{id}/evaluate``'s answer (None if it is not there)."""
    if not isinstance(answer, Mapping):
        return None
    mine = (answer.get("results") or {}).get(strategy_id)
    if not isinstance(mine, Mapping):
        return None
    return WorldEvaluation(evaluation_seq=answer.get("evaluation_seq"), passed=bool(mine.get("passed")),
                           active=strategy_id in (answer.get("active") or []),
                           weight=float((answer.get("weights") or {}).get(strategy_id, 0.0)),
                           rules=[RuleResult.model_validate(r) for r in mine.get("rules", [])])


def _allocation_of(view: Any, strategy_id: str) -> AllocationSnapshot | None:
    """This strategy's line of ``GET /worlds/{id}/allocations`` (weight 0, no rank, when not allocated)."""
    if not isinstance(view, Mapping):
        return None
    mine = next((s for s in view.get("strategies") or [] if isinstance(s, Mapping)
                 and s.get("strategy_id") == strategy_id), {})
    return AllocationSnapshot(weight=float(mine.get("weight", 0.0)), rank=mine.get("rank"),
                              contribution=float(mine.get("contribution", 0.0)), etag=view.get("etag"),
                              updated_at=view.get("updated_at"))


def _node_refs(ack: Mapping[str, Any]) -> dict[str, NodeRef]:
    return {n["node_id"]: NodeRef(node_id=n["node_id"], name=n.get("name"), op=n.get("op"),
                                  used_by=list(n.get("used_by", [])), artifact=n.get("artifact"))
            for n in ack.get("nodes", [])}


def _ids(entries: list[Any]) -> list[str]:
    """``reused``/``new`` as NodeIDs, whether the gateway lists ids or node objects."""
    return [e["node_id"] if isinstance(e, Mapping) else str(e) for e in entries]


def _activation_of(activation: Any, strategy_id: str | None) -> dict[str, Any] | None:
    """This strategy's activation envelope from a single envelope or a list of them."""
    if isinstance(activation, Mapping):
        for key in ("activations", "items", "strategies"):
            if isinstance(activation.get(key), list):
                return _activation_of(activation[key], strategy_id)
        return dict(activation)
    if isinstance(activation, list):
        mine = [a for a in activation if isinstance(a, Mapping) and a.get("strategy_id") == strategy_id]
        return dict(mine[0]) if mine else None
    return None


def _rejection(exc: GatewayError, world: str) -> str:
    if exc.code == "E_UNKNOWN_WORLD":
        return (f"unknown world {world!r} ({exc.code}: {exc.message}); create it first, e.g. "
                f"`qmtl world create {world} --preset sandbox`")
    return f"gateway rejected the submission: {exc.code}: {exc.message}"
