"""Load benchmark: N concurrent clients submitting distinct 200-node strategies to the gateway.

The real gateway + world service run under uvicorn on a loopback port (by default in this process,
one server thread, sharing the GIL with the client threads; ``--server process`` runs it in a process
of its own, as deployed), backed by SQLite (temp dir, in-process bus) or PostgreSQL + Redis (a throw-away schema on
127.0.0.1:5432).  Request bodies are encoded before the clock starts, so the numbers are the
service's: verify every NodeID, diff against the GSG, persist, answer.

    .venv/bin/python benchmarks/bench_gateway.py --clients 8 --submissions 160 --nodes 200
    .venv/bin/python benchmarks/bench_gateway.py --backend sqlite --out benchmarks/results/gateway.md
    .venv/bin/python benchmarks/bench_gateway.py --server both   # also with the server in its own process

Bounded: ``--submissions`` total per backend and ``--max-seconds`` wall time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import machine  # noqa: E402  (benchmarks/ is the script's folder)

from qmtl.config import DEFAULT_GATEWAY_POOL_SIZE  # noqa: E402
from qmtl.services.app import ServerThread, tune_gc_for_serving  # noqa: E402
from qmtl.services.bus import Bus, InProcessBus, RedisStreamBus  # noqa: E402
from qmtl.services.gateway.app import create_app as create_gateway  # noqa: E402
from qmtl.services.gateway.sample_dags import chain_dag  # noqa: E402
from qmtl.services.gsg import SqlGraphStore  # noqa: E402
from qmtl.services.storage.sql import Database  # noqa: E402
from qmtl.services.worldservice.app import create_app as create_world  # noqa: E402

PG = os.environ.get("QMTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("QMTL_TEST_REDIS", "redis://127.0.0.1:6379/0")


@contextmanager
def sqlite_backend() -> Iterator[tuple[Database, Database, Bus]]:
    with tempfile.TemporaryDirectory() as tmp:
        gw = Database.connect(f"sqlite:///{tmp}/gateway.db")
        ws = Database.connect(f"sqlite:///{tmp}/worldservice.db")
        yield gw, ws, InProcessBus()
        gw.close()
        ws.close()


@contextmanager
def throwaway_postgres(schemas: list[str], redis_prefix: str) -> Iterator[list[str]]:
    """DSNs of fresh PostgreSQL schemas; at exit the schemas and the Redis keys under the prefix go."""
    admin = Database.connect(PG)
    for schema in schemas:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield [f"{PG}?options=-csearch_path%3D{schema}" for schema in schemas]
    finally:
        for schema in schemas:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
        import redis

        r = redis.Redis.from_url(REDIS)
        keys = list(r.scan_iter(f"{redis_prefix}:*"))
        if keys:
            r.delete(*keys)
        r.close()


@contextmanager
def postgres_backend() -> Iterator[tuple[Database, Database, Bus]]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with throwaway_postgres([schema], f"qmtl:bench:{schema}") as (dsn,):
        bus = RedisStreamBus(REDIS, prefix=f"qmtl:bench:{schema}")
        # as ``build_services`` wires them: a pool for the gateway, a serial connection for the world service
        gw, ws = Database.connect(dsn, pool_size=DEFAULT_GATEWAY_POOL_SIZE), Database.connect(dsn, serial=True)
        try:
            yield gw, ws, bus
        finally:
            gw.close()
            ws.close()
            bus.close()


def build_app(backend: str, stack: ExitStack) -> Any:
    """The gateway (world service behind it) on ``backend``, wired as ``build_services`` wires it."""
    gw, ws, bus = stack.enter_context(sqlite_backend() if backend == "sqlite" else postgres_backend())
    return create_gateway(gw, bus, SqlGraphStore(gw), create_world(ws, bus))


@contextmanager
def serving_in_thread(backend: str) -> Iterator[tuple[str, int]]:
    """Server and clients in this process: they share one GIL (the original harness)."""
    with ExitStack() as stack:
        yield stack.enter_context(ServerThread(build_app(backend, stack))), os.getpid()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``; NaN elsewhere).  Other work on
    a shared machine moves wall-clock numbers, much less the CPU a submission costs the server."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``): ``serve --workers`` runs in several processes."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [p for child in children for p in process_tree(int(child))]


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (Linux ``/proc/stat``): how
    much of the machine the run had, next to how much of it the server and the clients used."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL server process so far: its backends do part of each submission's work
    on the same cores (other sessions' queries are in it too, so it is an upper bound)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(entry.name))
        except OSError:  # it exited meanwhile
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


@contextmanager
def serve_config(backend: str) -> Iterator[Path]:
    """A home with the ``qmtl.yml`` a user would write: SQLite files under it (dev defaults), or
    PostgreSQL (a throw-away schema per service) and Redis (a throw-away key prefix)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if backend == "sqlite":
            yield home
            return
        tag = uuid.uuid4().hex[:8]
        with throwaway_postgres([f"bench_gw_{tag}", f"bench_ws_{tag}"], f"qmtl-bench-{tag}") as dsn:
            (home / "qmtl.yml").write_text(
                f"profile: prod\nredis_prefix: 'qmtl-bench-{tag}'\n"
                f"gateway:\n  database_dsn: '{dsn[0]}'\n  redis_dsn: '{REDIS}'\n"
                f"worldservice:\n  database_dsn: '{dsn[1]}'\n  redis_dsn: '{REDIS}'\n")
            yield home


