"""End to end: Runner.submit and `qmtl submit` against the real services (uvicorn on a free port),
once on SQLite in a temp dir and once on PostgreSQL + Redis (tests/e2e/conftest.py):
world → compile → replay → gateway diff → world evaluation → decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.runner.runner import Runner
from qmtl.runtime.synthetic import synthetic_bars
from qmtl.services.client import GatewayClient
from tests.submit_support import MOMENTUM, closed_port_url

# Same price input (interval and period), a different signal: the input node must be reused.
REVERSION = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
import pandas as pd


class Reversion(Strategy):
    def setup(self):
        prices = StreamInput(interval="60s", period=30)

        def fade(view) -> pd.DataFrame:
            close = view.as_frame(prices, 60, columns=["close"]).frame["close"]
            z = (close - close.rolling(20).mean()) / close.rolling(20).std()
            return pd.DataFrame({"signal": -(z > 1).astype(int) + (z < -1).astype(int)})

        self.add_nodes([prices, Node(input=prices, compute_fn=fade, name="reversion_signal")])
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e-files")
    (root / "momentum.py").write_text(MOMENTUM)
    (root / "reversion.py").write_text(REVERSION)
    synthetic_bars(3000, symbols=("AAA", "BBB"), interval=60, seed=11).to_parquet(
        root / "prices.parquet", index=False)
    return {"momentum": root / "momentum.py", "reversion": root / "reversion.py",
            "prices": root / "prices.parquet"}


def create_world(url: str, world: str, **kwargs) -> None:
    with GatewayClient(url) as client:
        client.create_world(world, **kwargs)


def test_submit_is_accepted_with_metrics_and_a_default_safe_decision(services, files) -> None:
    create_world(services, "e2e-validate", policy={"max_mode": "validate"})
    result = Runner.submit(files["momentum"], world="e2e-validate", data=files["prices"],
                           gateway_url=services)
    assert result.status == "accepted", result.downgrade_reason
    assert result.strategy_id and not result.safe_mode
    m = result.precheck.metrics
    assert m.sharpe is not None and m.max_drawdown is not None and m.max_drawdown <= 0
    assert m.trades and m.trades > 0 and m.bars > 2000
    assert result.precheck.returns_source.startswith("momentum_signal.signal")
    assert not result.precheck.synthetic_data
    # the world's envelope, not a local one: it carries the submission's as_of and fingerprint
    dec = result.decision
    assert dec.world_id == "e2e-validate" and dec.strategy_id == result.strategy_id
    assert dec.execution_domain == "backtest" and dec.orders_gated
    assert dec.dataset_fingerprint == result.precheck.dataset_fingerprint
    assert dec.as_of == result.precheck.as_of
    assert result.activation is not None and result.activation["world_id"] == "e2e-validate"
    # every node is new on the first submission, each with a queue in this world's backtest domain
    assert result.new_nodes and not result.reused_nodes
    assert set(result.queue_map) == {n.node_id for n in result.new_nodes}
    assert all(q.startswith("e2e-validate.backtest.") for q in result.queue_map.values())
    # the gateway kept the submission
    with GatewayClient(services) as client:
        stored = client.get_strategy(result.strategy_id)
    assert stored["world_ids"] == ["e2e-validate"]
    assert stored["meta"]["dataset_fingerprint"] == result.precheck.dataset_fingerprint


def test_world_without_live_never_goes_live(services, files) -> None:
    create_world(services, "e2e-sandbox", preset="sandbox")
    result = Runner.submit(files["momentum"], world="e2e-sandbox", data=files["prices"],
                           gateway_url=services)
    assert result.status == "accepted"
    assert result.decision.execution_domain != "live" and result.decision.effective_mode != "live"


def test_second_strategy_reuses_the_shared_price_input(services, files) -> None:
    create_world(services, "e2e-reuse", preset="sandbox")
    first = Runner.submit(files["momentum"], world="e2e-reuse", data=files["prices"],
                          gateway_url=services)
    second = Runner.submit(files["reversion"], world="e2e-reuse", data=files["prices"],
                           gateway_url=services)
    assert first.status == second.status == "accepted"
    assert first.strategy_id != second.strategy_id
    reused = {n.node_id: n for n in second.reused_nodes}
    assert "stream_input" in [n.op for n in reused.values()], "the shared price input is reused"
    first_ids = {n.node_id for n in first.new_nodes + first.reused_nodes}
    assert set(reused) <= first_ids
    assert all(first.strategy_id in n.used_by for n in reused.values())
    assert second.new_nodes  # its own signal is new


def test_resubmitting_is_idempotent(services, files) -> None:
    create_world(services, "e2e-idem", preset="sandbox")
    a = Runner.submit(files["momentum"], world="e2e-idem", data=files["prices"], gateway_url=services)
    b = Runner.submit(files["momentum"], world="e2e-idem", data=files["prices"], gateway_url=services)
    assert a.strategy_id == b.strategy_id and not b.new_nodes
    assert {n.node_id for n in b.reused_nodes} == {n.node_id for n in a.reused_nodes + a.new_nodes}


def test_unknown_world_is_a_clear_rejection(services, files) -> None:
    result = Runner.submit(files["momentum"], world="no-such-world", data=files["prices"],
                           gateway_url=services)
    assert result.status == "rejected" and not result.safe_mode
    assert "no-such-world" in result.downgrade_reason and "E_UNKNOWN_WORLD" in result.downgrade_reason
    assert result.precheck.metrics.sharpe is not None  # the precheck still ran


def test_closed_port_gives_safe_mode(files) -> None:
    url = closed_port_url()
    result = Runner.submit(files["momentum"], world="anything", data=files["prices"], gateway_url=url,
                           timeout=2.0)
    assert result.status == "safe_mode" and result.safe_mode
    assert url in result.downgrade_reason
    assert result.decision.effective_mode == "compute-only" and result.decision.orders_gated
    assert result.precheck.metrics.sharpe is not None


def test_env_gateway_url_is_used(services, files, monkeypatch: pytest.MonkeyPatch) -> None:
    create_world(services, "e2e-env", preset="sandbox")
    monkeypatch.setenv("QMTL_GATEWAY_URL", services)
    result = Runner.submit(files["momentum"], world="e2e-env", data=files["prices"])
    assert result.status == "accepted" and result.gateway_url == services and not result.embedded


def test_no_gateway_configured_starts_embedded_services(files, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMTL_GATEWAY_URL", raising=False)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = Runner.submit(files["momentum"], world="fresh")
    # a fresh machine: no server, no world yet; the embedded pair runs and a sandbox world is made
    assert result.embedded and result.status == "accepted", result.downgrade_reason
    assert result.notes and "sandbox" in result.notes[0] and "'fresh'" in result.notes[0]
    assert result.decision.world_id == "fresh" and result.decision.execution_domain != "live"
    assert (tmp_path / "home" / "gateway.db").exists()
    assert result.precheck.synthetic_data
    again = Runner.submit(files["momentum"], world="fresh")  # same home: the world is there now
    assert again.status == "accepted" and again.notes == []
    assert again.strategy_id == result.strategy_id and not again.new_nodes


def test_cli_submit_json(services, files) -> None:
    create_world(services, "e2e-cli", preset="sandbox")
    r = CliRunner().invoke(app, ["submit", str(files["momentum"]), "--world", "e2e-cli", "--data",
                                 str(files["prices"]), "--gateway-url", services, "--output", "json"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "accepted" and doc["decision"]["world_id"] == "e2e-cli"
    assert doc["precheck"]["metrics"]["sharpe"] is not None


def test_cli_submit_text_summary_and_exit_codes(services, files) -> None:
    create_world(services, "e2e-cli-text", preset="sandbox")
    cli = CliRunner()
    r = cli.invoke(app, ["submit", str(files["momentum"]), "-w", "e2e-cli-text", "--data",
                         str(files["prices"]), "--gateway-url", services], catch_exceptions=False)
    assert r.exit_code == 0
    assert "ACCEPTED" in r.stdout and "decision:" in r.stdout and "sharpe" in r.stdout
    assert "policy: passed; active, weight 1" in r.stdout
    r = cli.invoke(app, ["submit", str(files["momentum"]), "-w", "nope", "--data",
                         str(files["prices"]), "--gateway-url", services], catch_exceptions=False)
    assert r.exit_code == 1 and "E_UNKNOWN_WORLD" in r.stdout
    r = cli.invoke(app, ["submit", str(files["momentum"]), "-w", "x", "--data", str(files["prices"]),
                         "--gateway-url", closed_port_url(), "--timeout", "2"], catch_exceptions=False)
    assert r.exit_code == 2 and "SAFE_MODE" in r.stdout


def test_synthetic_data_never_reaches_live(services, files) -> None:
    """Issue 8 section 1: Runner.submit without data replays seeded bars; on a world that would decide
    live for real data, the result is capped at backtest with orders gated, and says why."""
    create_world(services, "e2e-synthetic", allow_live=True, policy={"max_mode": "live"})
    real = Runner.submit(files["momentum"], world="e2e-synthetic", data=files["prices"], gateway_url=services)
    assert real.decision.effective_mode == "live", real.decision.reason  # the control
    result = Runner.submit(files["momentum"], world="e2e-synthetic", gateway_url=services)
    assert result.status == "accepted" and result.precheck.synthetic_data is True
    dec = result.decision
    assert (dec.effective_mode, dec.execution_domain, dec.orders_gated) == ("validate", "backtest", True)
    assert "synthetic" in dec.reason
    assert result.evaluation is not None and not result.evaluation.active
    assert all(".backtest." in q for q in result.queue_map.values())


def test_submit_result_shows_the_world_allocation_and_keeps_earlier_strategies(services, files) -> None:
    """Issue 8 section 2: a second strategy does not drop the first; the result shows the allocation."""
    create_world(services, "e2e-alloc", preset="sandbox")
    first = Runner.submit(files["momentum"], world="e2e-alloc", data=files["prices"], gateway_url=services)
    second = Runner.submit(files["reversion"], world="e2e-alloc", data=files["prices"], gateway_url=services)
    assert first.status == second.status == "accepted"
    assert second.evaluation is not None and second.evaluation.active
    with GatewayClient(services) as client:
        evaluation_active = client.rebalance_plan(["e2e-alloc"])["plans"][0]["target"]
        assert set(evaluation_active) == {first.strategy_id, second.strategy_id}
        etag = client.activation("e2e-alloc")["etag"]
        client.apply("e2e-alloc", "alloc-r1", etag=etag)
    third = Runner.submit(files["reversion"], world="e2e-alloc", data=files["prices"], gateway_url=services)
    snap = third.allocation
    assert snap is not None and snap.weight == 0.5 and snap.rank in (1, 2) and snap.contribution == 0.5
    assert snap.etag and snap.updated_at


def test_reused_nodes_say_where_their_values_came_from(services, files, tmp_path, monkeypatch) -> None:
    """The first submission computes the signal and stores it for these bars; the same strategy on
    the same bars (another world) reads it back, and says so node by node."""
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    # a signal no other test submits, so the gateway's index has no artifact of it yet
    strategy = tmp_path / "sourced.py"
    strategy.write_text(MOMENTUM.replace("GeneralStrategy", "Sourced").replace("rolling(5)", "rolling(9)"))
    create_world(services, "e2e-src-a", preset="sandbox")
    create_world(services, "e2e-src-b", preset="sandbox")
    first = Runner.submit(strategy, world="e2e-src-a", data=files["prices"], gateway_url=services)
    second = Runner.submit(strategy, world="e2e-src-b", data=files["prices"], gateway_url=services)
    assert first.status == second.status == "accepted"
    signal = first.precheck.metrics and next(n for n in first.new_nodes + first.reused_nodes
                                             if n.name == "momentum_signal")
    assert signal.source.startswith("computed, stored ")
    again = next(n for n in second.reused_nodes if n.node_id == signal.node_id)
    assert again.source == "artifact " + signal.source.removeprefix("computed, stored ")
    assert second.precheck.metrics == first.precheck.metrics
    # the gateway's index: the first run registered the artifact, the second submission's answer
    # names it for this node on these bars, and it is in use (bound strategies use the node)
    assert signal.artifact is None and again.artifact == signal.source.removeprefix("computed, stored ")
    with GatewayClient(services) as client:
        [row] = client.artifacts(node_id=signal.node_id)
    assert row["location"] == again.artifact and first.strategy_id in row["used_by"] and row["rows"] > 0


def test_gc_keeps_artifacts_of_nodes_bound_strategies_use(services, files, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from qmtl.cli.main import app

    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    (tmp_path / "solo.py").write_text(MOMENTUM.replace("GeneralStrategy", "SoloGc").replace(
        "rolling(5)", "rolling(7)"))
    create_world(services, "e2e-gc", preset="sandbox")
    result = Runner.submit(tmp_path / "solo.py", world="e2e-gc", data=files["prices"], gateway_url=services)
    assert result.status == "accepted"
    cli = CliRunner()
    kept = cli.invoke(app, ["artifacts", "gc", "--older-than", "0s", "--gateway-url", services])
    assert kept.exit_code == 0 and "removed 0 artifacts" in kept.output, kept.output
    gone = cli.invoke(app, ["artifacts", "gc", "--older-than", "0s"])
    assert "removed 0 artifacts" not in gone.output


def test_the_correlation_strategy_submits_once_tagged_indicators_exist(services, files, tmp_path,
                                                                       monkeypatch) -> None:
    """The blueprint's CorrelationStrategy, submitted as written: E504 while no node tagged
    ``ta-indicator`` was computed on these bars; accepted once a strategy with such nodes was
    submitted on them; the gateway's graph knows the tags (``/queues/by_tag``)."""
    import httpx

    from tests.sharing.test_tag_queries import INDICATORS

    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    (tmp_path / "ind.py").write_text(INDICATORS)
    correlation = Path(__file__).resolve().parents[2] / "examples" / "correlation.py"
    create_world(services, "e2e-corr", preset="sandbox")
    before = Runner.submit(correlation, world="e2e-corr", data=files["prices"], gateway_url=services)
    assert before.status == "rejected" and "E504" in before.downgrade_reason
    ind = Runner.submit(tmp_path / "ind.py", world="e2e-corr", data=files["prices"], gateway_url=services)
    assert ind.status == "accepted", ind.downgrade_reason
    after = Runner.submit(correlation, world="e2e-corr", data=files["prices"], gateway_url=services)
    assert after.status == "accepted", after.downgrade_reason
    tagged = httpx.get(f"{services}/queues/by_tag", params={"tags": "ta-indicator", "world_id": "e2e-corr"}).json()
    names = {n.node_id: n.name for n in ind.new_nodes + ind.reused_nodes}
    assert {names.get(q["node_id"]) for q in tagged["queues"]} >= {"mom5", "vol10", "ma20"}
