"""CacheView over concrete windows: lookup by node, NodeID or name; as_frame; align_frames."""

from __future__ import annotations

import pandas as pd
import pytest

from qmtl.runtime.sdk import CacheView, MissingColumnsError, StreamInput


def bars(ts: list[int], close: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts, "close": close, "volume": [1.0] * len(ts)})


@pytest.fixture
def view() -> tuple[CacheView, StreamInput]:
    node = StreamInput(interval=60, name="price")
    node.node_id = "blake3:aa"
    windows = {
        "blake3:aa": {60: bars([60, 120, 180, 240], [1.0, 2.0, 3.0, 4.0])},
        "blake3:bb": {60: bars([120, 180, 240, 300], [10.0, 20.0, 30.0, 40.0])},
        "blake3:cc": {60: pd.Series([0.5, 0.6], name="sig")},
    }
    return CacheView(windows, names={"price": "blake3:aa", "other": "blake3:bb"}), node


def test_lookup_by_node_id_string_and_name(view) -> None:
    v, node = view
    assert v[node][60]["close"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert v["blake3:bb"]["1m"]["close"].iloc[-1] == 40.0
    assert v["price"][60] is v[node][60]
    assert list(v) == ["blake3:aa", "blake3:bb", "blake3:cc"] and len(v) == 3
    assert node in v and "nope" not in v


def test_missing_keys_name_what_is_missing(view) -> None:
    v, node = view
    with pytest.raises(KeyError, match="not an input"):
        v["nope"]
    with pytest.raises(KeyError, match="interval 300s"):
        v[node][300]


def test_as_frame_selects_and_validates_columns(view) -> None:
    v, node = view
    wrapper = v.as_frame(node, 60, columns=["close"])
    assert list(wrapper.frame.columns) == ["close"]
    assert wrapper.validate_columns(["close"]) is wrapper
    with pytest.raises(MissingColumnsError) as info:
        v.as_frame(node, 60).validate_columns(["close", "open", "high"])
    assert "'open', 'high'" in str(info.value) and "ts, close, volume" in str(info.value)
    series_frame = v.as_frame("blake3:cc", 60).frame
    assert list(series_frame.columns) == ["sig"]


def test_align_frames_on_common_timestamps(view) -> None:
    v, node = view
    a, b = v.align_frames([(node, 60), ("blake3:bb", 60)], window=2)
    assert a.frame.index.tolist() == b.frame.index.tolist() == [180, 240]
    assert a.frame["close"].tolist() == [3.0, 4.0] and b.frame["close"].tolist() == [20.0, 30.0]
    joined = pd.concat([a.frame["close"], b.frame["close"]], axis=1)
    assert joined.shape == (2, 2)


def test_blueprint_correlation_function_runs_on_a_concrete_view(view) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "correlation.py"
    spec = importlib.util.spec_from_file_location("corr_example_for_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    v, _ = view
    windows = {k: {3600: w[60]} for k, w in v._windows.items() if k != "blake3:cc"}
    corr = module.calc_corr(CacheView(windows))
    assert corr.shape == (4, 4) and corr.iloc[0, 2] == pytest.approx(1.0)
