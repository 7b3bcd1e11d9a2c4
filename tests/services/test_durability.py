"""An acknowledged submission survives ``kill -9`` of the gateway process.

The gateway runs as a real process (``python -m qmtl.services.app``) on SQLite under a temp home
(group commit: several submissions share one fsync'd COMMIT), and again on PostgreSQL (a pool of
connections committing side by side).  A
batch of distinct strategies is submitted by 50 concurrent clients; once some are acknowledged the process gets
SIGKILL mid-batch.  After a restart on the same home, every strategy that was answered 2xx is there,
with its DAG intact.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from qmtl.services.gateway.sample_dags import chain_dag
from tests.services.gateway_process import free_port, start_gateway, stop_gateway


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A gateway home: SQLite files under it, or a ``qmtl.yml`` pointing both services at PostgreSQL."""
    if request.param == "postgresql":
        dsn = request.getfixturevalue("pg_dsn")
        (tmp_path / "qmtl.yml").write_text(
            f"gateway:\n  database_dsn: '{dsn}'\nworldservice:\n  database_dsn: '{dsn}'\n")
    return tmp_path


CLIENTS = 50  # issue 8 section 5: the kill lands while 50 clients submit concurrently
SUBMISSIONS = 400
ENOUGH = 40


def test_acknowledged_submissions_survive_kill_9(home: Path) -> None:
    tmp_path = home
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_gateway(tmp_path, port)
    acked: dict[str, str] = {}  # strategy_id -> checksum
    lock = threading.Lock()
    enough = threading.Event()
    try:
        assert httpx.post(f"{url}/worlds", json={"id": "durable"}).status_code == 201

        def submit(i: int) -> None:
            dag = chain_dag(f"s{i}", 40, seed=i)
            try:
                resp = httpx.post(f"{url}/strategies", json={"dag": dag, "world_ids": ["durable"]},
                                  timeout=30)
            except httpx.HTTPError:
                return  # the process died before answering: not acknowledged, no promise made
            if resp.status_code in (200, 201):
                with lock:
                    acked[resp.json()["strategy_id"]] = dag["checksum"]
                    if len(acked) >= ENOUGH:
                        enough.set()

        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(submit, i) for i in range(SUBMISSIONS)]
            assert enough.wait(60), "no submissions were acknowledged"
            proc.send_signal(signal.SIGKILL)  # mid-batch: some requests are still in flight
            proc.wait(10)
            for f in futures:
                f.result()
        with lock:
            snapshot = dict(acked)
        assert ENOUGH <= len(snapshot) < SUBMISSIONS, f"the kill did not land mid-batch ({len(snapshot)} acked)"

        proc = start_gateway(tmp_path, port)
        for sid, checksum in snapshot.items():
            resp = httpx.get(f"{url}/strategies/{sid}", timeout=10)
            assert resp.status_code == 200, f"acknowledged strategy {sid} lost after kill -9"
            body = resp.json()
            assert body["checksum"] == checksum and body["world_ids"] == ["durable"]
            assert len(body["dag"]["nodes"]) == 40
        # and the graph store agrees: a resubmission finds every node already there
        again = httpx.post(f"{url}/strategies", json={"dag": chain_dag("s0", 40, seed=0),
                                                      "world_ids": ["durable"]}, timeout=30).json()
        if again["strategy_id"] in snapshot:
            assert again["new"] == []
        if (home / "qmtl.yml").exists():  # the PostgreSQL run really ran on PostgreSQL
            assert not (home / "gateway.db").exists()
    finally:
        stop_gateway(proc)
