"""An acknowledged submission survives ``kill -9`` of the gateway process.

The gateway runs as a real process (``python -m qmtl.services.app``) on SQLite under a temp home
(group commit: several submissions share one fsync'd COMMIT), again on PostgreSQL (a pool of
connections committing side by side), and as two worker processes (``--workers 2``) on PostgreSQL +
Redis, where ``kill -9`` of the server takes its workers with it.  A
batch of distinct strategies is submitted by 50 concurrent clients; once some are acknowledged the process gets
SIGKILL mid-batch.  After a restart on the same home, every strategy that was answered 2xx is there,
with its DAG intact.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from qmtl.services.gateway.sample_dags import chain_dag
from tests.services.conftest import PG_BASE
from tests.services.gateway_process import REPO, free_port, start_gateway, stop_gateway
from tests.redis_support import delete_keys


def _alive_worker(pid: int) -> bool:
    """``pid`` is still a serving worker (it may exit between any two reads of ``/proc``)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive_worker(pid):
        assert time.monotonic() < deadline, f"worker {pid} outlived its killed supervisor"
        time.sleep(0.05)


def _worker_pids(supervisor: int) -> list[int]:
    """The serving processes ``serve --workers`` spawned under ``supervisor`` (Linux ``/proc``)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis, 2 workers"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A gateway home: SQLite files under it, or a ``qmtl.yml`` pointing both services at a schema of
    their own in PostgreSQL; the last case runs two server processes (``--workers 2``) on that
    database, with Redis as the bus they share."""
    if request.param == "sqlite":
        yield tmp_path
        return
    import psycopg

    request.getfixturevalue("pg_dsn")  # skips (or fails under QMTL_REQUIRE_SERVICES) without a server
    tag = uuid.uuid4().hex[:10]
    schema, prefix = f"durability_{tag}", f"durability-{tag}"
    with psycopg.connect(PG_BASE, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        dsn = f"{PG_BASE}?options=-csearch_path%3D{schema}"
        text = f"gateway:\n  database_dsn: '{dsn}'\nworldservice:\n  database_dsn: '{dsn}'\n"
        if "workers" in request.param:
            redis = request.getfixturevalue("redis_url")
            text += f"  redis_dsn: '{redis}'\nredis_prefix: '{prefix}'\n"
            (tmp_path / "workers").write_text("2")
        (tmp_path / "qmtl.yml").write_text(text)
        yield tmp_path
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        if "workers" in request.param:
            delete_keys(request.getfixturevalue("redis_url"), prefix)


CLIENTS = 50  # issue 8 section 5: the kill lands while 50 clients submit concurrently
SUBMISSIONS = 400
ENOUGH = 40


def test_acknowledged_submissions_survive_kill_9(home: Path) -> None:
    tmp_path = home
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workers = int((home / "workers").read_text()) if (home / "workers").exists() else 1
    proc = start_gateway(tmp_path, port, workers)
    acked: dict[str, str] = {}  # strategy_id -> checksum
    lock = threading.Lock()
    enough = threading.Event()
    try:
        created = httpx.post(f"{url}/worlds", json={"id": "durable"})
        assert created.status_code == 201, created.text

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

        children = _worker_pids(proc.pid) if workers > 1 else []
        if children:
            assert len(children) == workers, f"expected {workers} worker processes, found {children}"
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(submit, i) for i in range(SUBMISSIONS)]
            assert enough.wait(60), "no submissions were acknowledged"
            proc.send_signal(signal.SIGKILL)  # mid-batch: some requests are still in flight
            proc.wait(10)
            for pid in children:  # the workers die with their supervisor, as one process would
                _wait_gone(pid)
            for f in futures:
                f.result()
        with lock:
            snapshot = dict(acked)
        assert ENOUGH <= len(snapshot) < SUBMISSIONS, f"the kill did not land mid-batch ({len(snapshot)} acked)"

        proc = start_gateway(tmp_path, port, workers)
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


def _requests_served(pid: int, scratch: Path) -> float:
    """HTTP requests worker ``pid`` has counted, from its own prometheus_client multi-process file
    (``serve`` points its workers at the directory through the environment), leaving out ``/health``
    (start-up's readiness probes may still be counting when the test starts)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    counters = Path(environ["PROMETHEUS_MULTIPROC_DIR"]) / f"counter_{pid}.db"
    if not counters.exists():  # the worker has counted nothing yet
        return 0.0
    mine = scratch / str(pid)
    mine.mkdir(exist_ok=True)
    shutil.copy(counters, mine)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(mine))
    return sum(s.value for m in registry.collect() if m.name == "qmtl_http_requests"
               for s in m.samples if s.name.endswith("_total") and s.labels.get("route") != "/health")


@pytest.mark.parametrize("home", ["postgresql+redis, 2 workers"], indirect=True)
def test_workers_share_the_port_and_a_second_server_is_refused(home: Path, tmp_path_factory) -> None:
    """New connections reach both workers (each listens on the port; the kernel spreads connections
    over them), and a second server started on the same port stops with the reason instead of
    joining the workers and silently taking part of the traffic."""
    port = free_port()
    tmp_path = tmp_path_factory.mktemp("served")
    proc = start_gateway(home, port, workers=2)
    try:
        workers = _worker_pids(proc.pid)
        before = {pid: _requests_served(pid, tmp_path) for pid in workers}
        for _ in range(200):  # a new connection each time
            with httpx.Client() as client:
                assert client.get(f"http://127.0.0.1:{port}/strategies/none").status_code == 404
        # a request is counted just after its response went out: wait a moment for the last ones
        deadline = time.monotonic() + 5
        while True:
            served = {pid: _requests_served(pid, tmp_path) - before[pid] for pid in workers}
            if sum(served.values()) >= 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # each worker answered at least a tenth (an even spread gives each about half)
        assert sum(served.values()) == 200 and min(served.values()) >= 20, served
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("QMTL_CONFIG", None)
        second = subprocess.run([sys.executable, "-m", "qmtl.services.app", "--port", str(port),
                                 "--home", str(home), "--workers", "2"], cwd=home, env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "Address already in use" in second.stderr, second.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        stop_gateway(proc)
