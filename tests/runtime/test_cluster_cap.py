"""A portfolio-total cap in cluster runs (docs/design.md "Cluster runs"; ``qmtl.runtime.cluster_cap``):
instruments with gaps and their own starts and ends, the cap binding, and the outputs read back equal
``compiled.run`` bit for bit — one process with several worker threads at awkward batch sizes, two
independent processes, two network namespaces, and a ``kill -9`` resumed from the recovery directory.
The same with a tag query's group step in the flow too.  The cap step alone is fed its windows out of
order and in stretches: it decides what the whole-run step decides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qmtl
from qmtl.ir.module import Op, make_attrs
from qmtl.ir.types import F64
from qmtl.runtime import cross
from qmtl.runtime.cluster import cluster_flow, run_process
from qmtl.runtime.cluster_cap import CapExchange, CapLogic
from qmtl.runtime.row_sink import RunFailed, read_outputs
from qmtl.runtime.synthetic import synthetic_bars

from tests.runtime.cluster_support import (  # noqa: F401 - two_hosts is a fixture
    assert_same, chunk_times, finish, free_ports, hive, kill_after_snapshots, qmtl_run, two_hosts)

#: signal → RiskControl with the cap → TimingGate → Execution, and an opaque per-tick node (slow,
#: so a run can be killed midway; it runs in pass 2 only)
CAPPED = '''
from qmtl.runtime.sdk import Execution, Node, RiskControl, Strategy, StreamInput, TimingGate


class Book(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=12)
        signal = Node(expr={{"signal": (price.close.pct_change().rolling(3).mean() > 0).astype(float) * 2 - 1}},
                      name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=800{cap})
        timing = TimingGate(risk)
        orders = Execution(timing, fee_bps=1, slippage_bps=1)

        def slope(view):
            close = view[price][60]["close"]
            return close.rolling(10).apply(lambda w: w[-1] - w[0], raw=True)

        self.add_nodes([price, signal, risk, timing, orders, Node(input=price, compute_fn=slope, name="slope")])
'''


def _strategy(tmp_path, cap: str = ", max_total_notional=900"):
    path = tmp_path / f"book{len(cap)}.py"
    path.write_text(CAPPED.format(cap=cap))
    return path


def _gappy(n: int, symbols: tuple[str, ...], seed: int) -> pd.DataFrame:
    """Bars with a fifth of them missing at random, one instrument starting late and one ending early."""
    df = synthetic_bars(n, symbols=symbols, seed=seed)
    df = df if "ts" in df.columns else df.reset_index()
    rng = np.random.default_rng(seed)
    t0 = df.ts.min()
    late = (df.symbol == symbols[-1]) & (df.ts < t0 + 60 * n // 3)
    early = (df.symbol == symbols[0]) & (df.ts > t0 + 60 * (2 * n // 3))
    return df[(rng.random(len(df)) > 0.2) & ~late & ~early].reset_index(drop=True)


def _binds(program, tmp_path, data) -> dict[str, pd.DataFrame]:
    """The in-memory run's outputs, after checking the cap binds on this data."""
    expected = program.run(data).outputs
    plain = qmtl.compile(str(_strategy(tmp_path, ""))).run(data).outputs
    assert (expected["risk"]["risk"].abs() < plain["risk"]["risk"].abs() - 1e-9).any(), "the cap binds"
    return expected


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("capbook")
    return hive(_gappy(240, ("AAA", "BBB", "CCC", "DDD"), 5), root / "bars")


def test_one_file_whose_instruments_start_out_of_name_order(tmp_path):
    """In one file the run keys are in order of first appearance (DDD starts first here), and the
    cap's step sums an instant's instruments in that order: the cluster plan (a survey) keeps it."""
    df = _gappy(200, ("DDD", "AAA", "CCC", "BBB"), 6)
    df = df[~((df.symbol != "DDD") & (df.ts == df.ts.min()))]
    data = tmp_path / "bars.parquet"
    df.to_parquet(data, index=False)
    program = qmtl.compile(str(_strategy(tmp_path)))
    expected = _binds(program, tmp_path, str(data))
    run_process(cluster_flow(program, str(data), tmp_path / "out", batch_size=13).flow, workers=3)
    assert_same(read_outputs(tmp_path / "out"), expected)


