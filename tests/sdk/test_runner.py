"""Runner.submit's own logic: fingerprints, the safe-mode envelope, rejections and precheck."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qmtl.runtime.data import load
from qmtl.runner.runner import Runner, dataset_fingerprint, unusable_decision
from qmtl.runner.results import Precheck, SubmitResult, local_safe_decision
from qmtl.runtime.synthetic import synthetic_bars
from qmtl.services.client import GatewayClient, GatewayError, GatewayUnavailable
from tests.submit_support import MOMENTUM, UNSTABLE_CLOSURE, closed_port_url

BROKEN = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Broken(Strategy):
    def setup(self):
        price = StreamInput(interval="sixty", period=30)
        self.add_nodes([price])
'''


@pytest.fixture()
def strategy_file(tmp_path: Path) -> Path:
    path = tmp_path / "momentum.py"
    path.write_text(MOMENTUM)
    return path


def test_fingerprint_depends_on_bars_not_on_file_format(tmp_path: Path) -> None:
    bars = synthetic_bars(50, symbols=("A", "B"), seed=3)
    bars.to_parquet(tmp_path / "b.parquet", index=False)
    bars.to_csv(tmp_path / "b.csv", index=False)
    fp_parquet = dataset_fingerprint([load(tmp_path / "b.parquet")])
    assert fp_parquet == dataset_fingerprint([load(tmp_path / "b.csv")])
    assert fp_parquet == dataset_fingerprint([load(bars)])
    assert fp_parquet.startswith("blake3:") and len(fp_parquet) == len("blake3:") + 64
    changed = bars.copy()
    changed.loc[10, "close"] *= 1.0001
    assert dataset_fingerprint([load(changed)]) != fp_parquet
    assert dataset_fingerprint([load(synthetic_bars(50, symbols=("A", "B"), seed=4))]) != fp_parquet


def test_unusable_world_decisions_are_named() -> None:
    from qmtl.services.worldservice.envelopes import StoredDecision, resolve_decision

    decided, fp, as_of = 1_700_000_000.0, "blake3:" + "c" * 64, "2024-01-01T00:00:00+00:00"
    fresh = resolve_decision("w", "s", False, StoredDecision("paper", "ok", decided, 60, as_of, fp),
                             now=decided + 1)
    assert unusable_decision(fresh, now=decided + 1) is None
    assert "stale" in unusable_decision(fresh, now=decided + 61)
    none = resolve_decision("w", "s", False, None, now=decided)
    assert "no decision" in unusable_decision(none, now=decided)
    bare = resolve_decision("w", "s", False, StoredDecision("paper", "ok", decided, 60, None, fp),
                            now=decided + 1)
    assert "as_of" in unusable_decision(bare, now=decided + 1)


def test_local_safe_decision_is_default_safe() -> None:
    pre = Precheck(as_of="2024-01-01T00:00:00+00:00", dataset_fingerprint="blake3:" + "a" * 64)
    env = local_safe_decision("w", "sid", "gateway unavailable: refused", pre)
    assert env.effective_mode == "compute-only" and env.execution_domain == "backtest"
    assert env.orders_gated is True
    assert "gateway unavailable" in env.reason and env.as_of == pre.as_of


def test_client_maps_refused_connection_to_unavailable() -> None:
    with GatewayClient(closed_port_url(), timeout=2.0) as client:
        with pytest.raises(GatewayUnavailable, match="connection refused"):
            client.health()


def test_client_error_carries_code_and_message() -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path == b"/worlds/x%2Fy":  # ids are one escaped path segment
            return httpx.Response(404, json={"error": {"code": "E_UNKNOWN_WORLD", "message": "nope"}})
        return httpx.Response(502, text="bad gateway")

    with GatewayClient("http://gw.test", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(GatewayError) as info:
            client.get_world("x/y")
        assert (info.value.status, info.value.code, info.value.message) == (404, "E_UNKNOWN_WORLD", "nope")
        with pytest.raises(GatewayUnavailable, match="HTTP 502"):
            client.list_worlds()


def test_compile_errors_are_a_rejected_result_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    result = Runner.submit(path, world="w", gateway_url=closed_port_url())
    assert isinstance(result, SubmitResult)
    assert result.status == "rejected" and result.decision is None
    codes = [d.code for d in result.precheck.diagnostics]
    assert "E304" in codes
    assert "E304" in result.downgrade_reason and "sixty" in result.downgrade_reason


def test_unreachable_gateway_gives_safe_mode_with_precheck(strategy_file: Path) -> None:
    url = closed_port_url()
    result = Runner.submit(strategy_file, world="w", gateway_url=url, timeout=2.0)
    assert result.status == "safe_mode" and result.safe_mode is True
    assert url in result.downgrade_reason and "gateway unavailable" in result.downgrade_reason
    assert result.decision.execution_domain == "backtest" and result.decision.orders_gated
    # the precheck ran on seeded synthetic data and says so
    pre = result.precheck
    assert pre.synthetic_data and "synthetic" in pre.data_source
    assert pre.returns_source.startswith("momentum_signal.signal")
    assert pre.metrics.bars > 1000 and pre.metrics.sharpe is not None
    assert pre.metrics.trades and pre.metrics.trades > 0
    assert pre.dataset_fingerprint.startswith("blake3:")


def test_precheck_is_deterministic_and_data_dependent(strategy_file: Path, tmp_path: Path) -> None:
    url = closed_port_url()
    a = Runner.submit(strategy_file, world="w", gateway_url=url, timeout=2.0)
    b = Runner.submit(strategy_file, world="w", gateway_url=url, timeout=2.0)
    assert a.precheck.metrics == b.precheck.metrics
    other = synthetic_bars(1500, seed=99)
    c = Runner.submit(strategy_file, world="w", data=other, gateway_url=url, timeout=2.0)
    assert not c.precheck.synthetic_data and c.precheck.data_source == "<DataFrame>"
    assert c.precheck.dataset_fingerprint != a.precheck.dataset_fingerprint
    assert c.precheck.metrics != a.precheck.metrics
    assert c.precheck.as_of == pd.Timestamp(int(other["ts"].max()), unit="s", tz="UTC").isoformat()


def test_bad_data_is_a_rejected_result(strategy_file: Path, tmp_path: Path) -> None:
    bad = synthetic_bars(100).drop(columns=["ts"])
    result = Runner.submit(strategy_file, world="w", data=bad, gateway_url=closed_port_url())
    assert result.status == "rejected"
    assert [d.code for d in result.precheck.diagnostics if d.severity == "error"] == ["E501"]


NO_SIGNAL = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Spread(Strategy):
    def setup(self):
        bars = StreamInput(interval="60s", period=10)

        def spread(view):
            frame = view.as_frame(bars, 60, columns=["high", "low"]).frame
            return (frame["high"] - frame["low"]).rolling(3).mean()

        self.add_nodes([bars, Node(input=bars, compute_fn=spread, name="spread")])
'''


def test_strategy_class_and_dict_data(tmp_path: Path) -> None:
    from qmtl.compiler.loader import load_strategy

    path = tmp_path / "momentum.py"
    path.write_text(MOMENTUM)
    cls = load_strategy(path, None)
    bars = synthetic_bars(800, seed=5).drop(columns=["symbol"])
    by_path = Runner.submit(path, world="w", data=bars, gateway_url=closed_port_url(), timeout=2.0)
    by_class = Runner.submit(cls, world="w", data={"px": bars}, gateway_url=closed_port_url(),
                             timeout=2.0)
    assert by_class.status == by_path.status == "safe_mode"
    assert by_class.precheck.metrics == by_path.precheck.metrics
    assert by_class.precheck.data_source == "{px: <DataFrame>}"


def test_no_signal_output_means_no_metrics_but_still_submits(tmp_path: Path) -> None:
    path = tmp_path / "spread.py"
    path.write_text(NO_SIGNAL)
    result = Runner.submit(path, world="w", gateway_url=closed_port_url(), timeout=2.0)
    assert result.status == "safe_mode"
    assert result.precheck.returns_source is None
    assert result.precheck.metrics.sharpe is None and result.precheck.metrics.bars == 0


def test_malformed_qmtl_yml_is_a_rejected_result_naming_the_file(
        strategy_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMTL_GATEWAY_URL", raising=False)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "qmtl.yml").write_text("profile: [\n")
    result = Runner.submit(strategy_file, world="w")
    assert result.status == "rejected" and result.decision is None
    assert "qmtl.yml:2" in result.downgrade_reason and "not valid YAML" in result.downgrade_reason
    # the precheck still ran and is reported next to the rejection
    assert result.precheck.metrics.sharpe is not None


def test_an_unstable_opaque_function_is_reported_once_as_an_error(tmp_path: Path) -> None:
    from qmtl.lint import lint_path
    path = tmp_path / "unstable.py"
    path.write_text(UNSTABLE_CLOSURE)
    result = Runner.submit(path, world="w", gateway_url=closed_port_url())
    assert result.status == "rejected"
    found = [d for d in result.precheck.diagnostics if d.code == "E111"]
    assert [d.severity for d in found] == ["error"]
    # submit and lint agree, finding for finding
    linted = [(d.code, d.severity, d.message) for d in lint_path(path).diagnostics]
    assert [(d.code, d.severity, d.message) for d in result.precheck.diagnostics] == linted


def test_a_tagged_input_picking_one_symbol_is_priced_on_that_symbol(tmp_path: Path) -> None:
    """``StreamInput(tags=["btc"])`` over BTC/ETH/SOL: the signal has no symbol column (one stream was
    read) and its returns are BTC's — the same as the strategy run on BTC's bars alone."""
    path = tmp_path / "sig.py"
    path.write_text(MOMENTUM.replace('StreamInput(interval="60s", period=30)',
                                     'StreamInput(interval="60s", period=30, tags=["btc"])'))
    assert "tags=" in path.read_text()
    bars = synthetic_bars(1500, symbols=("BTC", "ETH", "SOL"), seed=2)
    picked = Runner.submit(path, world="w", data=bars, gateway_url=closed_port_url(), timeout=2.0)
    alone = Runner.submit(path, world="w", data=bars[bars["symbol"] == "BTC"].reset_index(drop=True),
                          gateway_url=closed_port_url(), timeout=2.0)
    assert not [d for d in picked.precheck.diagnostics if d.code == "E511"]
    assert picked.precheck.metrics.sharpe is not None
    assert picked.precheck.metrics == alone.precheck.metrics
