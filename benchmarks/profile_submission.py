"""Where one gateway submission's CPU goes: the stages of ``POST /strategies`` timed one by one.

Runs the gateway's own functions sequentially (no HTTP, no concurrency) on distinct 200-node
strategies, after ``--warm`` strategies are already recorded (so the graph's B-trees are not empty),
and prints the median CPU time of each stage per submission: validating the request model, verifying
the DAG (NodeIDs, structure, IR verifier), building the stored document, and recording it (the GSG
diff and upsert, the strategy row, the COMMIT); on PostgreSQL also the CPU of the server process that ran the statements.  ``--cprofile`` also prints the top functions.

    .venv/bin/python benchmarks/profile_submission.py --backend sqlite --submissions 200
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_gateway import PG, cpu_seconds, throwaway_postgres  # noqa: E402  (benchmarks/ is the script's folder)

from qmtl.services.gateway.app import parse_submission  # noqa: E402
from qmtl.services.gateway.sample_dags import chain_dag  # noqa: E402
from qmtl.services.gateway.submissions import SubmissionStore  # noqa: E402
from qmtl.services.gateway.verify import verify_submission  # noqa: E402
from qmtl.services.gsg import SqlGraphStore  # noqa: E402
from qmtl.services.storage.sql import Database  # noqa: E402


def _database(backend: str, stack: ExitStack) -> Database:
    if backend == "sqlite":
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        db = Database.connect(f"sqlite:///{tmp}/gateway.db")
    else:
        schema = f"prof_{uuid.uuid4().hex[:8]}"
        (dsn,) = stack.enter_context(throwaway_postgres([schema], f"qmtl:prof:{schema}"))
        db = Database.connect(dsn)
    stack.callback(db.close)
    return db


def profile(backend: str, submissions: int, warm: int, nodes: int, cprofile: bool) -> dict[str, float]:
    bodies = [json.dumps({"dag": chain_dag(f"prof{i}", nodes, seed=i + 1), "world_ids": ["w"]}).encode()
              for i in range(warm + submissions)]
    stages: dict[str, list[float]] = {"parse": [], "verify": [], "dump": [], "record": []}
    profiler = cProfile.Profile() if cprofile else None
    with ExitStack() as stack:
        db = _database(backend, stack)
        store = SubmissionStore(db, SqlGraphStore(db))
        # the one PostgreSQL backend serving this process's connection (a pool of one): its CPU alone,
        # not that of other sessions on the same server
        backend_pid = db.fetchone("SELECT pg_backend_pid() AS pid")["pid"] if backend == "postgresql" else 0
        database_cpu = 0.0
        for i, body in enumerate(bodies):
            if i == warm and backend_pid:
                database_cpu = cpu_seconds(backend_pid)
            measured = i >= warm
            if measured and profiler is not None:
                profiler.enable()
            t0 = time.process_time()
            req = parse_submission(body)
            t1 = time.process_time()
            dag = verify_submission(req)
            t2 = time.process_time()
            doc_json = req.dag.model_dump_json(by_alias=True)
            t3 = time.process_time()
            store.record(dag, doc_json, req.meta.model_dump(), {"w": "backtest"})
            t4 = time.process_time()
            if profiler is not None:
                profiler.disable()
            if measured:
                for name, took in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    stages[name].append(took * 1000)
        if backend_pid:
            database_cpu = cpu_seconds(backend_pid) - database_cpu
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    medians = {name: statistics.median(v) for name, v in stages.items()}
    medians["total"] = sum(medians.values())
    if backend == "postgresql":  # a mean: the backend's CPU is read once before and once after
        medians["PostgreSQL backend (mean)"] = database_cpu * 1000 / submissions
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--warm", type=int, default=200, help="strategies recorded before measuring")
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]:
        m = profile(backend, args.submissions, args.warm, args.nodes, args.cprofile)
        print(f"{backend}: CPU ms per submission (median) " + ", ".join(f"{k} {v:.2f}" for k, v in m.items())
              + (f"  [PostgreSQL at {PG}]" if backend != "sqlite" else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
