"""A node failing at run time (the user's data or code) reaches the user as one qmtl error naming the
node, the bar and the strategy line — not as a Bytewax/Rust panic printed before it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from qmtl.runtime.synthetic import synthetic_bars

SCRIPT = textwrap.dedent('''
    import sys
    import pandas as pd
    import qmtl
    from qmtl.runtime.sdk import Node, Strategy, StreamInput

    class Broken(Strategy):
        def setup(self):
            price = StreamInput(interval="1m", period=5, name="price")
            def fn(view):
                return pd.DataFrame({"x": view[price][60]["extra"].astype(int)})
            self.add_nodes([price, Node(input=price, compute_fn=fn, name="n")])

    if __name__ == "__main__":
        qmtl.compile(Broken).run(sys.argv[1])
''')


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    bars = synthetic_bars(300, symbols=("A", "B"), seed=3)
    extra_col = np.arange(len(bars), dtype=float)
    extra_col[200] = np.nan  # astype(int) of NaN: pandas raises, so the node fails at that bar
    bars["extra"] = extra_col
    data = tmp_path / "bars.parquet"
    bars.to_parquet(data)
    script = tmp_path / "broken.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "RUST_BACKTRACE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, str(script), str(data), *extra], capture_output=True, text=True,
                          env=env, timeout=300)


def test_bytewax_run_of_a_failing_node_exits_1_with_the_users_error(tmp_path):
    _run(tmp_path)
    call = f"qmtl.runner.cluster:flow({str(tmp_path / 'broken.py')!r}, {str(tmp_path / 'bars.parquet')!r}, " \
           f"{str(tmp_path / 'out')!r})"
    done = subprocess.run([sys.executable, "-m", "bytewax.run", call, "-w", "2"], capture_output=True, text=True,
                          env={**os.environ, "QMTL_HOME": str(tmp_path / "home")}, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "error: node 'n' failed at ts=" in done.stderr and "panicked" not in done.stderr, done.stderr[-3000:]
    from qmtl.runtime.row_sink import RunFailed, read_outputs
    import pytest
    with pytest.raises(RunFailed, match="failed on worker"):
        read_outputs(tmp_path / "out")


def test_a_failing_node_prints_no_rust_panic(tmp_path):
    done = _run(tmp_path)
    assert done.returncode != 0
    assert "panicked" not in done.stderr and "rust" not in done.stderr.lower(), done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("qmtl.runtime.results.NodeRuntimeError: node 'n' failed at ts=")
    assert "astype int, at " in last and "broken.py:11:" in last, last


def test_a_failing_node_in_a_two_process_cluster_reaches_the_user(tmp_path):
    """``qmtl run -a … -i N`` in two processes: both exit 1 and name the node's error (the one whose
    instrument failed, and the other from the worker reports); neither prints a panic."""
    _run(tmp_path)  # writes the data and the strategy
    import socket
    socks = [socket.socket() for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    addresses = ";".join(f"127.0.0.1:{s.getsockname()[1]}" for s in socks)
    for s in socks:
        s.close()
    env = {**os.environ, "RUST_BACKTRACE": "1", "QMTL_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, "-m", "qmtl.cli.main", "run", str(tmp_path / "broken.py"),
                               "--data", str(tmp_path / "bars.parquet"), "--out", str(tmp_path / "out"), "-q",
                               "-a", addresses, "-i", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for i in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [1, 1], results
    assert all("node 'n' failed at ts=" in err for _, err in results), results
    errors = "".join(err for _, err in results)
    assert "panicked" not in errors, errors[-3000:]
    assert "error: node 'n' failed at ts=" in errors and "broken.py:11:" in errors, errors
