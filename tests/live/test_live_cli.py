"""`qmtl run --live` refuses what its command line gets wrong before compiling or connecting, and what
the feed gets wrong (no stream for its subject) in one line before it warms up."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.live.feed import FeedError
from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.process import serve_live
from qmtl.live.runner import LiveRunner

from .support import bars, compile_strategy

ROOT = Path(__file__).resolve().parents[2]


def test_run_live_says_what_is_missing_or_malformed(tmp_path):
    _, strategy = compile_strategy(tmp_path)
    history = tmp_path / "history.parquet"
    bars(10).to_parquet(history)
    cli = CliRunner()
    base = ["run", str(strategy), "--data", str(history)]
    cases = [([], "--out is required"),
             (["--live", "--feed", "nats://127.0.0.1:4222/bars.BTC"], "needs --world and --feed"),
             (["--live", "--world", "demo", "--feed", "http://127.0.0.1/bars"], "expected nats://HOST:PORT/SUBJECT"),
             (["--live", "--world", "de mo", "--feed", "nats://127.0.0.1:4222/bars.BTC"], "world 'de mo'"),
             (["--live", "--world", "demo", "--feed", "nats://127.0.0.1:4222/b", "--broker", "ib"], "--broker 'ib'"),
             (["--live", "--world", "demo", "--feed", "nats://127.0.0.1:4222/b", "--max-bar-age", "0"],
              "--max-bar-age 0.0: expected a positive number of seconds")]
    for extra, says in cases:
        got = cli.invoke(app, base + extra)
        assert got.exit_code == 2 and says in got.output, (extra, got.output)


def test_orders_refuses_a_domain_that_has_no_log():
    for domain in ("backtest", "LIVE"):
        got = CliRunner().invoke(app, ["orders", "w", "--domain", domain])
        assert got.exit_code == 2 and "expected paper or live" in got.output, got.output


def test_a_feed_whose_stream_does_not_exist_is_one_line_naming_the_subject(scope, tmp_path):
    """Run as an operator runs it (its own process): a non-zero exit, one error line saying which
    subject has no stream and how to make one, and no traceback (before: brokers torn down under the
    runner's failure printed asyncio's shutdown tracebacks)."""
    _, strategy = compile_strategy(tmp_path)
    history = tmp_path / "history.parquet"
    bars(10).to_parquet(history)
    subject = scope.subject("BTC")  # no stream holds it: the test made none
    got = subprocess.run([sys.executable, "-m", "qmtl.cli.main", "run", str(strategy), "--live", "--world",
                          scope.world, "--feed", scope.feed("BTC"), "--data", str(history),
                          "--gateway-url", "http://127.0.0.1:9"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert got.returncode == 1, got.stderr
    assert "Traceback" not in got.stderr and "Traceback" not in got.stdout, got.stderr
    errors = [line for line in got.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: no JetStream stream holds subject {subject!r}: create one for the feed first, "
                      f"e.g. nats stream add BARS --subjects '{scope.prefix}.>'"], got.stderr
    assert got.stderr.strip() == errors[0], got.stderr  # nothing else: the check runs before the gate starts


def test_a_runner_failing_beside_brokers_ends_them_before_closing_their_connection(scope, tmp_path, caplog):
    """``serve_live`` with simulated brokers: the runner's failure is raised as it is, after the brokers
    stopped, so asyncio reports no broker dying on a closed connection at shutdown."""
    compiled, _ = compile_strategy(tmp_path)
    runner = LiveRunner(compiled, bars(10), scope.feed("BTC"), scope.world,
                        StaticGate(GateState(False, None, "unused")))
    with caplog.at_level(logging.WARNING):
        with pytest.raises(FeedError, match=re.escape(repr(scope.subject("BTC")))):
            asyncio.run(serve_live(runner, ("paper", "live")))
        gc.collect()  # a task that died unseen is reported when it is collected
    assert not [r for r in caplog.records if r.name == "asyncio"], [r.getMessage() for r in caplog.records]



def test_metrics_port_serves_the_order_gate_beside_the_bar_counters(scope, tmp_path):
    """``--metrics-port`` serves the gate's series too (before: only the bar/order counters; the gate
    kept its own registry, so an operator could not scrape whether it was open).  The gateway here
    answers nothing, so the gate is closed (unreachable) once its grace runs out."""
    import socket
    import time

    import httpx
    import nats

    from .support import make_bars_stream

    async def make_stream() -> None:
        nc = await nats.connect(scope.feed("BTC").rsplit("/", 1)[0])
        await make_bars_stream(nc.jetstream(), scope)
        await nc.close()

    asyncio.run(make_stream())
    _, strategy = compile_strategy(tmp_path)
    history = tmp_path / "history.parquet"
    bars(10).to_parquet(history)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qmtl.cli.main", "run", str(strategy), "--live", "--world",
                             scope.world, "--feed", scope.feed("BTC"), "--data", str(history),
                             "--gateway-url", "http://127.0.0.1:9", "--metrics-port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        text, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline and 'reason="unreachable"' not in text:
            time.sleep(0.5)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    gate = [line for line in text.splitlines() if line.startswith("qmtl_order_gate_open{")]
    assert gate and all(f'world="{scope.world}"' in line and line.endswith(" 0.0") for line in gate), text
    assert 'qmtl_order_gate_transitions_total{' in text and 'reason="unreachable"' in text, text
    assert 'qmtl_live_bars_dropped_total{reason="late"}' in text, text
