"""``qmtl.replay([...], data)``: many strategies in one run, each NodeID computed once.

The strategies are compiled, merged into one module (``qmtl.compiler.union``), run once through the
generated flow — with the artifact store when one is given, so what an earlier run stored is read
too — and each strategy gets back its own outputs, under its own names, with a report of what it
computed, what it shared with a strategy before it in the list, and what came from the store.
"""

from __future__ import annotations

import contextlib
import tempfile
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
    strategies: dict[str, StrategyReplay]  # in the order given
    stages: tuple[Union, ...]              # the union modules run (two when some strategies query tags)

    def __getitem__(self, name: str) -> RunResult:
        return self.strategies[name].result

    @property
    def total_nodes(self) -> int:
        """NodeIDs over all strategies counted separately: what running them one by one computes."""
        return sum(len(s.node_ids) for s in self.strategies.values())

    @property
    def unique_nodes(self) -> int:
        """NodeIDs this replay ran (each once per union)."""
        return sum(len(u.compiled.module.ops) for u in self.stages)


def replay(strategies: Sequence[Any], data: Any, *, store: ArtifactStore | None = None,
           batch_size: int | None = None, workers: int = 1, progress: Any = None) -> ReplayResult:
    """Run ``strategies`` (classes, files or ``CompiledStrategy``) over ``data`` in one flow.

    Strategies with a tag query run in a second union after the others, through the store (a
    temporary one when none is given): their groups then hold the tagged values the first union
    computed on these bars, as they would after separate runs."""
    from qmtl.compiler.pipeline import compile as compile_strategy

    compiled = [s if isinstance(s, CompiledStrategy) else compile_strategy(s) for s in strategies]
    if not compiled:
        raise ValueError("replay needs at least one strategy")
    querying = [any(op.name == "tag_query" for op in c.module.ops) for c in compiled]
    if not any(querying) or all(querying):
        return _replay_union(compiled, data, store, batch_size, workers, set(), progress)
    stages = ([c for c, q in zip(compiled, querying) if not q], [c for c, q in zip(compiled, querying) if q])
    with contextlib.ExitStack() as stack:
        if store is None:
            store = ArtifactStore(stack.enter_context(tempfile.TemporaryDirectory(prefix="qmtl-replay-")))
        names: set[str] = set()
        parts = [_replay_union(stage, data, store, batch_size, workers, names, progress) for stage in stages]
    # one result, strategies in the order given
    by_strategy = {id(m.compiled): part.strategies[m.name] for part in parts for u in part.stages
                   for m in u.members}
    return ReplayResult({by_strategy[id(c)].name: by_strategy[id(c)] for c in compiled},
                        tuple(u for part in parts for u in part.stages))


def _replay_union(compiled: list[CompiledStrategy], data: Any, store: ArtifactStore | None,
                  batch_size: int | None, workers: int, names: set[str], progress: Any = None) -> ReplayResult:
    merged = union(compiled, taken_names=names)
    run = merged.compiled.run(data, batch_size=batch_size, workers=workers, store=store, progress=progress)
    outputs = split_outputs(merged, run.outputs)
    reused = run.sharing.reused if run.sharing is not None else {}
    out: dict[str, StrategyReplay] = {}
    for member in merged.members:
        mine = {own: reused[full] for full, own in member.outputs.items() if full in reused}
        result = RunResult(outputs[member.name], origin=(member.compiled, data))  # performance(), report()
        out[member.name] = StrategyReplay(member.name, result, member.node_ids, member.shared, mine)
    return ReplayResult(out, (merged,))