@pytest.mark.parametrize("workers,batch", [(1, 7), (3, 1), (2, 64), (4, 10_000)])
def test_a_capped_strategy_as_a_cluster_job_equals_the_in_memory_run(book, tmp_path, workers, batch):
    program = qmtl.compile(str(_strategy(tmp_path)))
    expected = _binds(program, tmp_path, str(book))
    run_process(cluster_flow(program, str(book), tmp_path / "out", batch_size=batch).flow, workers=workers)
    assert_same(read_outputs(tmp_path / "out"), expected)


def test_a_cap_on_one_instrument_without_a_symbol_column(tmp_path):
    """A value that runs once (one stream, no symbol column): the cap step's book has one entry."""
    data = tmp_path / "one.parquet"
    _gappy(200, ("ONE",), 8).drop(columns="symbol").to_parquet(data, index=False)
    program = qmtl.compile(str(_strategy(tmp_path, ", max_total_notional=150")))
    expected = _binds(program, tmp_path, str(data))
    run_process(cluster_flow(program, str(data), tmp_path / "out", batch_size=9).flow, workers=2)
    assert_same(read_outputs(tmp_path / "out"), expected)


def test_two_independent_processes_apply_the_cap_as_one_run(book, tmp_path):
    strategy = _strategy(tmp_path)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    procs = [qmtl_run(strategy, book, tmp_path / "out", "-a", addresses, "-i", str(i), "-w", "2",
                       "--batch-size", "11", home=tmp_path / "home") for i in range(2)]
    finish(procs)
    assert_same(read_outputs(tmp_path / "out"), _binds(qmtl.compile(str(strategy)), tmp_path, str(book)))


def test_kill_9_mid_run_and_resume_gives_the_uninterrupted_capped_outputs(tmp_path):
    """Both passes' kernel state, the held book, the operands and windows waiting for the cap are
    in the snapshots: the resumed run equals an uninterrupted one."""
    strategy = _strategy(tmp_path)
    data = hive(_gappy(1500, ("AAA", "BBB", "CCC", "DDD"), 9), tmp_path / "bars")
    out, recovery = tmp_path / "out", tmp_path / "recovery"
    args = ("--recovery-dir", str(recovery), "--snapshot-interval", "0.1", "--batch-size", "25")
    first = qmtl_run(strategy, data, out, *args, home=tmp_path / "home")
    kill_after_snapshots(first, out, rows=150)
    with pytest.raises(RunFailed, match="did not finish"):
        read_outputs(out)
    before = chunk_times(out)
    finish([qmtl_run(strategy, data, out, *args, home=tmp_path / "home")])
    after = chunk_times(out)
    assert any(after[p] == t for p, t in before.items())  # resumed, not redone
    assert_same(read_outputs(out), _binds(qmtl.compile(str(strategy)), tmp_path, str(data)))


def test_a_capped_cluster_across_two_network_namespaces_equals_one_process(two_hosts, tmp_path):
    strategy = _strategy(tmp_path)
    data = hive(_gappy(300, tuple(f"S{i:02d}" for i in range(6)), 11), tmp_path / "bars")
    addresses = ";".join(f"{ip}:2103" for _, ip in two_hosts)
    procs = [qmtl_run(strategy, data, tmp_path / "out", "-a", addresses, "-i", str(i), "-w", "2",
                       "--batch-size", "17", netns=ns, home=tmp_path / "home") for i, (ns, _) in enumerate(two_hosts)]
    finish(procs)
    assert_same(read_outputs(tmp_path / "out"), _binds(qmtl.compile(str(strategy)), tmp_path, str(data)))


# --- the cap step alone ---------------------------------------------------------------------------


