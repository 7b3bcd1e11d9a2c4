"""Loading bars from every supported format, zero-copy where promised, and every DataError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from qmtl.runtime.data import DataError, Dataset, iter_batches, load
from qmtl.runtime.synthetic import synthetic_bars


def _bars(n: int = 20, symbols=("SYM",)) -> pd.DataFrame:
    return synthetic_bars(n, symbols=symbols, seed=3)


def _assert_same_bars(ds: Dataset, df: pd.DataFrame) -> None:
    for stream in ds.streams:
        part = df[df["symbol"] == stream.symbol] if stream.symbol is not None else df
        assert stream.ts.dtype == np.int64
        np.testing.assert_array_equal(stream.ts, part["ts"].to_numpy())
        for col in ("open", "high", "low", "close", "volume"):
            # floats are float64; whole numbers a file stores as integers (CSV infers them) stay so
            assert stream.columns[col].dtype == np.float64 or stream.columns[col].dtype.kind == "i"
            np.testing.assert_array_equal(stream.columns[col], part[col].to_numpy(dtype=float))


@pytest.mark.parametrize("suffix", ["csv", "parquet", "arrow", "feather"])
def test_every_file_format_loads_the_same_bars(tmp_path, suffix):
    df = _bars(30, symbols=("A", "B"))
    table = pa.Table.from_pandas(df, preserve_index=False)
    path = tmp_path / f"bars.{suffix}"
    {"csv": lambda: pacsv.write_csv(table, path), "parquet": lambda: pq.write_table(table, path),
     "arrow": lambda: feather.write_feather(table, path),
     "feather": lambda: feather.write_feather(table, path)}[suffix]()
    ds = load(path)
    assert ds.source == str(path)
    assert ds.symbols == ("A", "B")
    _assert_same_bars(ds, df)


def test_dataframe_and_table_load_the_same():
    df = _bars(25, symbols=("X", "Y", "Z"))
    a, b = load(df), load(pa.Table.from_pandas(df, preserve_index=False))
    assert a.source == "<DataFrame>" and b.source == "<Table>"
    _assert_same_bars(a, df)
    _assert_same_bars(b, df)


def test_single_symbol_without_symbol_column():
    df = _bars(10).drop(columns="symbol")
    ds = load(df)
    assert not ds.has_symbols and len(ds.streams) == 1 and ds.streams[0].symbol is None
    _assert_same_bars(ds, df)


def test_arrow_single_chunk_is_zero_copy():
    df = _bars(50).drop(columns="symbol")
    table = pa.Table.from_pandas(df, preserve_index=False)
    ds = load(table)
    close = ds.streams[0].columns["close"]
    buf = table.column("close").chunks[0].buffers()[1]
    assert close.ctypes.data == buf.address  # the very same memory, not a copy


def test_arrow_contiguous_symbol_runs_stay_views():
    df = pd.concat([_bars(10, ("A",)), _bars(10, ("B",))], ignore_index=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    ds = load(table)
    base = table.column("close").chunks[0].buffers()[1].address
    assert ds.stream("A").columns["close"].ctypes.data == base
    assert ds.stream("B").columns["close"].ctypes.data == base + 10 * 8


def test_chunked_arrow_columns_are_concatenated_in_order():
    df = _bars(40).drop(columns="symbol")
    t = pa.Table.from_pandas(df, preserve_index=False)
    chunked = pa.concat_tables([t.slice(0, 13), t.slice(13, 27)])
    assert chunked.column("close").num_chunks == 2
    _assert_same_bars(load(chunked), df)


def test_float64_dataframe_columns_are_not_copied():
    df = _bars(10).drop(columns="symbol")
    ds = load(df)
    assert np.shares_memory(ds.streams[0].columns["close"], df["close"].to_numpy())


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_datetime_timestamps_become_epoch_seconds(tz):
    df = _bars(5).drop(columns="symbol")
    expected = df["ts"].to_numpy()
    stamps = pd.to_datetime(df["ts"], unit="s", utc=True)
    df["ts"] = stamps.dt.tz_convert(tz) if tz else stamps.dt.tz_localize(None)
    np.testing.assert_array_equal(load(df).streams[0].ts, expected)
    table = pa.Table.from_pandas(df, preserve_index=False)
    np.testing.assert_array_equal(load(table).streams[0].ts, expected)


def test_datetime_index_named_ts_is_used():
    df = _bars(5).drop(columns="symbol")
    expected = df["ts"].to_numpy()
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("ts"), unit="s"), name="ts")
    np.testing.assert_array_equal(load(df).streams[0].ts, expected)


def test_iso_strings_in_csv_become_seconds(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("ts,open,high,low,close,volume\n"
                    "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n2024-01-01T00:01:00Z,1.5,2,1,1.2,11\n")
    ds = load(path)
    np.testing.assert_array_equal(ds.streams[0].ts, [1704067200, 1704067260])


def test_extra_numeric_columns_are_fields():
    df = _bars(5).drop(columns="symbol").assign(sentiment=np.arange(5, dtype=np.int32))
    s = load(df).streams[0]
    assert "sentiment" in s.fields
    assert s.columns["sentiment"].dtype == np.int32  # integers stay integers (opaque functions see them)


# --- errors ------------------------------------------------------------------------------------------


def _error(source) -> DataError:
    with pytest.raises(DataError) as info:
        load(source)
    return info.value


def test_E501_missing_ts_names_the_file(tmp_path):
    path = tmp_path / "nots.parquet"
    pq.write_table(pa.Table.from_pandas(_bars(3).drop(columns="ts"), preserve_index=False), path)
    err = _error(path)
    assert err.code == "E501" and err.diagnostics[0].code == "E501"
    assert str(path) in str(err) and "'ts'" in str(err)


def test_E501_fractional_ts():
    df = _bars(3).drop(columns="symbol").assign(ts=[1.5, 2.5, 3.5])
    err = _error(df)
    assert err.code == "E501" and "<DataFrame>" in str(err) and "fractional" in str(err)


def test_E502_unsorted_names_symbol_row_and_timestamp():
    df = _bars(6, symbols=("A", "B"))
    df.loc[9, "ts"] = df.loc[1, "ts"]  # row 9 is B's 5th bar; send it back in time
    err = _error(df)
    assert err.code == "E502"
    msg = str(err)
    assert "'B'" in msg and "row 9" in msg and f"ts={df.loc[1, 'ts']}" in msg and "unsorted" in msg


def test_E502_duplicate_timestamp():
    df = _bars(4).drop(columns="symbol")
    df.loc[2, "ts"] = df.loc[1, "ts"]
    err = _error(df)
    assert err.code == "E502" and "duplicate" in str(err) and "row 2" in str(err)


def test_same_timestamp_in_two_symbols_is_fine():
    ds = load(_bars(4, symbols=("A", "B")))
    np.testing.assert_array_equal(ds.stream("A").ts, ds.stream("B").ts)


def test_E503_nan_in_required_field_names_column_symbol_and_first_row():
    df = _bars(5, symbols=("A", "B"))
    df.loc[7, "close"] = np.nan
    df.loc[8, "close"] = np.nan
    err = _error(df)
    assert err.code == "E503"
    assert "'close'" in str(err) and "'B'" in str(err) and "row 7" in str(err)


def test_E503_null_in_arrow_field(tmp_path):
    table = pa.table({"ts": [1, 2, 3], "close": pa.array([1.0, None, 3.0])})
    path = tmp_path / "nulls.feather"
    feather.write_feather(table, path)
    err = _error(path)
    assert err.code == "E503" and str(path) in str(err) and "row 1" in str(err)


@pytest.mark.parametrize("field, value, says", [
    ("high", 0.5, "high=0.5 is below low=1.0"),
    ("open", 3.0, "open=3.0 is outside [low, high] = [1.0, 2.0]"),
    ("close", 0.9, "close=0.9 is outside [low, high] = [1.0, 2.0]"),
])
def test_E503_prices_that_are_not_a_bar_name_file_row_and_field(tmp_path, field, value, says):
    """The rule a live feed applies (``qmtl.live.bars``): the backtest of a live run refuses the same bars."""
    df = _bars(6, symbols=("A", "B"))
    df.loc[3, ["open", "high", "low", "close"]] = [1.5, 2.0, 1.0, 1.5]
    df.loc[3, field] = value
    path = tmp_path / "bars.parquet"
    df.to_parquet(path)
    err = _error(path)
    assert err.code == "E503" and str(path) in str(err) and "row 3" in str(err) and says in str(err), str(err)
    assert f"ts={int(df.ts[3])}" in str(err) and repr(str(df.symbol[3])) in str(err)


def test_prices_alone_or_a_close_only_series_are_not_shape_checked():
    """Data without both high and low (a close series, a signal file) has no range to check."""
    load(pd.DataFrame({"ts": [60, 120], "close": [2.0, 1.0]}))
    load(pd.DataFrame({"ts": [60, 120], "high": [2.0, 1.0], "close": [5.0, 0.1]}))


def test_nan_in_extra_column_is_allowed():
    df = _bars(3).drop(columns="symbol").assign(signal=[1.0, np.nan, 2.0])
    assert np.isnan(load(df).streams[0].columns["signal"][1])


def test_E505_unknown_format_and_missing_and_corrupt_files(tmp_path):
    assert _error(tmp_path / "bars.xlsx").code == "E505"
    missing = _error(tmp_path / "absent.parquet")
    assert missing.code == "E505" and "no such file" in str(missing)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    err = _error(bad)
    assert err.code == "E505" and str(bad) in str(err)
    assert _error(42).code == "E505"


# --- batches -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_iter_batches_covers_the_stream_with_views(batch_size):
    stream = load(_bars(20).drop(columns="symbol")).streams[0]
    batches = list(iter_batches(stream, batch_size))
    assert all(len(b["ts"]) <= batch_size for b in batches)
    np.testing.assert_array_equal(np.concatenate([b["close"] for b in batches]), stream.columns["close"])
    assert np.shares_memory(batches[0]["close"], stream.columns["close"])
    with pytest.raises(ValueError):
        next(iter_batches(stream, 0))


def test_synthetic_bars_are_consistent_and_seeded():
    df = synthetic_bars(500, symbols=("A", "B"), seed=7)
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["low"] > 0).all() and (df["volume"] > 0).all()
    assert (df["ts"] % 60 == 0).all()
    pd.testing.assert_frame_equal(df, synthetic_bars(500, symbols=("A", "B"), seed=7))
    assert not df.equals(synthetic_bars(500, symbols=("A", "B"), seed=8))
    load(df)  # valid data by our own rules


def test_synthetic_bars_of_length_zero_and_one():
    empty = synthetic_bars(0, symbols=("A", "B"))
    assert len(empty) == 0 and list(empty.columns) == ["ts", "symbol", "open", "high", "low", "close", "volume"]
    one = synthetic_bars(1)
    assert len(one) == 1 and one["high"].iloc[0] >= max(one["open"].iloc[0], one["close"].iloc[0])


# --- epoch units -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale, unit, divisor", [(1000, "milliseconds", "1000"),
                                                  (10**6, "microseconds", "1000000"),
                                                  (10**9, "nanoseconds", "1000000000")])
def test_E501_sub_second_epoch_integers_name_the_unit_and_the_fix(tmp_path, scale, unit, divisor):
    df = _bars(4).drop(columns="symbol")
    df["ts"] = df["ts"] * scale
    path = tmp_path / "ms.csv"
    df.to_csv(path, index=False)
    for source in (df, path, pa.Table.from_pandas(df, preserve_index=False)):
        err = _error(source)
        assert err.code == "E501"
        msg = err.diagnostics[0].message
        assert f"epoch {unit}" in msg and f"divide 'ts' by {divisor}" in msg and "row 0" in msg


def test_E501_whole_float_milliseconds_are_rejected_too():
    df = _bars(3).drop(columns="symbol")
    df["ts"] = df["ts"].astype(float) * 1000
    err = _error(df)
    assert err.code == "E501" and "epoch milliseconds" in str(err)


def test_E501_first_out_of_range_row_is_named():
    df = _bars(3).drop(columns="symbol")
    df.loc[2, "ts"] = int(df.loc[2, "ts"]) * 1000
    err = _error(df)
    assert err.code == "E501" and "row 2" in str(err)


def test_epoch_seconds_at_the_plausible_edges_and_datetimes_still_load():
    edges = pd.DataFrame({"ts": [-2_208_988_800, 0, 4_102_444_800, 10_000_000_000],
                          "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    np.testing.assert_array_equal(load(edges).streams[0].ts, edges["ts"].to_numpy())
    df = _bars(3).drop(columns="symbol")
    expected = df["ts"].to_numpy()
    df["ts"] = pd.to_datetime(df["ts"], unit="s").astype("datetime64[ms]")  # ms resolution, not ms ints
    np.testing.assert_array_equal(load(df).streams[0].ts, expected)
    np.testing.assert_array_equal(load(pa.Table.from_pandas(df, preserve_index=False)).streams[0].ts, expected)


# --- where the source is named -----------------------------------------------------------------------


def test_file_is_named_once_by_the_location_not_repeated_in_the_message(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("ts,open,high,low,close,volume\n1,1,1,1,1,1\n2,1,1,1,,1\n")
    err = _error(path)
    diag = err.diagnostics[0]
    assert diag.loc is not None and diag.loc.file == str(path)
    assert str(path) not in diag.message and "nan.csv" not in diag.message
    assert diag.message.startswith("column 'close' is NaN/null") and "row 1" in diag.message
    assert str(err) == f"{path}:0:0: error[E503]: {diag.message}"


def test_error_located_elsewhere_still_names_the_data_in_its_message():
    from qmtl.ir.module import Loc
    err = DataError("E506", "bars.parquet", "reads bar field 'x'", Loc("strategy.py", 12))
    diag = err.diagnostics[0]
    assert diag.loc == Loc("strategy.py", 12)
    assert diag.message == "bars.parquet: reads bar field 'x'"


def test_E503_header_only_csv_says_no_bars(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("ts,open,high,low,close,volume\n")
    err = _error(path)
    assert err.code == "E503"
    msg = err.diagnostics[0].message
    assert msg.startswith("no bars") and "no rows" in msg and "not numeric" not in msg


def test_E503_empty_frame_and_table_say_no_bars():
    empty = synthetic_bars(0, symbols=("A", "B"))
    for source in (empty, pa.Table.from_pandas(empty, preserve_index=False)):
        err = _error(source)
        assert err.code == "E503" and "no bars" in str(err)


def test_integer_columns_reach_opaque_functions_as_integers_and_kernels_as_numbers(tmp_path):
    """An opaque compute function reads an int64 ``volume`` as int64 (as pandas would from the file)
    on both the flow and the reference; a traced node reads the same column as float64 numbers."""
    import qmtl
    from qmtl.runtime.reference import run as reference_run
    from qmtl.runtime.sdk import Node, Strategy, StreamInput

    seen: list[str] = []

    class IntVolume(Strategy):
        def setup(self):
            price = StreamInput(interval="60s", period=3, name="price")

            def opaque(view):
                f = view.as_frame(price, 60).frame
                seen.append(str(f["volume"].dtype))
                if f["volume"].iloc[-1] > 0:  # control flow on a value: not traceable
                    return f["volume"].iloc[-1] * 2
                return 0

            def traced(view):
                return view.as_frame(price, 60).frame["volume"].rolling(3).mean()

            self.add_nodes([price, Node(input=price, compute_fn=opaque, name="dbl", period=3),
                            Node(input=price, compute_fn=traced, name="avg", period=3)])

    df = _bars(20).drop(columns="symbol").assign(volume=np.arange(20, dtype=np.int64) * 10)
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    compiled = qmtl.compile(IntVolume)
    assert compiled.module.output("dbl").kind == "opaque" and compiled.module.output("avg").kind == "traced"
    for run in (lambda: compiled.run(path), lambda: reference_run(compiled, load(path))):
        seen.clear()
        res = run()
        assert set(seen) == {"int64"}
        assert res.outputs["dbl"].iloc[:, 0].dtype == np.int64
        np.testing.assert_array_equal(res.outputs["dbl"].iloc[:, 0].to_numpy(), df["volume"].to_numpy()[2:] * 2)
        np.testing.assert_allclose(res.outputs["avg"].iloc[:, 0].to_numpy(),
                                   df["volume"].rolling(3).mean().to_numpy()[2:])


def test_parquet_file_of_many_row_groups_loads_each_column_as_one_view(tmp_path):
    df = _bars(1000).drop(columns="symbol")
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=100)
    assert pq.ParquetFile(path).num_row_groups == 10
    stream = load(path, {"close"}).streams[0]
    assert set(stream.columns) == {"ts", "close"}  # unread columns stay on disk
    np.testing.assert_array_equal(stream.ts, df["ts"].to_numpy())
    np.testing.assert_array_equal(stream.columns["close"], df["close"].to_numpy())
    # views of the one array the file reader decoded (Arrow memory is read-only), not a joined copy
    assert not stream.ts.flags.writeable and not stream.columns["close"].flags.writeable


def test_E501_wins_over_an_earlier_unsorted_row_in_one_stream():
    df = _bars(5).drop(columns="symbol")
    df.loc[1, "ts"] = df.loc[0, "ts"]            # a duplicate at row 1 ...
    df.loc[3, "ts"] = int(df.loc[3, "ts"]) * 1000  # ... and milliseconds at row 3: the unit is the problem
    err = _error(df)
    assert err.code == "E501" and "row 3" in str(err) and "milliseconds" in str(err)


@pytest.mark.parametrize("step, start, grid", [(60, 1_700_000_040, 60), (300, 1_700_000_200, 100), (7, 0, 7)])
def test_loaded_stream_knows_its_grid(step, start, grid):
    df = pd.DataFrame({"ts": start + step * np.arange(6, dtype=np.int64), "close": 1.0})
    df.loc[5, "ts"] += step  # a gap of one bar keeps the grid
    stream = load(df).streams[0]
    assert stream.grid == grid and stream.with_tags(("x",)).grid == grid
    assert stream.on_grid_known(step) == (start % step == 0)
