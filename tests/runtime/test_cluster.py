"""Cluster runs (docs/design.md "Cluster runs"): each instrument read by the partition that owns it,
outputs written per batch under the output directory, and the same frames as ``compiled.run``, bit
for bit — in one process, in independent processes on loopback and in separate network namespaces,
and after a ``kill -9`` and a restart from the recovery directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qmtl
from qmtl.ir.diagnostics import CompileError
from qmtl.runtime.cluster import cluster_flow, run_process
from qmtl.runtime.data import DataError, survey
from qmtl.runtime.row_sink import RunDirError, RunFailed, read_outputs
from qmtl.runtime.synthetic import synthetic_bars

from tests.robustness.cases import CASES
from tests.robustness.conftest import strategy_path
from tests.runtime.cluster_support import (  # noqa: F401 - two_hosts is a fixture
    QMTL, ROOT, assert_same, chunk_times, finish, free_ports, hive, kill_after_snapshots, qmtl_run, two_hosts)


def _bars(n: int, symbols: tuple[str, ...], seed: int) -> pd.DataFrame:
    df = synthetic_bars(n, symbols=symbols, seed=seed)
    return df if "ts" in df.columns else df.reset_index()


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bars")
    single = root / "single.parquet"
    _bars(300, ("ONE",), 3).drop(columns="symbol").to_parquet(single, index=False)
    return {"multi": hive(_bars(300, ("AAA", "BBB", "CCC"), 4), root / "multi"), "single": single}


PER_INSTRUMENT = sorted(s for s, c in CASES.items() if not c.run_skip and s != "s25_tag_query")


@pytest.mark.parametrize("stem", PER_INSTRUMENT)
def test_every_strategy_runs_as_a_cluster_job_with_the_same_outputs(stem, bars, tmp_path) -> None:
    """Each robustness strategy over a hive-partitioned directory (and a one-symbol file where it
    reads one), two worker threads, batches of 7 ticks: the outputs read back equal an in-memory run."""
    program = qmtl.compile(strategy_path(stem))
    for label in ("multi", "single") if "single" in CASES[stem].data else ("multi",):
        data = str(bars[label])
        expected = program.run(data).outputs
        job = cluster_flow(program, data, tmp_path / label, batch_size=7)
        run_process(job.flow, workers=2)
        assert_same(read_outputs(tmp_path / label), expected)


def test_each_partition_writes_only_its_own_instrument_per_batch(bars, tmp_path) -> None:
    program = qmtl.compile(ROOT / "examples" / "momentum.py")
    run_process(cluster_flow(program, str(bars["multi"]), tmp_path, batch_size=100).flow)
    out = tmp_path / "momentum_signal"
    assert sorted(p.name for p in out.iterdir()) == ["symbol=AAA", "symbol=BBB", "symbol=CCC"]
    assert sorted(p.name for p in (out / "symbol=AAA").iterdir()) == [
        "part-000000000000.parquet", "part-000000000100.parquet", "part-000000000200.parquet"]
    # the tree is a dataset pandas reads as it is: every row, the symbol from the directory
    whole = pd.read_parquet(out)
    assert len(whole) == len(program.run(str(bars["multi"])).outputs["momentum_signal"])


#: per-instrument nodes, a tag query over the instruments, and a node reading both
BASKET = '''
import numpy as np
import pandas as pd
from qmtl.runtime.sdk import MatchMode, Node, Strategy, StreamInput, TagQueryNode


class Basket(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def momentum(view):
            return view[price][60]["close"].pct_change(5)

        mom = Node(input=price, compute_fn=momentum, name="mom")
        basket = TagQueryNode(["AAA", "BBB", "CCC"], interval=60, period=10, match_mode=MatchMode.ANY,
                              name="basket")

        def breadth(view):
            rets = [view[nid][60]["close"].pct_change().iloc[-1] for nid in view]
            return pd.Series([sum(rets) / len(rets)])

        avg = Node(input=basket, compute_fn=breadth, name="breadth")

        def excess(view):
            return pd.Series([view[mom][60].iloc[-1] - view[avg][60].iloc[-1]])

        self.add_nodes([price, mom, basket, avg, Node(input=[mom, avg], compute_fn=excess, name="excess", period=3)])
'''


def test_nodes_reading_a_tag_query_run_in_the_group_step_of_the_dataflow(bars, tmp_path) -> None:
    """The group step gets every instrument's emission ticks by a keyed exchange and evaluates the
    nodes reading the group (and those downstream of them) once all instruments have finished."""
    strategy = tmp_path / "basket.py"
    strategy.write_text(BASKET)
    program = qmtl.compile(strategy)
    run_process(cluster_flow(program, str(bars["multi"]), tmp_path / "out", batch_size=7).flow, workers=2)
    expected = program.run(str(bars["multi"])).outputs
    assert set(expected) == {"mom", "breadth", "excess"} and all(len(f) for f in expected.values())
    assert_same(read_outputs(tmp_path / "out"), expected)


def test_a_strategy_with_nothing_per_instrument_is_refused_with_a_code(tmp_path) -> None:
    data = tmp_path / "crypto.parquet"
    _bars(50, ("BTC", "ETH"), 7).to_parquet(data, index=False)
    with pytest.raises(CompileError, match="E507"):
        cluster_flow(qmtl.compile(strategy_path("s25_tag_query")), str(data), tmp_path / "out")


def test_an_output_directory_of_another_run_is_refused(bars, tmp_path) -> None:
    momentum = qmtl.compile(ROOT / "examples" / "momentum.py")
    cluster_flow(momentum, str(bars["multi"]), tmp_path / "out", batch_size=10)
    cluster_flow(momentum, str(bars["multi"]), tmp_path / "out", batch_size=10)  # the same run: allowed
    with pytest.raises(RunDirError, match="another run"):
        cluster_flow(momentum, str(bars["multi"]), tmp_path / "out", batch_size=11)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty"):
        cluster_flow(momentum, str(bars["multi"]), tmp_path / "other")


def test_bad_data_in_one_partition_is_the_users_error_not_bytewaxs(tmp_path) -> None:
    df = _bars(60, ("AAA", "BBB"), 5)
    bad = df.index[df["symbol"] == "BBB"][10]
    df.loc[bad, "close"] = float("inf")
    data = hive(df, tmp_path / "bars")
    job = cluster_flow(qmtl.compile(ROOT / "examples" / "momentum.py"), str(data), tmp_path / "out")
    with pytest.raises(DataError, match="E503.*infinite.*BBB"):
        run_process(job.flow)


def test_survey_reads_symbols_and_columns_not_bars(bars, tmp_path) -> None:
    multi = survey(bars["multi"])
    assert multi.symbols == ("AAA", "BBB", "CCC") and all(len(s) == 0 for s in multi.streams)
    assert {"open", "high", "low", "close", "volume"} <= set(multi.fields)
    single = survey(bars["single"])
    assert single.symbols == () and not single.has_symbols and "close" in single.fields
    (tmp_path / "no_ts.csv").write_text("time,close\n1,2\n")
    with pytest.raises(DataError, match="E501"):
        survey(tmp_path / "no_ts.csv")


# --- independent processes ------------------------------------------------------------------------


def test_two_independent_processes_on_loopback_equal_one_run(bars, tmp_path) -> None:
    """``qmtl run -a … -i N`` in two processes started separately (no fork, nothing shared but the
    output directory), with a group step fed from both: the outputs equal an in-memory run's."""
    strategy = tmp_path / "basket.py"
    strategy.write_text(BASKET)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    procs = [qmtl_run(strategy, bars["multi"], tmp_path / "out", "-a", addresses, "-i", str(i), "--batch-size", "50",
                       home=tmp_path / "home") for i in range(2)]
    finish(procs)
    assert_same(read_outputs(tmp_path / "out"), qmtl.compile(strategy).run(str(bars["multi"])).outputs)


