"""Which clock a run reads time from (docs/design.md "Clocks of a run"), and the rules that keep the
two apart.

Backtest and dryrun replay recorded bars on a *virtual* clock: time is the bars' own timestamps and a
run has a mandatory ``as_of`` (its data's last bar), so the same data gives the same run.  Live runs
on the *wall* clock: time is when bars arrive.  A source declares its clock (``StreamInput(clock=
"wall")``; the default is virtual).  One strategy reading both could never be replayed (the wall
clock's bars do not exist as of any virtual instant) nor traded (virtual time never reaches now), so:

* E320 — a module whose sources mix the two clocks (compile, lint and the gateway's verifier);
* E321 — a backtest (``Runner.submit``) of a module with a wall-clock source, or without an as_of.

(Not the bar clocks of docs/design.md "Clocks and joins": those are intervals, ``qmtl.ir.clocks``.)
"""

from __future__ import annotations

from .diagnostics import Diagnostic
from .module import Module, Op

VIRTUAL = "virtual"
WALL = "wall"


def source_clock(op: Op) -> str:
    """The clock a source op runs on (a tag query reads recorded values: virtual)."""
    return str(op.attr("clock") or VIRTUAL) if op.name == "stream_input" else VIRTUAL


def _sources(module: Module) -> list[Op]:
    return [op for op in module.ops if op.name in ("stream_input", "tag_query")]


def mixed_clock_findings(module: Module) -> list[Diagnostic]:
    """E320 at the first wall-clock source when virtual-clock sources are read too."""
    sources = _sources(module)
    wall = [op for op in sources if source_clock(op) == WALL]
    virtual = [op for op in sources if source_clock(op) == VIRTUAL]
    if not wall or not virtual:
        return []
    return [Diagnostic("E320", f"source %{wall[0].result} runs on the wall clock (live) but "
                       f"{', '.join('%' + op.result for op in virtual)} run on the virtual clock "
                       "(backtest/dryrun): a strategy reads one clock", wall[0].loc)]


def backtest_clock_findings(module: Module) -> list[Diagnostic]:
    """E321 at each wall-clock source: a backtest replays recorded bars on the virtual clock."""
    return [Diagnostic("E321", f"source %{op.result} runs on the wall clock (live): a backtest replays "
                       "recorded bars on a virtual clock (drop clock=\"wall\" to backtest it)", op.loc)
            for op in _sources(module) if source_clock(op) == WALL]


def missing_as_of(as_of: str | None) -> list[Diagnostic]:
    """E321 when a backtest's data gives no as_of (its last bar): the virtual clock needs one."""
    if as_of:
        return []
    return [Diagnostic("E321", "a backtest runs on a virtual clock and needs an as_of (the data's last "
                       "bar): the data has no bars")]
