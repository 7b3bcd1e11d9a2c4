"""Binding rules (which data feeds which source op) and bucketing to an input's interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.ir.module import Output
from qmtl.runtime.binding import bind, bucket
from qmtl.runtime.data import DataError, load
from qmtl.runtime.synthetic import synthetic_bars

from runtime_modules import module, op, src


def _inputs(*tag_sets, interval=60):
    ops = [src(f"s{i}", interval=interval, tags=tags) for i, tags in enumerate(tag_sets)]
    outs = [Output(f"in{i}", f"s{i}", 1, interval, "source") for i in range(len(tag_sets))]
    return module(ops, outs)


def _query(tags, mode="any"):
    from qmtl.ir import types as T
    return module([op("q", "tag_query", (), T.OPAQUE, tags=tuple(tags), interval=60, match_mode=mode)],
                  [Output("q", "q", 1, 60, "source")])


def test_single_symbol_dataset_feeds_every_stream_input():
    b = bind(_inputs(("price",), ("AAPL",), ()), synthetic_bars(10))
    for value in ("s0", "s1", "s2"):
        assert len(b[value].streams) == 1 and not b[value].fan_out


def test_multi_symbol_tags_naming_symbols_select_those():
    b = bind(_inputs(("MSFT", "price"), ("AAPL", "MSFT")), synthetic_bars(10, symbols=("AAPL", "MSFT", "GOOG")))
    assert [s.symbol for s in b["s0"].streams] == ["MSFT"] and not b["s0"].fan_out
    assert [s.symbol for s in b["s1"].streams] == ["AAPL", "MSFT"] and b["s1"].fan_out


def test_multi_symbol_input_without_tags_selects_all_and_fans_out():
    b = bind(_inputs(()), synthetic_bars(10, symbols=("AAPL", "MSFT")))
    assert [s.symbol for s in b["s0"].streams] == ["AAPL", "MSFT"] and b["s0"].fan_out


def test_E504_multi_symbol_tags_naming_no_symbol():
    # a tag that matches no stream is an error, never a silent "everything"
    with pytest.raises(DataError) as info:
        bind(_inputs(("price",)), synthetic_bars(10, symbols=("AAPL", "MSFT")))
    assert info.value.code == "E504"
    assert "['price']" in str(info.value) and "['AAPL', 'MSFT']" in str(info.value)


def test_dict_binds_datasets_by_tag():
    prices, other = synthetic_bars(10, seed=1), synthetic_bars(10, seed=2)
    b = bind(_inputs(("price",), ("other", "x")), {"price": prices, "other": other})
    np.testing.assert_array_equal(b["s0"].streams[0].columns["close"], prices["close"].to_numpy())
    np.testing.assert_array_equal(b["s1"].streams[0].columns["close"], other["close"].to_numpy())
    assert "price" in b["s0"].streams[0].tags


def test_dict_with_one_entry_feeds_an_input_without_tags():
    b = bind(_inputs(()), {"bars": synthetic_bars(5)})
    assert len(b["s0"].streams) == 1


def test_E504_dict_with_one_entry_whose_key_no_tag_names():
    with pytest.raises(DataError) as info:
        bind(_inputs(("unrelated",)), {"bars": synthetic_bars(5)})
    assert info.value.code == "E504" and "['bars']" in str(info.value)


def test_E504_dict_entry_matches_nothing():
    with pytest.raises(DataError) as info:
        bind(_inputs(("price",)), {"volume": synthetic_bars(5), "trades": synthetic_bars(5)})
    err = info.value
    assert err.code == "E504"
    msg = str(err)
    assert "%s0" in msg and "['price']" in msg and "['trades', 'volume']" in msg


def test_tag_query_any_and_all():
    data = {"ta-indicator": synthetic_bars(5, symbols=("RSI", "MFI")), "raw": synthetic_bars(5, symbols=("RSI",))}
    any_ = bind(_query(["ta-indicator"]), data)["q"]
    assert sorted(s.symbol for s in any_.streams) == ["MFI", "RSI"] and not any_.fan_out
    all_ = bind(_query(["ta-indicator", "RSI"], "all"), data)["q"]
    assert [s.tags for s in all_.streams] == [("ta-indicator", "RSI")]
    both = bind(_query(["RSI"]), data)["q"]
    assert len(both.streams) == 2


def test_E504_tag_query_matches_nothing():
    with pytest.raises(DataError) as info:
        bind(_query(["ta-indicator", "nope"], "all"), {"ta-indicator": synthetic_bars(5)})
    assert info.value.code == "E504"
    assert "match_mode=all" in str(info.value) and "available tags" in str(info.value)


# --- bucketing ---------------------------------------------------------------------------------------


def test_bucketing_aggregates_ohlcv_by_interval():
    df = synthetic_bars(47, interval=60, seed=5).drop(columns="symbol").assign(extra=np.arange(47.0))
    s = bucket(load(df).streams[0], 300)
    g = df.assign(b=df["ts"] // 300 * 300).groupby("b")
    np.testing.assert_array_equal(s.ts, g.size().index.to_numpy())
    np.testing.assert_array_equal(s.columns["open"], g["open"].first().to_numpy())
    np.testing.assert_array_equal(s.columns["high"], g["high"].max().to_numpy())
    np.testing.assert_array_equal(s.columns["low"], g["low"].min().to_numpy())
    np.testing.assert_array_equal(s.columns["close"], g["close"].last().to_numpy())
    np.testing.assert_allclose(s.columns["volume"], g["volume"].sum().to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(s.columns["extra"], g["extra"].last().to_numpy())
    assert (s.ts % 300 == 0).all()


def test_data_already_at_the_interval_passes_through_unchanged():
    stream = load(synthetic_bars(20, interval=60)).streams[0]
    assert bucket(stream, 60) is stream


def test_off_grid_timestamps_are_floored_to_their_bucket():
    df = pd.DataFrame({"ts": [1000, 1030, 1061, 1200], "close": [1.0, 2.0, 3.0, 4.0],
                       "volume": [1.0, 1.0, 1.0, 1.0]})
    s = bucket(load(df).streams[0], 60)
    np.testing.assert_array_equal(s.ts, [960, 1020, 1200])
    np.testing.assert_array_equal(s.columns["close"], [1.0, 3.0, 4.0])
    np.testing.assert_array_equal(s.columns["volume"], [1.0, 2.0, 1.0])


def test_bind_buckets_each_input_to_its_own_interval():
    m = module([src("fast", interval=60), src("slow", interval=300, tags=("x",))],
               [Output("fast", "fast", 1, 60, "source"), Output("slow", "slow", 1, 300, "source")])
    b = bind(m, synthetic_bars(30, interval=60))
    assert len(b["fast"].streams[0]) == 30
    assert (b["slow"].streams[0].ts % 300 == 0).all() and len(b["slow"].streams[0]) < 30


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(1, 400), min_size=0, max_size=60), start=st.integers(0, 10_000),
       interval=st.sampled_from([1, 5, 60, 300]))
def test_data_on_the_grid_passes_through_exactly_when_every_timestamp_divides(steps, start, interval):
    from qmtl.runtime.data import Stream
    ts = np.cumsum([start, *steps]).astype(np.int64)
    stream = Stream({"ts": ts, "close": np.ones(len(ts))})
    assert (bucket(stream, interval) is stream) == (not np.any(ts % interval))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(1, 400), min_size=0, max_size=60), start=st.integers(1, 10_000),
       interval=st.sampled_from([1, 5, 60, 300]))
def test_loaded_data_passes_through_on_its_grid_exactly_when_every_timestamp_divides(steps, start, interval):
    ts = np.cumsum([start, *steps]).astype(np.int64)
    stream = load(pd.DataFrame({"ts": ts, "close": np.ones(len(ts))})).streams[0]
    assert stream.grid > 0  # known from the loader's pass, so bucketing does not look at ts again
    assert (bucket(stream, interval) is stream) == (not np.any(ts % interval))