def test_bytewax_run_starts_the_flow_factory(bars, tmp_path) -> None:
    strategy = ROOT / "examples" / "momentum.py"
    call = f"qmtl.runner.cluster:flow({str(strategy)!r}, {str(bars['multi'])!r}, {str(tmp_path / 'out')!r})"
    done = subprocess.run([sys.executable, "-m", "bytewax.run", call, "-w", "2"], capture_output=True, text=True,
                          env={**os.environ, "QMTL_HOME": str(tmp_path / "home")}, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert_same(read_outputs(tmp_path / "out"), qmtl.compile(strategy).run(str(bars["multi"])).outputs)


# --- recovery --------------------------------------------------------------------------------------

#: traced kernels with state (EWM, rolling) and an opaque per-tick function: both must resume
SLOW = '''
import numpy as np
import pandas as pd
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class Slow(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=30)

        def trend(view):
            close = view[price][60]["close"]
            return pd.DataFrame({"ewm": close.ewm(span=12).mean(), "vol": close.rolling(20).std()})

        def slope(view):
            close = view[price][60]["close"]
            return close.rolling(10).apply(lambda w: w[-1] - w[0], raw=True)

        self.add_nodes([price, Node(input=price, compute_fn=trend, name="trend"),
                        Node(input=price, compute_fn=slope, name="slope")])
'''


def test_kill_9_and_resume_gives_the_uninterrupted_outputs(tmp_path) -> None:
    strategy = tmp_path / "slow.py"
    strategy.write_text(SLOW)
    data = hive(_bars(1500, ("AAA", "BBB", "CCC", "DDD"), 9), tmp_path / "bars")
    out, recovery = tmp_path / "out", tmp_path / "recovery"
    args = ("--recovery-dir", str(recovery), "--snapshot-interval", "0.1", "--batch-size", "25")
    first = qmtl_run(strategy, data, out, *args, home=tmp_path / "home")
    kill_after_snapshots(first, out, rows=80)
    with pytest.raises(RunFailed, match="did not finish"):  # a part of the outputs is not the outputs
        read_outputs(out)
    before = chunk_times(out)
    finish([qmtl_run(strategy, data, out, *args, home=tmp_path / "home")])
    after = chunk_times(out)
    # resumed, not redone: batches before the last snapshot were not written again
    assert any(after[p] == t for p, t in before.items())
    assert_same(read_outputs(out), qmtl.compile(strategy).run(str(data)).outputs)


# --- separate hosts (network namespaces) ----------------------------------------------------------


def test_a_cluster_across_two_network_namespaces_equals_one_process(two_hosts, tmp_path) -> None:
    strategy = tmp_path / "slow.py"
    strategy.write_text(SLOW)
    data = hive(_bars(400, tuple(f"S{i:02d}" for i in range(8)), 11), tmp_path / "bars")
    addresses = ";".join(f"{ip}:2101" for _, ip in two_hosts)
    procs = [qmtl_run(strategy, data, tmp_path / "out", "-a", addresses, "-i", str(i), "-w", "2",
                       netns=ns, home=tmp_path / "home") for i, (ns, _) in enumerate(two_hosts)]
    finish(procs)
    assert_same(read_outputs(tmp_path / "out"), qmtl.compile(strategy).run(str(data)).outputs)


def test_one_host_killed_then_the_cluster_restarted_resumes(two_hosts, tmp_path) -> None:
    strategy = tmp_path / "slow.py"
    strategy.write_text(SLOW)
    data = hive(_bars(1500, tuple(f"S{i:02d}" for i in range(4)), 13), tmp_path / "bars")
    addresses = ";".join(f"{ip}:2102" for _, ip in two_hosts)
    out, recovery = tmp_path / "out", tmp_path / "recovery"

    def start() -> list[subprocess.Popen]:
        return [qmtl_run(strategy, data, out, "-a", addresses, "-i", str(i), "--recovery-dir", str(recovery),
                          "--snapshot-interval", "0.1", "--batch-size", "25", netns=ns, home=tmp_path / "home")
                for i, (ns, _) in enumerate(two_hosts)]

    first = start()
    kill_after_snapshots(first[1], out, rows=60)
    try:
        first[0].wait(timeout=60)  # its peer is gone: it stops too
    except subprocess.TimeoutExpired:
        first[0].kill()
        first[0].wait()
    finish(start())
    assert_same(read_outputs(out), qmtl.compile(strategy).run(str(data)).outputs)


def test_a_time_range_runs_the_same_in_memory_and_as_a_cluster_job(bars, tmp_path) -> None:
    """``qmtl run --start/--end`` on the cluster path and ``compiled.run(Bars.between(...))``: the
    same rows, only bars of the range read (an instrument none of whose bars fall in it is absent)."""
    strategy = ROOT / "examples" / "momentum.py"
    ts = pd.read_parquet(bars["multi"])["ts"]
    lo, hi = int(ts.min()) + 60 * 50, int(ts.min()) + 60 * 250
    expected = qmtl.compile(strategy).run(qmtl.Bars.between(bars["multi"], lo, hi)).outputs
    assert expected["momentum_signal"].index.min() >= lo and expected["momentum_signal"].index.max() < hi
    proc = qmtl_run(strategy, bars["multi"], tmp_path / "out", "--start", str(lo), "--end",
                     pd.Timestamp(hi, unit="s").isoformat(), "-r", str(tmp_path / "rec"), home=tmp_path / "home")
    finish([proc])
    assert_same(read_outputs(tmp_path / "out"), expected)


# --- reading a partition a stretch at a time ---------------------------------------------------------


def _gappy_bars(seed: int) -> pd.DataFrame:
    """Three symbols, raw bars every 20 s (finer than the strategies' 60 s / 300 s clocks), with a
    two-day gap and symbols starting at different times."""
    frames = []
    for i, symbol in enumerate(("AAA", "BBB", "CCC")):
        df = _bars(900, (symbol,), seed + i)
        ts = 1_700_000_000 + 20 * np.arange(len(df)) + 40 * i
        ts[500:] += 2 * 86_400
        frames.append(df.assign(ts=ts))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("layout", ["row_groups", "hive_by_day", "shuffled"])
def test_a_partition_read_in_stretches_equals_the_whole_read(layout, tmp_path) -> None:
    """Parquet row groups of 37 rows (pieces ordered by their statistics), a hive tree by symbol and
    hour (files listed out of time order), and a directory of one shuffled file (overlapping pieces:
    the key is read whole): cluster runs at batch 5 and 64 equal an in-memory run, for a strategy on two clocks."""
    df = _gappy_bars(21)
    if layout == "row_groups":
        data = tmp_path / "bars.parquet"
        df.to_parquet(data, index=False, row_group_size=37)
    elif layout == "hive_by_day":
        data = tmp_path / "bars"
        day = ((df["ts"] - df["ts"].min()) // 3600).astype(str)  # hours, unpadded: path order ≠ time order
        import pyarrow as pa
        import pyarrow.dataset as pads
        pads.write_dataset(pa.Table.from_pandas(df.assign(hour=day), preserve_index=False), data, format="parquet",
                           partitioning=pads.partitioning(pa.schema([("symbol", pa.string()), ("hour", pa.string())]),
                                                          flavor="hive"))
    else:  # a directory (whose reader sorts) of one shuffled file
        data = tmp_path / "bars"
        data.mkdir()
        df.sample(frac=1.0, random_state=3).to_parquet(data / "part.parquet", index=False, row_group_size=100)
    program = qmtl.compile(strategy_path("s22_mixed_intervals"))
    expected = program.run(str(data)).outputs
    for batch in (5, 64):
        run_process(cluster_flow(program, str(data), tmp_path / f"out{batch}", batch_size=batch).flow)
        assert_same(read_outputs(tmp_path / f"out{batch}"), expected)


def test_pieces_are_ordered_by_statistics_and_overlap_means_whole(tmp_path) -> None:
    from qmtl.runtime.data import scan
    df = _gappy_bars(5)
    ordered = tmp_path / "ordered.parquet"
    df.sort_values(["ts"]).to_parquet(ordered, index=False, row_group_size=64)
    pieces = list(scan(str(ordered), {"close"}, "BBB"))
    assert len(pieces) > 3 and all(p.symbol == "BBB" for p in pieces)
    ts = np.concatenate([p.ts for p in pieces])
    assert np.array_equal(ts, np.sort(df.loc[df["symbol"] == "BBB", "ts"].to_numpy()))
    shuffled = tmp_path / "shuffled.parquet"
    df.sample(frac=1.0, random_state=1).to_parquet(shuffled, index=False, row_group_size=64)
    assert scan(str(shuffled), {"close"}, "BBB") is None


# --- what a careless user does ----------------------------------------------------------------------


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*QMTL, *args], capture_output=True, text=True, cwd=ROOT, timeout=240,
                          env={**os.environ, "QMTL_HOME": str(home)})


