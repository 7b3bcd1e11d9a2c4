"""Notebook and terminal manners: bounded reprs (a 10,000-op strategy included), results read by UTC
timestamps and per symbol, `qmtl --version`, shell completion, one `--format` spelling, human times,
E504 that stays short with hundreds of symbols."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import qmtl
from qmtl.cli.main import app
from qmtl.cli.output import human_time
from qmtl.runner.results import NodeRef, SubmitResult
from qmtl.runtime.data import DataError
from qmtl.runtime.results import RunResult
from qmtl.runtime.synthetic import synthetic_bars

from .strategies import write

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def run(*args: object):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def big() -> "qmtl.CompiledStrategy":
    import os
    os.environ["QMTL_CHAIN_N"] = "3400"  # read when the file is loaded
    try:
        return qmtl.compile(ROOT / "benchmarks" / "strategies" / "chain.py")
    finally:
        del os.environ["QMTL_CHAIN_N"]


def test_compiled_strategy_reprs_are_bounded_for_10000_ops(big) -> None:
    assert len(big.module.ops) >= 10_000
    text = repr(big)
    assert text.startswith("<CompiledStrategy Chain: 3401 nodes (1 source, 3400 traced), 10202 ops")
    assert len(text) < 200
    page = big._repr_html_()
    assert len(page) < 10_000 and page.count("<tr>") == 1 + 50 and "+3351 more nodes" in page


def test_explanation_repr_is_bounded_too(big) -> None:
    assert len(repr(big.explain())) < 200


def test_run_result_repr_and_html_are_bounded() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([1_700_000_000, 1_700_000_060], name="ts"))
    result = RunResult({f"node_{i}": frame for i in range(2000)})
    text = repr(result)
    assert text.startswith("<RunResult 2000 outputs: node_0 2×1,") and text.endswith("+1992 more>")
    assert len(text) < 300
    page = result._repr_html_()
    assert len(page) < 20_000 and "+1950 more outputs" in page
    assert "2023-11-14 22:13 – 2023-11-14 22:14" in page  # the span in UTC


def test_submit_result_repr_is_bounded() -> None:
    refs = [NodeRef(node_id="blake3:" + f"{i:064x}", name=f"n{i}", op="add") for i in range(5000)]
    res = SubmitResult(status="rejected", world="w", new_nodes=refs, downgrade_reason="x" * 5000)
    text = repr(res)
    assert "status rejected; world w" in text and "0 reused, 5000 new" in text
    assert len(text) < 400 and len(res._repr_html_()) < 1000


def test_results_by_utc_timestamp_and_wide_per_symbol() -> None:
    compiled = qmtl.compile(ROOT / "examples" / "momentum.py")
    r = compiled.run(synthetic_bars(120, symbols=("AAA", "BBB")))
    raw = r.outputs["momentum_signal"]
    assert raw.index.dtype == np.int64  # outputs keep epoch seconds (backends compare on them)
    long = r.frame("momentum_signal")
    assert isinstance(long.index, pd.DatetimeIndex) and str(long.index.tz) == "UTC"
    assert (long.index.as_unit("s").asi8 == raw.index.to_numpy()).all()
    assert list(long.columns) == ["symbol", "signal"]
    wide = r.frame("momentum_signal", wide=True)
    assert list(wide.columns) == ["AAA", "BBB"] and isinstance(wide.index, pd.DatetimeIndex)
    for sym in ("AAA", "BBB"):
        rows = raw[raw["symbol"] == sym]
        got = wide[sym].dropna()
        assert (got.index.as_unit("s").asi8 == rows.index.to_numpy()).all()
        assert (got.to_numpy() == rows["signal"].to_numpy()).all()
    epoch_wide = r.frame("momentum_signal", utc=False, wide=True)
    assert epoch_wide.index.dtype == np.int64
    assert set(r.frames()) == {"momentum_signal"}


def test_wide_with_several_columns_is_column_then_symbol() -> None:
    r = qmtl.compile(ROOT / "examples" / "multi_node.py").run(
        {"btc": synthetic_bars(80, seed=1), "eth": synthetic_bars(80, seed=2)})
    frame = r.frame("returns", wide=True)  # one key: no symbol column, nothing to pivot
    assert list(frame.columns) == ["btc_ret", "eth_ret"]
    res = RunResult({"f": pd.DataFrame({"symbol": ["A", "B"], "a": [1.0, 2.0], "b": [3.0, 4.0]},
                                       index=pd.Index([60, 60], name="ts"))})
    wide = res.frame("f", wide=True)
    assert list(wide.columns) == [("a", "A"), ("a", "B"), ("b", "A"), ("b", "B")]
    assert wide.loc[pd.Timestamp(60, unit="s", tz="UTC"), ("b", "B")] == 4.0


def test_version_matches_the_installed_distribution() -> None:
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"qmtl {importlib.metadata.version('qmtl')}"


def test_shell_completion_is_offered() -> None:
    r = cli.invoke(app, ["--show-completion", "bash"], prog_name="qmtl")
    assert r.exit_code == 0 and "_QMTL_COMPLETE=complete_bash" in r.stdout
    assert "complete -o default -F _qmtl_completion qmtl" in r.stdout


@pytest.mark.parametrize("args", [
    ("explain", ROOT / "examples" / "momentum.py"),
    ("lint", "--ssa", ROOT / "examples" / "momentum.py"),
    ("config", "validate", "--target", "gateway"),
])
@pytest.mark.parametrize("spelling", ["--format", "--output", "-o"])
def test_one_format_option_everywhere(args: tuple, spelling: str) -> None:
    r = run(*args, spelling, "json")
    assert r.exit_code == 0, r.output
    json.loads(r.stdout)
    r = run(*args, spelling, "xml")
    assert r.exit_code == 2 and "xml" in r.output


def test_artifacts_and_replay_take_format_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    bars = tmp_path / "bars.parquet"
    synthetic_bars(80).to_parquet(bars)
    r = run("replay", ROOT / "examples" / "momentum.py", "--data", bars, "--format", "json", "-q")
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)["strategies"][0]
    assert first["strategy"] == "GeneralStrategy" and first["computed"] == 8
    again = json.loads(run("replay", ROOT / "examples" / "momentum.py", "--data", bars, "--json", "-q").stdout)
    assert again["strategies"][0]["strategy"] == "GeneralStrategy"  # the older spelling still works
    listed = json.loads(run("artifacts", "ls", "--format", "json").stdout)
    assert listed == json.loads(run("artifacts", "ls", "--json").stdout) and len(listed) >= 1
    assert run("artifacts", "ls", "--format", "yaml").exit_code == 2


def test_human_time() -> None:
    now = 1_764_562_323.0  # 2025-12-01 04:12:03 UTC
    assert human_time(now - 300, now=now) == "2025-12-01 04:07:03 UTC (5 min ago)"
    assert human_time("2025-11-29T04:12:03+00:00", now=now) == "2025-11-29 04:12:03 UTC (2 d ago)"
    assert human_time(now, now=now).endswith("(just now)")
    assert human_time("not a time", now=now) == "not a time"


def test_status_shows_when_a_strategy_was_submitted_in_words(tmp_path: Path) -> None:
    from qmtl.config import QmtlConfig
    from qmtl.runner import Runner
    from qmtl.services.app import EmbeddedServices
    with EmbeddedServices(QmtlConfig(home=tmp_path / "svc")) as url:
        assert run("world", "create", "w", "--gateway-url", url).exit_code == 0
        res = Runner.submit(ROOT / "examples" / "momentum.py", world="w", data=synthetic_bars(80),
                            gateway_url=url)
        r = run("status", res.strategy_id, "--gateway-url", url)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if "submitted" in x)
    assert " UTC (just now)" in line or " UTC (1 min ago)" in line


def test_e504_stays_short_with_hundreds_of_symbols(tmp_path: Path) -> None:
    symbols = [f"SYM{i:03d}" for i in range(400)] + ["BTC-USD"]
    data = synthetic_bars(3, symbols=symbols)
    src = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput

class Tagged(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=2, tags=["BTCUSD"], name="price")
        self.add_nodes([price, Node(input=price, name="m", compute_fn=lambda v: v[price][60]["close"] * 2)])
'''
    compiled = qmtl.compile(write(tmp_path, "tagged.py", src))
    with pytest.raises(DataError) as info:
        compiled.run(data)
    message = str(info.value)
    assert "E504" in message or info.value.code == "E504"
    assert len(message) < 800, message
    assert "'BTC-USD'" in message and "and 381 more" in message and "closest to 'BTCUSD'" in message
