"""The progress bar: the runtime reports every tick it runs (once, from the worker threads), the
terminal bar appears only after a second and never when stderr is not a terminal or with --quiet."""

from __future__ import annotations

import threading
import time

import qmtl
from qmtl.cli import progress as progress_module
from qmtl.cli.progress import TerminalProgress, progress_for
from qmtl.runtime.synthetic import synthetic_bars


class Counting:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: tuple[int, int] | None = None
        self.ticks = self.keys = self.finished = 0

    def start(self, ticks: int, keys: int) -> None:
        self.started = (ticks, keys)

    def advance(self, ticks: int, key_done: bool) -> None:
        with self.lock:
            self.ticks += ticks
            self.keys += int(key_done)

    def finish(self) -> None:
        self.finished += 1


def test_a_run_reports_every_tick_once_at_every_batch_size():
    program = qmtl.compile(__import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "momentum.py")
    bars = synthetic_bars(1000, symbols=("AAA", "BBB", "CCC"), seed=1)
    for batch_size, workers in ((None, 1), (7, 2)):
        seen = Counting()
        program.run(bars, batch_size=batch_size, workers=workers, progress=seen)
        assert seen.started == (3000, 3) and seen.ticks == 3000 and seen.keys == 3 and seen.finished == 1


def test_the_bar_waits_a_second_and_stays_off_when_not_seen(monkeypatch):
    assert progress_for(quiet=True) is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert progress_for(quiet=False) is None
    bar = TerminalProgress()
    bar.start(100, 1)
    bar.advance(10, False)
    assert bar._bar is None  # not yet a second
    monkeypatch.setattr(progress_module, "DELAY_S", 0.0)
    bar.advance(10, False)
    assert bar._bar is not None
    bar.finish()
    assert bar._bar is None
