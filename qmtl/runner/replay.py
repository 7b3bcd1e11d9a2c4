"""``qmtl.replay([...], data)``: many strategies in one run, each NodeID computed once.

The strategies are compiled, merged into one module (``qmtl.compiler.union``), run once through the
generated flow — with the artifact store when one is given, so what an earlier run stored is read
too — and each strategy gets back its own outputs, under its own names, with a report of what it
computed, what it shared with a strategy before it in the list, and what came from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from qmtl.compiler.compiled import CompiledStrategy
from qmtl.compiler.union import Union, split_outputs, union
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.results import RunResult


@dataclass(frozen=True)
class StrategyReplay:
    """One strategy's part of a replay."""

    name: str
    result: RunResult                 # its outputs, under its own node names
    node_ids: tuple[str, ...]         # every NodeID of its module
    shared: dict[str, str]            # NodeID → the earlier strategy that brought it (computed once)
    from_store: dict[str, str] = field(default_factory=dict)  # node name → artifact read

    @property
    def computed(self) -> list[str]:
        """The NodeIDs this strategy brought to the run (not shared with an earlier strategy)."""
        return [n for n in self.node_ids if n not in self.shared]


@dataclass(frozen=True)
class ReplayResult:
    strategies: dict[str, StrategyReplay]
    union: Union
    sharing: Any = None  # the union run's ``SharingReport`` (None without a store)

    def __getitem__(self, name: str) -> RunResult:
        return self.strategies[name].result

    @property
    def total_nodes(self) -> int:
        """NodeIDs over all strategies counted separately: what running them one by one computes."""
        return sum(len(s.node_ids) for s in self.strategies.values())

    @property
    def unique_nodes(self) -> int:
        """NodeIDs this run computed (each once)."""
        return len(self.union.compiled.module.ops)


def replay(strategies: Sequence[Any], data: Any, *, store: ArtifactStore | None = None,
           batch_size: int | None = None, workers: int = 1) -> ReplayResult:
    """Run ``strategies`` (classes, files or ``CompiledStrategy``) over ``data`` in one flow."""
    from qmtl.compiler.pipeline import compile as compile_strategy

    compiled = [s if isinstance(s, CompiledStrategy) else compile_strategy(s) for s in strategies]
    if not compiled:
        raise ValueError("replay needs at least one strategy")
    merged = union(compiled)
    run = merged.compiled.run(data, batch_size=batch_size, workers=workers, store=store)
    outputs = split_outputs(merged, run.outputs)
    reused = run.sharing.reused if run.sharing is not None else {}
    out: dict[str, StrategyReplay] = {}
    for member in merged.members:
        mine = {own: reused[full] for full, own in member.outputs.items() if full in reused}
        out[member.name] = StrategyReplay(member.name, RunResult(outputs[member.name]), member.node_ids,
                                          member.shared, mine)
    return ReplayResult(out, merged, run.sharing)
