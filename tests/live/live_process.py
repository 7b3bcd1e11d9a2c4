"""A live process for the restart test: ``python -m tests.live.live_process STRATEGY HISTORY FEED WORLD``
runs the strategy live with an open gate until it is killed."""

from __future__ import annotations

import asyncio
import sys

import qmtl
from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.runner import LiveRunner
from tests.live.support import ANY_AGE


def main(strategy: str, history: str, feed: str, world: str) -> None:
    runner = LiveRunner(qmtl.compile(strategy), history, feed, world, StaticGate(GateState(True, "paper", "active")),
                        max_bar_age=ANY_AGE)
    asyncio.run(runner.run())


if __name__ == "__main__":
    main(*sys.argv[1:5])
