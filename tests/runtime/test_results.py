"""Assembling output frames from per-key chunks and comparing results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmtl.runtime.results import RunResult, assemble, assert_results_equal, result_differences


def _chunk(ts, values, name="x"):
    return pd.DataFrame({name: values}, index=pd.Index(ts, name="ts"))


def test_assemble_concatenates_chunks_and_orders_by_ts_then_symbol():
    out = assemble([("B", _chunk([60, 120], [1.0, 2.0])), ("A", _chunk([60], [3.0])),
                    ("A", _chunk([120], [4.0]))])
    assert list(out.columns) == ["symbol", "x"] and out.index.name == "ts" and out.index.dtype == np.int64
    assert list(zip(out.index, out["symbol"], out["x"])) == [(60, "A", 3.0), (60, "B", 1.0),
                                                             (120, "A", 4.0), (120, "B", 2.0)]


def test_single_key_has_no_symbol_column_and_ts_column_is_accepted():
    out = assemble([(None, pd.DataFrame({"ts": [1, 2], "x": [1.0, 2.0]}))])
    assert list(out.columns) == ["x"] and list(out.index) == [1, 2]
    forced = assemble([("ONLY", _chunk([1], [1.0]))], multi_key=True)
    assert list(forced["symbol"]) == ["ONLY"]
    assert assemble([], multi_key=False).empty


def test_from_chunks_builds_every_output():
    res = RunResult.from_chunks({"a": [(None, _chunk([1, 2], [1.0, 2.0], "a"))],
                                 "b": [("X", _chunk([1], [5.0], "b")), ("Y", _chunk([1], [6.0], "b"))]})
    assert list(res["a"]["a"]) == [1.0, 2.0] and list(res["b"]["symbol"]) == ["X", "Y"]


def test_comparison_treats_nan_as_equal_and_reports_every_kind_of_difference():
    a = RunResult({"o": _chunk([1, 2, 3], [np.nan, 1.0, 2.0])})
    assert_results_equal(a, RunResult({"o": _chunk([1, 2, 3], [np.nan, 1.0, 2.0 + 1e-13])}))
    assert "differs at 1 rows, first at ts=3" in result_differences(
        a, RunResult({"o": _chunk([1, 2, 3], [np.nan, 1.0, 2.1])}))[0]
    assert "rows" in result_differences(a, RunResult({"o": _chunk([1, 2], [np.nan, 1.0])}))[0]
    assert "ts differ" in result_differences(a, RunResult({"o": _chunk([1, 2, 4], [np.nan, 1.0, 2.0])}))[0]
    assert "columns" in result_differences(a, RunResult({"o": _chunk([1, 2, 3], [np.nan, 1.0, 2.0], "y")}))[0]
    assert "outputs differ" in result_differences(a, RunResult({}))[0]
    with pytest.raises(AssertionError, match="first at ts=1"):
        assert_results_equal(a, RunResult({"o": _chunk([1, 2, 3], [0.0, 1.0, 2.0])}))
