"""How a run reports progress: ``Progress`` receives the number of ticks to run, then each batch's
ticks as Bytewax workers finish them (from worker threads: implementations must be thread-safe).
The runtime only counts; drawing is the caller's (``qmtl.cli.progress``)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, ticks: int, keys: int) -> None: ...
    def advance(self, ticks: int, key_done: bool) -> None: ...
    def finish(self) -> None: ...
