"""``compiled.run(path)`` on bad data, for every file format a user may hand it: a ``DataError`` whose
message names the file and the problem, raised before any kernel runs (so never a Numba or Bytewax
traceback).  Also: Arrow IPC in the *stream* framing loads like the file framing."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pytest

from qmtl.compiler.pipeline import compile as compile_strategy
from qmtl.runtime.data import DataError, load
from qmtl.runtime.synthetic import synthetic_bars

STRATEGY = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node
import pandas as pd

class Mom(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=8)
        def signal(view):
            close = view.as_frame(price, 60, columns=["close"]).frame["close"]
            return pd.DataFrame({"s": close.pct_change().rolling(5).mean()})
        self.add_nodes([price, Node(input=price, compute_fn=signal, name="sig")])
'''


def _write_ipc_stream(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    with ipc.new_stream(str(path), table.schema) as writer:
        writer.write_table(table)


WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    "csv": lambda df, p: df.to_csv(p, index=False),
    "parquet": lambda df, p: df.to_parquet(p, index=False),
    "arrow": lambda df, p: feather.write_feather(df, str(p)),
    "arrows": _write_ipc_stream,
}


def _good() -> pd.DataFrame:
    return synthetic_bars(60, seed=5)


BAD: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str]] = {
    # case: (make the bad frame, code, a phrase the message must contain)
    "no_ts": (lambda d: d.drop(columns=["ts"]), "E501", "no 'ts' column"),
    "unsorted": (lambda d: d.iloc[::-1].reset_index(drop=True), "E502", "unsorted timestamp"),
    "duplicate": (lambda d: pd.concat([d.iloc[:10], d.iloc[9:]]).reset_index(drop=True), "E502",
                  "duplicate timestamp"),
    "nan_close": (lambda d: d.assign(close=d["close"].where(d.index != 20)), "E503", "'close' is NaN"),
    "bad_ts_text": (lambda d: d.assign(ts=d["ts"].astype(str) + "x"), "E501", "'ts' is not a timestamp"),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("strategy") / "mom.py"
    path.write_text(STRATEGY)
    return compile_strategy(path)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_data_file_is_a_clear_error_naming_the_file(compiled, tmp_path, fmt, case):
    make, code, phrase = BAD[case]
    path = tmp_path / f"{case}.{fmt}"
    WRITERS[fmt](make(_good()), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas parsing warnings leak to the user either
        with pytest.raises(DataError) as info:
            compiled.run(str(path))
    err = info.value
    assert [d.code for d in err.diagnostics] == [code]
    text = str(err)
    assert path.name in text and phrase in text
    assert "numba" not in text.lower() and "bytewax" not in text.lower()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_dataframe_is_the_same_error(compiled, case):
    make, code, phrase = BAD[case]
    with pytest.raises(DataError) as info:
        compiled.run(make(_good()))
    assert info.value.diagnostics[0].code == code and "<DataFrame>" in str(info.value)
    assert phrase in str(info.value)


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_good_data_runs_the_same_from_every_format(compiled, tmp_path, fmt):
    df = _good()
    path = tmp_path / f"good.{fmt}"
    WRITERS[fmt](df, path)
    expected = compiled.run(df).outputs["sig"]
    got = compiled.run(str(path)).outputs["sig"]
    assert len(got) == len(df) - 7  # warm-up: period 8
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("suffix", ["arrow", "ipc", "arrows"])
def test_ipc_stream_framing_loads_whatever_the_extension(tmp_path, suffix):
    df = synthetic_bars(25, symbols=("A", "B"), seed=1)
    path = tmp_path / f"bars.{suffix}"
    _write_ipc_stream(df, path)
    ds = load(path)
    assert ds.symbols == ("A", "B")
    assert sum(len(s) for s in ds.streams) == len(df)


def test_truncated_ipc_file_is_E505(tmp_path):
    path = tmp_path / "cut.arrows"
    _write_ipc_stream(_good(), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError) as info:
        load(path)
    assert info.value.diagnostics[0].code == "E505" and "cut.arrows" in str(info.value)
