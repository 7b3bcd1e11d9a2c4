"""A progress bar for long replays on a terminal: ticks and instruments done, ticks/s.

Shown only when stderr is a terminal, not ``--quiet``, and once a run has lasted a second (short
runs print nothing); it goes away when the run ends.  Thread-safe: Bytewax workers advance it."""

from __future__ import annotations

import sys
import threading
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .output import err

DELAY_S = 1.0


class TerminalProgress:
    """A ``qmtl.runtime.progress.Progress`` drawing on stderr (see the module docstring)."""

    def __init__(self, label: str = "replay") -> None:
        self.label = label
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._task = None
        self._ticks = self._keys_done = self._keys = 0
        self._done = 0
        self._started = 0.0

    def start(self, ticks: int, keys: int) -> None:
        with self._lock:
            self._ticks, self._keys, self._done, self._keys_done = ticks, keys, 0, 0
            self._started = time.monotonic()

    def advance(self, ticks: int, key_done: bool) -> None:
        with self._lock:
            self._done += ticks
            self._keys_done += int(key_done)
            if self._bar is None and time.monotonic() - self._started >= DELAY_S:
                self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                     console=err, transient=True)
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=self._ticks, rate="")
            if self._bar is not None:
                rate = self._done / max(time.monotonic() - self._started, 1e-9)
                self._bar.update(self._task, completed=self._done, rate=f"{rate:,.0f} ticks/s · "
                                 f"{self._keys_done}/{self._keys} instruments")

    def finish(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


def progress_for(quiet: bool, label: str = "replay") -> TerminalProgress | None:
    """A bar when it can be seen (stderr is a terminal) and was not silenced."""
    return None if quiet or not sys.stderr.isatty() else TerminalProgress(label)
