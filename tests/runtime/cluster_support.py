"""What the cluster tests share (tests/runtime/test_cluster.py, test_cluster_cap.py): data laid out as a
hive-partitioned tree, ``qmtl run`` started as an independent process (optionally inside a network
namespace), killing a run once it wrote some batches, two network namespaces as two hosts, and the
bit-for-bit comparison of outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
QMTL = [sys.executable, "-m", "qmtl.cli.main"]


def hive(df: pd.DataFrame, root: Path) -> Path:
    """One Parquet file per symbol, partitioned by directory (``symbol=X/part.parquet``)."""
    for symbol, rows in df.groupby("symbol"):
        folder = root / f"symbol={symbol}"
        folder.mkdir(parents=True)
        rows.drop(columns="symbol").to_parquet(folder / "part.parquet", index=False)
    return root


def assert_same(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert list(got) == list(expected)
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name], check_exact=True, obj=name)


def qmtl_run(strategy: Path, data: Path, out: Path, *extra: str, netns: str | None = None,
              home: Path) -> subprocess.Popen:
    cmd = [*QMTL, "run", str(strategy), "--data", str(data), "--out", str(out), "--quiet", *extra]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    env = {**os.environ, "QMTL_HOME": str(home)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            _out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err


def free_ports(n: int) -> list[int]:
    import socket
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def chunk_times(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("part-*.parquet")}


def kill_after_snapshots(proc: subprocess.Popen, out: Path, rows: int, timeout: float = 120) -> None:
    """kill -9 once ``rows`` batch files exist (snapshots are taken every 0.1 s meanwhile)."""
    deadline = time.monotonic() + timeout
    while len(chunk_times(out)) < rows:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run wrote too little to be killed midway"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair, 10.231.X.1 and 10.231.X.2 (root only)."""
    tag = uuid.uuid4().hex[:6]
    names = [f"qmtl-{tag}-{i}" for i in range(2)]
    links = [f"vq{tag}{i}" for i in range(2)]
    net = f"10.231.{int(tag, 16) % 250}"
    steps = [["ip", "netns", "add", names[0]], ["ip", "netns", "add", names[1]],
             ["ip", "link", "add", links[0], "type", "veth", "peer", "name", links[1]]]
    for i in range(2):
        steps += [["ip", "link", "set", links[i], "netns", names[i]],
                  ["ip", "-n", names[i], "addr", "add", f"{net}.{i + 1}/24", "dev", links[i]],
                  ["ip", "-n", names[i], "link", "set", links[i], "up"],
                  ["ip", "-n", names[i], "link", "set", "lo", "up"]]
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot create network namespaces here ({' '.join(step)}: {done.stderr.strip()})")
        yield [(names[i], f"{net}.{i + 1}") for i in range(2)]
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