def serving_with_workers(workers: int) -> Any:
    """``python -m qmtl.services.app --workers N``: the server exactly as a user starts it."""

    @contextmanager
    def serving(backend: str) -> Iterator[tuple[str, int]]:
        with serve_config(backend) as home, socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
            env.pop("QMTL_CONFIG", None)
            proc = subprocess.Popen([sys.executable, "-m", "qmtl.services.app", "--port", str(port),
                                     "--home", str(home), "--workers", str(workers)], cwd=home, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            url = f"http://127.0.0.1:{port}"
            started = threading.Semaphore(0)
            log: list[bytes] = []

            def read_log() -> None:  # drains stderr; uvicorn says so once per worker that is serving
                for line in proc.stderr:
                    log.append(line)
                    if b"Application startup complete" in line:
                        started.release()

            threading.Thread(target=read_log, daemon=True).start()
            try:
                for _ in range(workers):
                    if not started.acquire(timeout=60 if proc.poll() is None else 0):
                        raise RuntimeError(f"the {backend} gateway's {workers} workers did not all start:\n"
                                           + b"".join(log[-20:]).decode(errors="replace"))
                _wait_healthy(url, proc.poll, backend)
                yield url, proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    return serving


def _wait_healthy(url: str, exited: Any, backend: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if exited() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {backend} gateway did not start") from None
            time.sleep(0.1)


def _serve_forever(backend: str, port: int) -> None:
    """Child process body: serve until SIGTERM, then drop the backend (temp dir, PG schema)."""
    with ExitStack() as stack:
        config = uvicorn.Config(build_app(backend, stack), host="127.0.0.1", port=port,
                                log_level="warning", access_log=False)
        tune_gc_for_serving()  # as ``serve`` does
        uvicorn.Server(config).run()


@contextmanager
def serving_in_process(backend: str) -> Iterator[tuple[str, int]]:
    """Server in its own process, as deployed: the clients' CPU does not compete for its GIL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = multiprocessing.get_context("spawn").Process(target=_serve_forever, args=(backend, port))
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, lambda: None if proc.is_alive() else proc.exitcode, backend)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _thread_clients(https: list[httpx.Client], bodies: list[bytes], max_seconds: float,
                    results: list[tuple[int, float]]) -> None:
    """A thread per client, each a blocking ``httpx.Client`` posting one body after another."""
    next_body = iter(range(len(bodies)))
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client(http: httpx.Client) -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(next_body, None)
            if i is None:
                return
            t0 = time.perf_counter()
            resp = http.post("/strategies", content=bodies[i])
            with lock:
                results.append((resp.status_code, (time.perf_counter() - t0) * 1000))

    with ThreadPoolExecutor(len(https)) as pool:
        for f in [pool.submit(client, http) for http in https]:
            f.result()


async def _async_clients(http: httpx.AsyncClient, clients: int, bodies: list[bytes], max_seconds: float,
                         results: list[tuple[int, float]]) -> None:
    """``clients`` closed-loop clients as coroutines on one event loop and connection pool: the same
    load as the threads, at a fraction of their CPU (50 threads contend for one GIL on the cores the
    server needs)."""
    next_body = iter(range(len(bodies)))
    deadline = time.monotonic() + max_seconds
    async with http:
        async def client() -> None:
            while time.monotonic() < deadline:
                i = next(next_body, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                resp = await http.post("/strategies", content=bodies[i])
                results.append((resp.status_code, (time.perf_counter() - t0) * 1000))

        await asyncio.gather(*(client() for _ in range(clients)))


def run(backend: str, clients: int, submissions: int, nodes: int, max_seconds: float,
        server: str = "thread", client_mode: str = "threads", workers: int = 1) -> dict:
    bodies = [json.dumps({"dag": chain_dag(f"bench{i}", nodes, seed=i + 1), "world_ids": ["bench"]}).encode()
              for i in range(submissions)]
    serving = {"thread": serving_in_thread, "process": serving_in_process,
               "serve": serving_with_workers(workers)}[server]
    with serving(backend) as (url, server_pid), ExitStack() as stack:
        httpx.post(f"{url}/worlds", json={"id": "bench"}).raise_for_status()
        results: list[tuple[int, float]] = []  # (status, ms) per request
        # Clients are built before the clock starts: each one loads a TLS context (~0.1 s of CPU).
        headers = {"content-type": "application/json"}
        if client_mode == "threads":
            https = [stack.enter_context(httpx.Client(base_url=url, timeout=60, headers=headers))
                     for _ in range(clients)]
        else:
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            ahttp = httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers)
        server_cpu = tree_cpu_seconds(server_pid)
        client_cpu = time.process_time()
        machine = machine_cpu_seconds()
        database_cpu = postgres_cpu_seconds()
        started = time.perf_counter()
        if client_mode == "threads":
            _thread_clients(https, bodies, max_seconds, results)
        else:
            asyncio.run(_async_clients(ahttp, clients, bodies, max_seconds, results))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = tree_cpu_seconds(server_pid) - server_cpu
        busy, total = (after - before for after, before in zip(machine_cpu_seconds(), machine))
        database_cpu = postgres_cpu_seconds() - database_cpu
    latencies = [ms for status, ms in results if status == 201]
    failures = len(results) - len(latencies)
    latencies.sort()
    load = os.getloadavg()[0]
    return {"backend": backend, "server": server, "client_mode": client_mode, "clients": clients, "nodes": nodes,
            "workers": workers, "load": load,
            # share of all cores busy during the run, and the share the server and clients used
            "machine_busy": busy / total if total else float("nan"),
            "ours": (server_cpu + client_cpu) / total if total else float("nan"),
            # the clients' own CPU (this process), on the same cores as the server
            "client_cpu_ms": client_cpu * 1000 / max(1, len(results)),
            "database_cpu_ms": database_cpu * 1000 / max(1, len(results)) if backend == "postgresql" else 0.0,
            "ok": len(latencies), "failed": failures, "seconds": elapsed,
            "per_s": len(latencies) / elapsed, "p50": _pct(latencies, 50), "p99": _pct(latencies, 99),
            "mean": statistics.fmean(latencies) if latencies else float("nan"),
            # in thread mode the clients' CPU is in it too
            "server_cpu_ms": server_cpu * 1000 / max(1, len(latencies) + failures)}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = ["# Gateway load benchmark", "",
             f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.", "",
             f"`benchmarks/bench_gateway.py --clients {args.clients} --submissions {args.submissions} "
             f"--nodes {args.nodes}`: each submission is a distinct {args.nodes}-node strategy sharing "
             "only its 2-node source sub-DAG; the gateway recomputes every NodeID, diffs against the "
             "GSG, persists (fsync'd) and answers 201.", "",
             "| backend | server | workers | client mode | clients | nodes/strategy | ok | failed | submissions/s "
             "| p50 ms | p99 ms | mean ms | server CPU ms/submission | client CPU ms/submission "
             "| PostgreSQL CPU ms/submission | load avg | cores busy | of which server + clients |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['server']} | {r['workers']} | {r['client_mode']} | {r['clients']} | "
                     f"{r['nodes']} | {r['ok']} | {r['failed']} | "
                     f"{r['per_s']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['mean']:.1f} | "
                     f"{r['server_cpu_ms']:.1f} | {r['client_cpu_ms']:.1f} | {r['database_cpu_ms']:.1f} | "
                     f"{r['load']:.1f} | "
                     f"{r['machine_busy']:.0%} | {r['ours']:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--submissions", type=int, default=160)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--server", choices=["thread", "process", "both", "serve"], default="thread",
                        help="run the server in a thread of this process (shares the clients' GIL), "
                             "in a process of its own, or as `python -m qmtl.services.app --workers N` "
                             "with a qmtl.yml (serve: PostgreSQL + Redis, or SQLite dev defaults)")
    parser.add_argument("--workers", default="1",
                        help="with --server serve: comma-separated worker counts, run in turn each round")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole set (interleaved rounds)")
    parser.add_argument("--client-mode", choices=["threads", "async"], default="threads",
                        help="each client a thread with a blocking client (default), or all clients "
                             "coroutines on one event loop (far less client CPU on a small machine)")
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    servers = ["thread", "process"] if args.server == "both" else [args.server]
    counts = [int(w) for w in args.workers.split(",")] if args.server == "serve" else [1]
    results = []
    for _ in range(args.rounds):
        # several workers need state shared between processes (PostgreSQL + Redis): SQLite runs one
        for backend, server, workers in [(b, s, w) for s in servers for b in backends for w in counts
                                         if w == 1 or b != "sqlite"]:
            r = run(backend, args.clients, args.submissions, args.nodes, args.max_seconds, server,
                    args.client_mode, workers)
            print(f"{backend} ({server}, {workers} worker(s), {args.client_mode} clients): {r['ok']} ok, "
                  f"{r['failed']} failed, {r['per_s']:.1f}/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
                  f"server CPU {r['server_cpu_ms']:.1f} ms/submission, client CPU {r['client_cpu_ms']:.1f} "
                  f"ms/submission, PostgreSQL CPU {r['database_cpu_ms']:.1f} ms/submission, "
                  f"load {r['load']:.1f}, cores busy {r['machine_busy']:.0%} (server + clients "
                  f"{r['ours']:.0%})", flush=True)
            results.append(r)
    text = report(results, args)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