def test_the_cap_step_fed_out_of_order_in_stretches_decides_as_the_whole_run_step():
    """Three instruments' operands (their own instants, NaN targets), each cut into windows handed to
    the step shuffled across instruments and within one: the entries it sends back, per instrument,
    equal ``cross.capped`` over the whole run bit for bit; nothing is sent before every instrument
    has handed out a tick, and the step is finished exactly at the last window."""
    cap = Op("cap", "total_cap", ("t", "c"), make_attrs({"max_total_notional": 500.0}), F64, None, "id")
    rng = np.random.default_rng(4)
    keys = ("A", "B", "C")
    whole = {}
    for i, k in enumerate(keys):
        close = np.sort(rng.choice(np.arange(1000, 1000 + 60 * 200, 60), size=120 - 30 * i, replace=False))
        target = rng.normal(0, 3, len(close))
        target[rng.random(len(close)) < 0.2] = np.nan
        whole[k] = (close - 60, {0: target, 1: 20 + 10 * i + rng.random(len(close))})
    expected = cross.capped([cap], {"cap": whole}, {"cap": keys}, {"cap": 60})["cap"]
    step = CapLogic(CapExchange([cap], keys, {"cap": keys}, {"cap": 60}, make_second=None), None)
    items = []
    for k, (ts, cols) in whole.items():
        cuts = [0, *sorted(rng.choice(np.arange(1, len(ts)), size=6, replace=False)), len(ts)]
        items += [(k, lo, hi - lo, int(ts[hi - 1] + 60),
                   {"cap": (ts[lo:hi], {0: cols[0][lo:hi], 1: cols[1][lo:hi]})}, hi == len(ts))
                  for lo, hi in zip(cuts, cuts[1:])]
    got = {k: ([], []) for k in keys}
    seen: set = set()
    for n, i in enumerate(rng.permutation(len(items))):
        sent, finished = step.on_item(items[i])
        seen.add(items[i][0])
        if len(seen) < len(keys):
            assert sent == []
        for part, (_tag, _upto, entries) in sent:
            ts, values = entries["cap"]
            got[part][0].append(ts)
            got[part][1].append(values)
        assert finished == (n == len(items) - 1)
    for k in keys:
        ts, cols = expected.for_key(k)
        np.testing.assert_array_equal(np.concatenate(got[k][0]), ts)
        np.testing.assert_array_equal(np.concatenate(got[k][1]), cols["value"])
    assert (np.abs(expected.columns["value"]) < np.abs(np.concatenate([whole[k][1][0] for k in keys])) - 1e-9).any()


#: the cap next to nodes reading a tag query's group: both steps of the dataflow after the kernels
MIXED = '''
import pandas as pd
from qmtl.runtime.sdk import Execution, MatchMode, Node, RiskControl, Strategy, StreamInput, TagQueryNode, TimingGate


class Mixed(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=12)
        signal = Node(expr={{"signal": (price.close.pct_change().rolling(3).mean() > 0).astype(float) * 2 - 1}},
                      name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=800{cap})
        orders = Execution(TimingGate(risk), fee_bps=1)
        basket = TagQueryNode(["AAA", "BBB", "CCC"], interval=60, period=10, match_mode=MatchMode.ANY, name="basket")

        def breadth(view):
            rets = [view[nid][60]["close"].pct_change().iloc[-1] for nid in view]
            return pd.Series([sum(rets) / len(rets)])

        self.add_nodes([price, signal, risk, orders, basket, Node(input=basket, compute_fn=breadth, name="breadth")])
'''


def test_the_cap_and_a_tag_query_group_in_one_cluster_flow(tmp_path):
    programs = {}
    for label, cap in (("plain", ""), ("capped", ", max_total_notional=900")):
        path = tmp_path / f"{label}.py"
        path.write_text(MIXED.format(cap=cap))
        programs[label] = qmtl.compile(str(path))
    data = hive(_gappy(150, ("AAA", "BBB", "CCC"), 3), tmp_path / "bars")
    expected = programs["capped"].run(str(data)).outputs
    plain = programs["plain"].run(str(data)).outputs
    assert (expected["risk"]["risk"].abs() < plain["risk"]["risk"].abs() - 1e-9).any(), "the cap binds"
    assert len(expected["breadth"])
    run_process(cluster_flow(programs["capped"], str(data), tmp_path / "out", batch_size=11).flow, workers=2)
    assert_same(read_outputs(tmp_path / "out"), expected)
