"""The feed's boundary: what is a bar, what the drop rule says, and the id a live run goes by (what a
live run refuses to serve: ``test_multi_interval``)."""

from __future__ import annotations

import json

import pytest

from qmtl.live.bar_age import BarAge, checked_max_age
from qmtl.live.bar_rule import BarSequence
from qmtl.live.bars import BadBar, parse_bar
from qmtl.live.feed import FeedAddress, FeedError
from qmtl.live.runner import live_strategy_id
from qmtl.services.gateway.verify import parse_dag_document, verify_dag

from .support import compile_strategy

GOOD = {"ts": 1_700_000_040, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3}


def test_a_bar_takes_its_symbol_from_the_subject_unless_it_names_one():
    assert parse_bar(json.dumps(GOOD).encode(), "bars.BTC").symbol == "BTC"
    assert parse_bar(json.dumps({**GOOD, "symbol": "ETH"}).encode(), "bars.BTC").symbol == "ETH"
    assert parse_bar(json.dumps({**GOOD, "funding": 0.1}).encode(), "b.X").field("funding") == 0.1


@pytest.mark.parametrize("payload, says", [
    (b"\xff", "not JSON"),
    (b"[]", "a bar is a JSON object"),
    (json.dumps({**GOOD, "ts": 1.5}).encode(), "field ts"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "close"}).encode(), "field close"),
    (json.dumps({**GOOD, "open": -1}).encode(), "open=-1.0 must be a finite price"),
    (b'{"ts": 1700000040, "open": 1, "high": 1, "low": 1, "close": NaN, "volume": 1}', "close=nan"),
    (json.dumps({**GOOD, "volume": -2}).encode(), "volume=-2.0"),
    (json.dumps({**GOOD, "note": "hi"}).encode(), "extra field note"),
    # prices that are not a bar's: the backtest's loader refuses the same (E503, qmtl.runtime.bar_shape)
    (json.dumps({**GOOD, "high": 0.4}).encode(), "high=0.4 is below low=0.5"),
    (json.dumps({**GOOD, "open": 2.5}).encode(), "open=2.5 is outside [low, high] = [0.5, 2.0]"),
    (json.dumps({**GOOD, "close": 0.1}).encode(), "close=0.1 is outside [low, high] = [0.5, 2.0]"),
])
def test_what_is_not_a_bar_says_why(payload, says):
    with pytest.raises(BadBar) as info:
        parse_bar(payload, "bars.BTC")
    assert info.value.reason == "malformed" and says in str(info.value) and "bars.BTC" in str(info.value)


def test_the_rule_drops_repeats_older_bars_and_bars_off_the_grid_per_instrument():
    rule = BarSequence(60, {"BTC": 600})
    assert [rule.reject("BTC", ts) for ts in (660, 600, 540, 630)] == [None, "duplicate", "late", "off_grid"]
    assert rule.reject("ETH", 60) is None  # another instrument has its own sequence
    rule.advance("BTC", 660)
    assert rule.reject("BTC", 660) == "duplicate"


def test_a_bar_opening_ahead_of_the_wall_clock_is_future_and_moves_nothing():
    now = 1_800_000_000
    rule = BarSequence(60, {"BTC": now - 120}, clock=lambda: now)
    assert rule.reject("BTC", now - 60) is None and rule.reject("BTC", now + 60) is None  # within the skew
    assert rule.reject("BTC", 4_102_444_800) == "future"  # year 2100: accepted, every real bar would be late
    assert BarSequence(3600, clock=lambda: now - now % 3600).reject("BTC", now - now % 3600 + 3600) is None


def test_history_without_symbols_serves_only_the_instrument_the_feed_names(tmp_path):
    from qmtl.live.kernels import LiveError, LiveKernels
    from .support import bars
    compiled, _ = compile_strategy(tmp_path)
    history = bars(30).drop(columns="symbol")
    kernels = LiveKernels(compiled, history)
    kernels.name_unnamed("AAA")
    assert kernels.key_for("aaa") == next(iter(kernels.symbols))  # the feed's instrument, any case
    with pytest.raises(KeyError):
        kernels.key_for("ZZZ")  # a bar of another symbol is an unknown instrument, not AAA's
    with pytest.raises(LiveError, match="wildcard"):
        LiveKernels(compiled, history).name_unnamed(None)


@pytest.mark.parametrize("url", ["http://h:1/bars", "nats://h:4222", "nats://h:4222/a b", "nats:///bars.X"])
def test_a_feed_address_is_nats_url_with_a_subject(url):
    with pytest.raises(FeedError, match="nats://"):
        FeedAddress.parse(url)
    assert FeedAddress.parse("nats://127.0.0.1:4222/bars.>") == FeedAddress("nats://127.0.0.1:4222", "bars.>")


def test_the_live_strategy_id_is_the_gateways(tmp_path):
    compiled, _ = compile_strategy(tmp_path)
    assert live_strategy_id(compiled) == verify_dag(parse_dag_document(compiled.dag)).strategy_id


def test_a_bar_is_too_old_for_orders_a_few_intervals_after_its_close():
    assert checked_max_age(None, 60) == 180 and checked_max_age(None, 300) == 900  # default: 3 intervals
    assert checked_max_age(float("inf"), 60) == float("inf") and checked_max_age(30, 60) == 30
    for bad in (0, -5, float("nan"), True):
        with pytest.raises(ValueError, match="--max-bar-age"):
            checked_max_age(bad, 60)
    now = 1_800_000_000
    age = BarAge(60, 180.0, clock=lambda: now)
    assert age.stale(now - 60) == "" and age.stale(now - 240) == ""  # closed now; closed 180 s ago
    assert "closed 181 s ago" in age.stale(now - 241)
    assert BarAge(60, float("inf"), clock=lambda: now).stale(0) == ""
