"""`qmtl run STRATEGY --live --world W --feed nats://HOST:PORT/SUBJECT --data HISTORY`: the strategy on
a live feed, warmed up on HISTORY, its orders gated by the world's decision for it (docs/design.md
"Live runs").  Long-running; SIGINT/SIGTERM stop it cleanly, and a restart resumes where it was."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from .output import err, out, print_diagnostics

#: the domains a simulated broker serves when ``--broker sim``
BROKER_DOMAINS = ("paper", "live")


def run_live(file: Path, cls: str | None, data: str, world: str | None, feed: str | None,
             gateway_url: str | None, broker: str, metrics_port: int | None,
             max_bar_age: float | None = None) -> None:
    from qmtl.compiler.pipeline import compile as compile_strategy
    from qmtl.ir.diagnostics import CompileError
    from qmtl.live.bar_age import checked_max_age
    from qmtl.live.connection import NatsUnreachable
    from qmtl.live.feed import FeedAddress, FeedError, check_feed
    from qmtl.live.lock import NotExclusive
    from qmtl.live.order_log import LogError, check_token
    from qmtl.live.process import serve_live
    from qmtl.live.runner import LiveRunner, live_strategy_id
    from qmtl.runtime.results import NodeRuntimeError
    from qmtl.services.client import resolve_gateway_url

    if world is None or feed is None:
        _fail("a live run needs --world and --feed (e.g. --feed nats://127.0.0.1:4222/bars.BTC)", 2)
    if broker not in ("sim", "none"):
        _fail(f"--broker {broker!r}: expected sim or none", 2)
    try:  # what the command line got wrong, before anything is compiled or connected
        FeedAddress.parse(feed)
        check_token(world, "world")
        checked_max_age(max_bar_age, 1)
    except (FeedError, LogError, ValueError) as exc:
        _fail(str(exc), 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        compiled = compile_strategy(file, cls)
        from qmtl.live.gate import GateMetrics, WorldGate  # the gate following the world's decision
        from qmtl.live.metrics import LiveMetrics
        # one registry for the bars/orders counters and the gate's: --metrics-port serves one registry,
        # and an operator must see from it whether the gate is open and why it changed
        metrics = LiveMetrics()
        gate = WorldGate(resolve_gateway_url(gateway_url), world, live_strategy_id(compiled),
                         metrics=GateMetrics(metrics.registry))
        runner = LiveRunner(compiled, data, feed, world, gate, metrics=metrics, max_bar_age=max_bar_age)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(file))
        raise typer.Exit(1)
    if metrics_port is not None:
        from prometheus_client import start_http_server
        try:
            start_http_server(metrics_port, addr="127.0.0.1", registry=runner.metrics.registry)
        except OSError as exc:
            _fail(f"--metrics-port {metrics_port}: {exc.strerror or exc}", 2)
    try:  # a missing server or stream is one line now, not after the warm-up
        asyncio.run(check_feed(runner.address))
    except (NatsUnreachable, FeedError) as exc:
        _fail(str(exc), 1)
    out.print(f"{compiled.name}: live in world {world} as {runner.strategy} on {feed} "
              f"(orders while the world activates it; Ctrl-C stops)", markup=False)
    gate.start()
    try:
        asyncio.run(serve_live(runner, BROKER_DOMAINS if broker == "sim" else ()))
    except (NatsUnreachable, FeedError, NotExclusive) as exc:
        _fail(str(exc), 1)
    except NodeRuntimeError as exc:
        _fail(str(exc), 1)
    finally:
        gate.stop()


def _fail(message: str, code: int) -> None:
    err.print(f"error: {message}", style="bold red", markup=False)
    raise typer.Exit(code)
