"""Wiring: build the gateway + world service pair from a ``QmtlConfig`` and run it.

* ``build_services(config)`` → ``(gateway_app, world_app)``.  The world app is mounted behind the
  gateway's ``/worlds…`` proxy in-process, so one process and one URL serve both.
  dev: SQLite files under ``home``, the in-process bus, the SQL graph store.
  prod: PostgreSQL, Redis (bus and activation cache), Neo4j for the graph when configured.  A missing
  DSN or a server that does not answer stops start-up with a ``StartupError`` saying which.
* ``serve(config, host, port, workers)`` runs that pair under uvicorn (``qmtl serve``), in several
  processes on one port where their state is shared (PostgreSQL + Redis), else in one.
* ``EmbeddedServices`` starts the pair on a free loopback port in a background thread and yields its
  URL; ``Runner.submit`` uses it when no gateway is configured.
* ``python -m qmtl.services.app --port N --home DIR`` is ``serve`` as a plain process (the durability
  test kills it with SIGKILL).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import uvicorn
from fastapi import FastAPI

from qmtl.config import ConfigError, QmtlConfig, load_config, serving_workers, validate

from .bus import Bus, BusError, make_bus
from .gateway.app import create_app as create_gateway_app
from .gsg.neo4j_store import Neo4jGraphStore
from .gsg.sql import SqlGraphStore
from .gsg.store import GraphStore
from .storage.sql import Database, DatabaseError


class StartupError(Exception):
    """The services cannot start with this configuration; the message says what to fix."""


def build_services(config: QmtlConfig) -> tuple[FastAPI, FastAPI]:
    """Both apps for ``config``; ``close_services(gateway_app)`` releases their connections."""
    problems = validate(config, "all")
    if problems:
        raise StartupError(f"cannot start the {config.profile} profile:\n  - " + "\n  - ".join(problems))
    closers: list[Callable[[], None]] = []
    try:
        bus = _connect("control bus", lambda: make_bus(config))
        closers.append(bus.close)
        # serial: the world service numbers and checks before it writes, and other server processes
        # may share its database (``serve --workers``)
        world_db = _connect("world service database",
                            lambda: Database.connect(config.worldservice_database_dsn(), serial=True))
        closers.append(world_db.close)
        gateway_db = _connect("gateway database",
                              lambda: Database.connect(config.gateway_database_dsn(),
                                                       pool_size=config.gateway.database_pool_size))
        closers.append(gateway_db.close)
        gsg = _graph_store(config, gateway_db)
        closers.append(gsg.close)
        try:  # creating the apps migrates their schemas; a database too new for this qmtl stops here
            world_app = _world_app(config, world_db, bus)
            gateway_app = create_gateway_app(gateway_db, bus, gsg, world_app,
                                             max_body_bytes=config.gateway.max_body_bytes)
        except DatabaseError as exc:
            raise StartupError(f"cannot start: {exc}") from exc
    except BaseException:
        _close_all(closers)
        raise
    gateway_app.state.closers = closers
    return gateway_app, world_app


def close_services(gateway_app: FastAPI) -> None:
    _close_all(getattr(gateway_app.state, "closers", []))


def _close_all(closers: list[Callable[[], None]]) -> None:
    for close in reversed(closers):
        try:
            close()
        except Exception:  # closing is best effort: one stuck connection must not hide the others
            pass


def _connect(what: str, connect: Callable[[], Any]) -> Any:
    try:
        return connect()
    except (DatabaseError, BusError, OSError) as exc:
        raise StartupError(f"cannot start: the {what} is not usable: {exc}") from exc


def _graph_store(config: QmtlConfig, gateway_db: Database) -> GraphStore:
    g = config.gateway
    if not g.neo4j_uri:
        return SqlGraphStore(gateway_db)
    password = g.neo4j_password.get_secret_value() if g.neo4j_password is not None else None
    auth = (g.neo4j_user, password) if g.neo4j_user else None
    try:
        return Neo4jGraphStore(g.neo4j_uri, auth)
    except Exception as exc:  # the driver raises several unrelated types for "not there"
        raise StartupError(f"cannot start: Neo4j at {g.neo4j_uri} did not answer: {exc}") from exc


def _world_app(config: QmtlConfig, db: Database, bus: Bus) -> FastAPI:
    from .worldservice.app import create_app as create_world_app

    cache = None
    if config.worldservice.redis_dsn:
        from .worldservice.activation_cache import RedisActivationCache

        cache = _connect("activation cache (Redis)",
                         lambda: RedisActivationCache(config.worldservice.redis_dsn,
                                                      prefix=f"{config.redis_prefix}:activation"))
    return create_world_app(db, bus, activation_cache=cache)


# Cyclic-GC thresholds for a process that only serves (gen0 allocations, then gen1 and gen2 collection
# counts; CPython's defaults are 700, 10, 10).  A submission allocates tens of thousands of objects
# (its parsed document, models, rows) that reference counting frees; at the defaults the collector
# ran every few hundred of them and walked the in-flight requests each time: about a quarter of a
# submission's CPU under load (bench_gateway: 26 -> 20 ms per submission).
SERVER_GC_THRESHOLDS = (20_000, 20, 50)


def tune_gc_for_serving() -> None:
    """Collect less often in a serving process, and leave what start-up built (apps, schemas, modules)
    out of every later collection.  Only for processes that do nothing else (``serve``), never for a
    caller's process (``EmbeddedServices``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)


