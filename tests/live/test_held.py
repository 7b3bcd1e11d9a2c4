"""The held book and the waiting instant of a capped live run, without a server: the step carried on
the held book from instant to instant gives what one step over the whole run gives (what makes a
live run's cap the backtest's), the book refuses entries or snapshots that do not fit it, and an
instant holds bars of one ts only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.ir import ops as opreg
from qmtl.ir.module import Op, make_attrs
from qmtl.live.bars import Bar
from qmtl.live.feed import BarRef
from qmtl.live.held import HeldBook
from qmtl.live.instant import Instant
from qmtl.runtime import cross

CAP = Op("r", "total_cap", ("t", "c"), make_attrs({"max_total_notional": 500.0}))
KEYS = ("A", "B", "C")


@st.composite
def runs(draw):
    """Per instrument: instants (minutes, some shared, some not), targets with NaNs, closes with
    an unusable one now and then."""
    out = []
    for _ in KEYS:
        minutes = sorted(draw(st.sets(st.integers(1, 30), min_size=0, max_size=20)))
        n = len(minutes)
        targets = draw(st.lists(st.one_of(st.floats(-6, 6), st.just(float("nan"))), min_size=n, max_size=n))
        closes = draw(st.lists(st.one_of(st.floats(10, 200), st.just(float("nan")), st.just(0.0)),
                               min_size=n, max_size=n))
        out.append((np.asarray(minutes, dtype=np.int64) * 60, np.asarray(targets), np.asarray(closes)))
    return out


@settings(max_examples=60, deadline=None)
@given(run=runs(), cuts=st.lists(st.integers(1, 30), max_size=5))
def test_the_step_carried_on_the_held_book_equals_one_step_over_the_run(run, cuts):
    whole = opreg.total_cap([r[0] for r in run], [r[1] for r in run], [r[2] for r in run], 500.0,
                            step=cross.jitted_step)
    book = HeldBook([CAP], {"r": KEYS}, {"r": 60})
    parts = [[] for _ in KEYS]
    edges = [0, *sorted(set(cuts)), 31]
    for lo, hi in zip(edges, edges[1:]):  # instants in [lo, hi) minutes, as one decision
        recorded = {"r": {}}
        for key, (instants, targets, closes) in zip(KEYS, run):
            inside = (instants >= lo * 60) & (instants < hi * 60)
            # recorded rows are bar opens: the step's instants are opens + the clock
            recorded["r"][key] = (instants[inside] - 60, {0: targets[inside], 1: closes[inside]})
        series = book.cap(recorded)["r"]
        for i, key in enumerate(KEYS):
            parts[i].append(series.for_key(key)[1]["value"])
    for i in range(len(KEYS)):
        got = np.concatenate(parts[i]) if parts[i] else np.zeros(0)
        np.testing.assert_array_equal(got, whole[i])
    held, mark = book.books["r"]
    for i, (instants, targets, closes) in enumerate(run):
        decided = ~np.isnan(targets)
        assert held[i] == (whole[i][decided][-1] if decided.any() else 0.0)
        usable = closes[closes > 0]
        assert (np.isnan(mark[i]) and not len(usable)) or mark[i] == usable[-1]


def test_the_book_refuses_entries_without_every_instrument_and_foreign_snapshots():
    book = HeldBook([CAP], {"r": KEYS}, {"r": 60})
    empty = (np.zeros(0, np.int64), {0: np.zeros(0), 1: np.zeros(0)})
    with pytest.raises(ValueError, match=r"no entries .*'C'"):
        book.cap({"r": {"A": empty, "B": empty}})
    other = HeldBook([CAP], {"r": ("A", "B")}, {"r": 60})
    with pytest.raises(ValueError, match="other caps or instruments"):
        book.restore(other.snapshot())
    book.cap({"r": {"A": (np.array([0]), {0: np.array([5.0]), 1: np.array([100.0])}), "B": empty, "C": empty}})
    saved = book.snapshot()
    book.cap({"r": {"A": (np.array([60]), {0: np.array([1.0]), 1: np.array([50.0])}), "B": empty, "C": empty}})
    assert book.held("r", "A") == (1.0, 50.0)
    book.restore(saved)
    assert book.held("r", "A") == (5.0, 100.0) and book.held("r", "B")[0] == 0.0


def test_an_instant_holds_bars_of_one_ts():
    bar = lambda symbol, ts: Bar(symbol=symbol, ts=ts, open=1.0, high=1.0, low=1.0, close=1.0, volume=0.0)
    ref = BarRef(stream="S", seq=1, subject="bars.A")
    instant = Instant()
    instant.add("A", bar("A", 60), ref)
    assert not instant.complete(KEYS)
    with pytest.raises(ValueError, match="ts=120 in the instant of ts=60"):
        instant.add("B", bar("B", 120), ref)
    instant.add("B", bar("B", 60), ref)
    instant.add("C", bar("C", 60), ref)
    assert instant.complete(KEYS)
    again = Instant.restored(instant.snapshot())
    assert again.ts == 60 and list(again.bars) == ["A", "B", "C"] and Instant.restored(None).ts is None
