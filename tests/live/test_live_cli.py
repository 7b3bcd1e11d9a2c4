"""`qmtl run --live` refuses what its command line gets wrong before compiling or connecting."""

from __future__ import annotations

from typer.testing import CliRunner

from qmtl.cli.main import app

from .support import bars, compile_strategy


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
             (["--live", "--world", "demo", "--feed", "nats://127.0.0.1:4222/b", "--broker", "ib"], "--broker 'ib'")]
    for extra, says in cases:
        got = cli.invoke(app, base + extra)
        assert got.exit_code == 2 and says in got.output, (extra, got.output)


def test_orders_refuses_a_domain_that_has_no_log():
    for domain in ("backtest", "LIVE"):
        got = CliRunner().invoke(app, ["orders", "w", "--domain", domain])
        assert got.exit_code == 2 and "expected paper or live" in got.output, got.output