def serve(config: QmtlConfig, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None) -> None:
    """Run the gateway (world routes behind it) until interrupted, in ``serving_workers(config,
    workers)`` processes listening on one port (the kernel hands each new connection to one)."""
    from .logs import configure

    configure()
    try:
        count = serving_workers(config, workers)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    if count == 1:
        _serve_one(config, host=host, port=port)
        return
    # Once here, before any worker: schema migrations must not race each other, and a configuration
    # that cannot start says so once instead of once per worker.
    close_services(build_services(config)[0])
    # First bound alone (no SO_REUSEPORT), which fails while anything listens there — another qmtl
    # server too, whose workers would otherwise share the port and silently split the traffic; then
    # held (bound, never listening: no connection is queued on it) while the workers run.
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]
        reserved = _port_socket(host, port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        _supervise(config, (host, reserved.getsockname()[1]), count)
    finally:
        reserved.close()


def _port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other processes may bind too (``SO_REUSEPORT``): each worker
    listens on its own, and the kernel spreads new connections evenly over them by their addresses.
    (One socket accepted by every worker gave whichever worker was waiting in ``accept`` the next
    connection: with keep-alive clients the split was uneven, and the busier worker's clients waited.)"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _serve_one(config: QmtlConfig, **where: Any) -> None:
    """One server process: build the services, serve on ``host``/``port`` or on ``sockets``."""
    gateway_app, _ = build_services(config)
    tune_gc_for_serving()
    server = uvicorn.Server(uvicorn.Config(gateway_app, host=where.get("host", "127.0.0.1"),
                                           port=where.get("port", 8000), log_level="info",
                                           timeout_graceful_shutdown=3, access_log=config.gateway.access_log))
    try:
        server.run(sockets=where.get("sockets"))
    finally:
        close_services(gateway_app)


def _worker_main(config: QmtlConfig, address: tuple[str, int]) -> None:
    """A worker process (spawned, so it starts from a clean interpreter, not a copy of the parent's
    threads and connections).  It dies with its supervisor: a ``kill -9`` of the server stops every
    process that could still be answering, as it does for a single process."""
    from .logs import configure

    _die_with_parent()
    configure()
    _serve_one(config, sockets=[_port_socket(*address)])


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _supervise(config: QmtlConfig, address: tuple[str, int], count: int) -> None:
    """Run ``count`` workers until SIGINT/SIGTERM (passed on to them) or until one of them exits: a
    worker that died is a fault for whoever runs the server to see, not something to hide by
    quietly serving with fewer."""
    import logging
    import multiprocessing
    from multiprocessing.connection import wait

    log = logging.getLogger("qmtl.services")
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    ctx = multiprocessing.get_context("spawn")
    # Each worker counts its own requests; /metrics sums every worker's files (qmtl.services.metrics).
    metrics_dir = tempfile.mkdtemp(prefix="qmtl-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus_client as a worker imports it
    workers = [ctx.Process(target=_worker_main, args=(config, address), name=f"qmtl-worker-{i}", daemon=True)
               for i in range(count)]
    try:
        for proc in workers:
            proc.start()
        log.info("serving with %d worker processes: %s", count, ", ".join(str(p.pid) for p in workers))
        while not stopping.is_set():
            wait([p.sentinel for p in workers], timeout=0.5)
            dead = [p for p in workers if p.exitcode is not None]
            if dead and not stopping.is_set():
                raise StartupError("worker process " + ", ".join(f"{p.pid} (exit {p.exitcode})" for p in dead)
                                   + " stopped; the server stops with it")
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for proc in workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


class ServerThread:
    """One ASGI app under uvicorn on a free loopback port, in a daemon thread.

    uvicorn only installs signal handlers on the main thread, so running it here leaves the caller's
    Ctrl-C handling alone.  The socket is bound before the thread starts: no free-port race.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", start_timeout: float = 15.0) -> None:
        self.app = app
        self.host = host
        self.start_timeout = start_timeout
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning",
                                                     timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="qmtl-services", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise StartupError(f"the server on {self.host}:{port} did not start")
            time.sleep(0.02)
        self.url = f"http://{self.host}:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class EmbeddedServices:
    """The dev pair (SQLite under ``home``, in-process bus) for one ``with`` block; yields its URL."""

    def __init__(self, config: QmtlConfig | None = None, host: str = "127.0.0.1") -> None:
        self.config = config or QmtlConfig()
        self.host = host
        self.url = ""
        self.gateway_app: FastAPI | None = None
        self.world_app: FastAPI | None = None
        self._server: ServerThread | None = None

    def __enter__(self) -> str:
        self.gateway_app, self.world_app = build_services(self.config)
        self._server = ServerThread(self.gateway_app, self.host)
        try:
            self.url = self._server.start()
        except BaseException:
            close_services(self.gateway_app)
            raise
        return self.url

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.stop()
        if self.gateway_app is not None:
            close_services(self.gateway_app)
        self._server = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qmtl.services.app",
                                     description="Run the qmtl gateway with the world service behind it.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", help="qmtl.yml to read (default: $QMTL_CONFIG or ./qmtl.yml)")
    parser.add_argument("--home", help="directory for the embedded databases (overrides the config)")
    parser.add_argument("--workers", type=int, help="server processes (default: gateway.workers, else one "
                                                    "per core when the state can be shared, else 1)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.home:
            config = config.model_copy(update={"home": Path(args.home)})
        serve(config, args.host, args.port, args.workers)
    except (ConfigError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
