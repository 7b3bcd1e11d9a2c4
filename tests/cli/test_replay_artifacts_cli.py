"""`qmtl replay` and `qmtl artifacts` as a user runs them (typer's CliRunner, real files): one union run
of two strategy files, the report, the store filled and listed, reused on the second replay, gc."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.runtime.synthetic import synthetic_bars

ROOT = Path(__file__).resolve().parents[2]
cli = CliRunner()


def test_replay_two_files_then_list_show_and_gc(tmp_path, monkeypatch):
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    bars = tmp_path / "bars.parquet"
    synthetic_bars(400, seed=3).drop(columns="symbol").to_parquet(bars)
    files = [str(ROOT / "examples" / "momentum.py"), str(ROOT / "examples" / "multi_node.py")]

    first = cli.invoke(app, ["replay", *files, "--data", str(bars), "--json", "--out", str(tmp_path / "out")])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert [s["strategy"] for s in report["strategies"]] == ["GeneralStrategy", "SpreadStrategy"]
    assert report["unique_nodes"] <= report["total_nodes"]
    assert all(not s["from_store"] for s in report["strategies"])
    assert (tmp_path / "out" / "GeneralStrategy" / "momentum_signal.parquet").is_file()

    again = json.loads(cli.invoke(app, ["replay", *files, "--data", str(bars), "--json"]).output)
    assert "momentum_signal" in again["strategies"][0]["from_store"]

    listed = cli.invoke(app, ["artifacts", "ls", "--json"])
    rows = json.loads(listed.output)
    assert rows and all(r["rows"] > 0 and r["bytes"] > 0 for r in rows)
    shown = cli.invoke(app, ["artifacts", "show", rows[0]["node_id"][:20]])
    assert shown.exit_code == 0 and json.loads(shown.output)[0]["node_id"] == rows[0]["node_id"]
    assert cli.invoke(app, ["artifacts", "show", "blake3:ffffffff"]).exit_code == 1

    kept = cli.invoke(app, ["artifacts", "gc", "--older-than", "30d"])
    assert kept.exit_code == 0 and "removed 0 artifacts" in kept.output
    assert cli.invoke(app, ["artifacts", "gc", "--older-than", "soon"]).exit_code == 2
    gone = cli.invoke(app, ["artifacts", "gc", "--older-than", "0s"])
    assert f"removed {len(rows)} artifacts" in gone.output
    assert json.loads(cli.invoke(app, ["artifacts", "ls", "--json"]).output) == []


def test_replay_names_a_missing_file_and_bad_data(tmp_path):
    missing = cli.invoke(app, ["replay", str(tmp_path / "nope.py"), "--data", str(tmp_path)])
    assert missing.exit_code == 1 and "nope.py: no such file" in missing.output
    bad = tmp_path / "bad.csv"
    bad.write_text("time,close\n1,2\n")
    res = cli.invoke(app, ["replay", str(ROOT / "examples" / "momentum.py"), "--data", str(bad), "--no-store"])
    assert res.exit_code == 1 and "bad.csv" in res.output and "Traceback" not in res.output


def test_replay_picks_classes_with_file_colons_class(tmp_path, monkeypatch):
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    two = tmp_path / "two.py"
    two.write_text("""
from qmtl.runtime.sdk import Strategy, Node, StreamInput
P = StreamInput(interval=60, period=5, name="p")
class Fast(Strategy):
    def setup(self):
        self.add_nodes([P, Node(input=P, compute_fn=lambda v: v[P][60]["close"].rolling(3).mean(), period=3, name="f")])
class Slow(Strategy):
    def setup(self):
        self.add_nodes([P, Node(input=P, compute_fn=lambda v: v[P][60]["close"].rolling(9).mean(), period=9, name="s")])
""")
    bars = tmp_path / "bars.parquet"
    synthetic_bars(100, seed=2).drop(columns="symbol").to_parquet(bars)
    both = cli.invoke(app, ["replay", f"{two}::Fast", f"{two}::Slow", "--data", str(bars), "--json", "--no-store"])
    report = json.loads(both.output)
    assert [s["strategy"] for s in report["strategies"]] == ["Fast", "Slow"]
    assert report["strategies"][1]["shared"] == 2  # the price input and its close, brought by Fast
    ambiguous = cli.invoke(app, ["replay", str(two), "--data", str(bars)])
    assert ambiguous.exit_code == 1 and "FILE::Class" in ambiguous.output


def test_run_writes_each_output_from_a_partitioned_directory(tmp_path, monkeypatch):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as pads

    import qmtl

    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    bars = synthetic_bars(600, symbols=("AAA", "BBB"), seed=4)
    pads.write_dataset(pa.Table.from_pandas(bars, preserve_index=False), tmp_path / "bars", format="parquet",
                       partitioning=pads.partitioning(pa.schema([("symbol", pa.string())]), flavor="hive"))
    momentum = str(ROOT / "examples" / "momentum.py")
    first = cli.invoke(app, ["run", momentum, "--data", str(tmp_path / "bars"), "--out", str(tmp_path / "out")])
    assert first.exit_code == 0, first.output
    written = pd.read_parquet(tmp_path / "out" / "momentum_signal.parquet")
    expected = qmtl.compile(momentum).run(bars)["momentum_signal"]
    pd.testing.assert_frame_equal(written, expected, check_exact=True)
    again = cli.invoke(app, ["run", momentum, "--data", str(tmp_path / "bars"), "--out", str(tmp_path / "out")])
    assert "read from the artifact store: momentum_signal" in again.output
    bad = cli.invoke(app, ["run", momentum, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 1 and "no such data" in bad.output and "Traceback" not in bad.output
