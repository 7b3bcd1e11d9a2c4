"""Directories of data files through pyarrow.dataset: flat or hive-partitioned (``symbol=…/date=…``),
Parquet/CSV/Arrow, local or in an S3-compatible object store; rows ordered by symbol and time whatever
the file order; only the columns the strategy reads are read; bad trees are E505 naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import qmtl
from qmtl.runtime.data import DataError, load
from qmtl.runtime.synthetic import synthetic_bars
from tests.sharing.test_object_store import s3_uri  # noqa: F401  (the moto S3 fixture)

MOMENTUM = qmtl.compile(__import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "momentum.py")


def _bars() -> pd.DataFrame:
    df = synthetic_bars(3000, symbols=("AAA", "BBB", "CCC"), seed=1)
    # day numbers without zero padding: path order is not time order (day=10 sorts before day=9)
    return df.assign(day=(df["ts"] // 7200 - df["ts"].min() // 7200).astype(str))


def _write_hive(df: pd.DataFrame, root, fmt: str = "parquet", filesystem=None) -> None:
    pads.write_dataset(pa.Table.from_pandas(df, preserve_index=False), root, format=fmt, filesystem=filesystem,
                       partitioning=pads.partitioning(pa.schema([("symbol", pa.string()), ("day", pa.string())]),
                                                      flavor="hive"))


def _same(a, b) -> None:
    by = {s.symbol: s for s in b.streams}
    assert sorted(s.symbol for s in a.streams) == sorted(by)
    for s in a.streams:  # partition keys (``day``) are columns too: compare the table's columns
        for col in by[s.symbol].columns:
            assert np.array_equal(s.columns[col], by[s.symbol].columns[col]), (s.symbol, col)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ipc"])
def test_a_hive_partitioned_tree_loads_like_the_table(tmp_path, fmt):
    df = _bars()
    _write_hive(df, tmp_path / "bars", fmt)
    assert len(list((tmp_path / "bars").rglob("*"))) > 20 and any("day=10" in str(p) for p in (tmp_path / "bars").rglob("*"))
    _same(load(tmp_path / "bars"), load(df.drop(columns="day")))


def test_only_the_fields_read_are_read_and_runs_match(tmp_path):
    df = _bars()
    _write_hive(df, tmp_path / "bars")
    pruned = load(tmp_path / "bars", fields=["close"])
    assert all(list(s.columns) == ["ts", "close"] for s in pruned.streams)
    from_dir = MOMENTUM.run(tmp_path / "bars")
    from_frame = MOMENTUM.run(df.drop(columns="day"))
    for name in from_frame.outputs:
        pd.testing.assert_frame_equal(from_dir[name], from_frame[name], check_exact=True)


def test_a_flat_directory_and_bad_trees(tmp_path):
    df = synthetic_bars(500, seed=3)
    flat = tmp_path / "flat"
    flat.mkdir()
    df.iloc[250:].to_csv(flat / "b.csv", index=False)  # file order is not time order either
    df.iloc[:250].to_csv(flat / "a2.csv", index=False)
    _same(load(flat), load(df))
    (flat / "c.parquet").write_bytes(df.to_parquet())
    with pytest.raises(DataError, match="one format"):
        load(flat)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        load(tmp_path / "empty")
    dup = tmp_path / "dup"
    dup.mkdir()
    df.to_parquet(dup / "x.parquet")
    df.iloc[:10].to_parquet(dup / "y.parquet")  # the same bars twice
    with pytest.raises(DataError, match="E502|duplicate"):
        load(dup)


def test_an_object_store_prefix(s3_uri):  # noqa: F811
    import pyarrow.fs as pafs

    fs, base = pafs.FileSystem.from_uri(s3_uri)
    df = _bars()
    _write_hive(df, f"{base}/bars", filesystem=fs)
    location = s3_uri.replace("/team?", "/team/bars?")
    _same(load(location), load(df.drop(columns="day")))


def _module_with_inputs(*tag_sets):
    from qmtl.runtime.sdk import Node, Strategy, StreamInput

    class S(Strategy):
        def setup(self):
            nodes = []
            for i, tags in enumerate(tag_sets):
                p = StreamInput(interval=60, period=3, tags=list(tags), name=f"p{i}")
                nodes += [p, Node(input=p, compute_fn=lambda v, p=p: v[p][60]["close"].diff(), period=2,
                                  name=f"d{i}")]
            self.add_nodes(nodes)
    return qmtl.compile(S).module


def test_tagged_inputs_scan_only_their_symbols_and_binding_errors_stay(tmp_path):
    from qmtl.runtime.binding import bind

    bars = synthetic_bars(400, symbols=("BTC", "ETH", "SOL"), seed=2)
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path, index=False)
    _write_hive(_bars(), tmp_path / "tree")
    one = bind(_module_with_inputs(("btc",)), path)
    assert one.datasets[None].symbols == ("BTC",)  # ETH and SOL never left the file
    assert bind(_module_with_inputs(("aaa",)), tmp_path / "tree").datasets[None].symbols == ("AAA",)
    two = bind(_module_with_inputs(("btc",), ("Eth",)), path)
    assert sorted(two.datasets[None].symbols) == ["BTC", "ETH"]
    with pytest.raises(DataError, match="E504"):
        bind(_module_with_inputs(("btc",), ("nope",)), path)  # as when the whole file is read
    with pytest.raises(DataError, match="E504"):
        bind(_module_with_inputs(("nope",)), path)
    program = qmtl.compile(__import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "momentum.py")
    pd.testing.assert_frame_equal(program.run(path)["momentum_signal"], program.run(bars)["momentum_signal"])


# --- a time range, filtered while scanning ----------------------------------------------------------


@pytest.mark.parametrize("layout", ["hive", "parquet_int_ts", "parquet_timestamps", "csv"])
def test_a_time_range_reads_only_its_bars(layout, tmp_path) -> None:
    """``Bars.between(location, start, end)``: exactly the bars with start <= ts < end, from a hive
    tree, a Parquet file (epoch seconds or timestamps) and a CSV file; a run over it equals a run over
    the same rows given as a DataFrame."""
    df = _bars()
    lo, hi = int(df["ts"].iloc[1000]), int(df["ts"].iloc[2500])
    if layout == "hive":
        _write_hive(df, tmp_path / "d")
        where = tmp_path / "d"
    elif layout == "csv":
        where = tmp_path / "bars.csv"
        df.to_csv(where, index=False)
    else:
        where = tmp_path / "bars.parquet"
        stamped = df.assign(ts=pd.to_datetime(df["ts"], unit="s", utc=True)) if layout == "parquet_timestamps" else df
        stamped.to_parquet(where, index=False)
    bars = qmtl.Bars.between(where, pd.Timestamp(lo, unit="s"), hi)
    expected = df[(df["ts"] >= lo) & (df["ts"] < hi)].drop(columns="day")
    got = load(bars)
    _same_rows = {s.symbol: s for s in load(expected).streams}
    for s in got.streams:
        assert np.array_equal(s.ts, _same_rows[s.symbol].ts) and np.array_equal(
            s.columns["close"], _same_rows[s.symbol].columns["close"]), (layout, s.symbol)
    run = MOMENTUM.run(bars).outputs["momentum_signal"]
    pd.testing.assert_frame_equal(run, MOMENTUM.run(expected).outputs["momentum_signal"], check_exact=True)


def test_a_range_with_no_bars_is_e503_naming_the_range(tmp_path) -> None:
    where = tmp_path / "bars.parquet"
    _bars().to_parquet(where, index=False)
    with pytest.raises(DataError, match=r"bars\.parquet \[1, 2\).*E503.*no bars"):
        load(qmtl.Bars.between(where, 1, 2))
    with pytest.raises(ValueError, match="must be after"):
        qmtl.Bars.between(where, "2024-02-01", "2024-01-01")
    with pytest.raises(ValueError, match="not a time"):
        qmtl.Bars.between(where, "yesterday-ish")


def test_per_symbol_files_without_a_symbol_column_say_how_to_fix_it(tmp_path) -> None:
    for name in ("AAA", "BBB"):
        synthetic_bars(50, seed=2).drop(columns="symbol", errors="ignore").to_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(DataError, match="E502.*no 'symbol' column.*symbol=<name>"):
        load(str(tmp_path))
