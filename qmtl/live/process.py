"""A long-running live process: the runner and, when asked, simulated brokers for its world's
domains, on one event loop, until SIGINT/SIGTERM (what ``qmtl run --live`` runs)."""

from __future__ import annotations

import asyncio
import signal
from typing import Sequence

from .broker import SimulatedBroker, serve
from .connection import connect
from .runner import LiveRunner


async def serve_live(runner: LiveRunner, broker_domains: Sequence[str] = (),
                     stop: asyncio.Event | None = None) -> None:
    """Run ``runner`` and a ``SimulatedBroker`` for each of ``broker_domains`` until ``stop`` is set
    or the process is told to stop; the first failure of any of them stops the others."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(runner.address.server, f"qmtl-broker-{runner.world}") if broker_domains else None
    try:
        jobs = [runner.run(stop)]
        if nc is not None:
            js = nc.jetstream()
            jobs += [serve(js, runner.world, d, SimulatedBroker(js), stop, runner.metrics) for d in broker_domains]
        tasks = [asyncio.create_task(j) for j in jobs]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        # Every job ends before the connection it uses is closed: a broker still fetching when its
        # connection closes under it dies with an error asyncio prints as a traceback at shutdown.
        await asyncio.wait(tasks)
        failed = [t for t in (*done, *tasks) if t.exception() is not None]
        if failed:
            raise failed[0].exception()  # the first failure; what it made the others do is noise
    finally:
        if nc is not None:
            await nc.close()