def test_careless_cluster_invocations_get_clear_errors(bars, tmp_path) -> None:
    strategy = str(ROOT / "examples" / "momentum.py")
    data = str(bars["multi"])
    home = tmp_path / "home"
    comma = _cli("run", strategy, "--data", data, "--out", str(tmp_path / "a"), "-a", "127.0.0.1:1,127.0.0.1:2",
                 "-i", "0", home=home)
    assert comma.returncode == 2 and "expected host:port;host:port" in comma.stderr, comma.stderr
    assert not (tmp_path / "a").exists()
    late = _cli("run", strategy, "--data", data, "--out", str(tmp_path / "b"), "--start", "2999-01-01",
                "-r", str(tmp_path / "rb"), home=home)
    assert late.returncode == 1 and "E503" in late.stdout + late.stderr and "Traceback" not in late.stderr, late
    done = _cli("run", strategy, "--data", data, "--out", str(tmp_path / "c"), "-r", str(tmp_path / "rc"), "-q",
                home=home)
    assert done.returncode == 0, done.stderr
    # the same recovery directory for another run (other bars) is refused, not resumed into nothing
    other = hive(_bars(120, ("AAA", "BBB"), 8), tmp_path / "other")
    reuse = _cli("run", strategy, "--data", str(other), "--out", str(tmp_path / "d"), "-r", str(tmp_path / "rc"),
                 home=home)
    assert reuse.returncode == 1 and "snapshots of another run" in reuse.stderr, reuse.stderr
    # an in-memory run into a cluster run's directory is refused; read_outputs refuses the other layout
    mixed = _cli("run", strategy, "--data", data, "--out", str(tmp_path / "c"), "--no-store", home=home)
    assert mixed.returncode == 1 and "cluster run's outputs" in mixed.stderr, mixed.stderr
    plain = _cli("run", strategy, "--data", data, "--out", str(tmp_path / "e"), "--no-store", home=home)
    assert plain.returncode == 0, plain.stderr
    with pytest.raises(RunFailed, match="not the output directory of a cluster run"):
        read_outputs(tmp_path / "e")


def test_changed_data_is_not_mixed_with_outputs_of_the_old(tmp_path) -> None:
    data = hive(_bars(200, ("AAA", "BBB"), 8), tmp_path / "bars")
    program = qmtl.compile(ROOT / "examples" / "momentum.py")
    run_process(cluster_flow(program, str(data), tmp_path / "out", batch_size=50).flow)
    part = data / "symbol=AAA" / "part.parquet"
    pd.read_parquet(part).iloc[:100].to_parquet(part, index=False)
    with pytest.raises(RunDirError, match="data files"):
        cluster_flow(program, str(data), tmp_path / "out", batch_size=50)


def test_an_unsorted_file_is_e502_on_the_cluster_path_as_in_memory(tmp_path) -> None:
    data = tmp_path / "bars.parquet"
    _bars(200, ("AAA", "BBB"), 8).iloc[::-1].to_parquet(data, index=False)
    program = qmtl.compile(ROOT / "examples" / "momentum.py")
    with pytest.raises(DataError, match="E502"):
        program.run(str(data))
    with pytest.raises(DataError, match="E502"):
        run_process(cluster_flow(program, str(data), tmp_path / "out").flow)
