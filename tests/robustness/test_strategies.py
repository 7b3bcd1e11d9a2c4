"""Every realistic strategy compiles as expected (traced, or opaque with a reason) and the generated
flow gives the reference interpreter's numbers at every batch size, on one and several symbols."""

from __future__ import annotations

import pytest

from qmtl.runtime.reference import full_history_python, per_tick_python
from qmtl.runtime.results import assert_results_equal

from .cases import CASES
from .conftest import STRATEGIES

BATCH_SIZES = (1, 7, 10_000)
RUNS = [(stem, data) for stem, case in CASES.items() for data in case.data]


def test_every_strategy_file_has_a_case() -> None:
    files = {p.stem for p in STRATEGIES.glob("s*.py")}
    mistakes = {"s05_lookahead"}  # a user mistake: tested in test_mistakes.py
    assert files - mistakes == set(CASES)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_compiles_to_the_expected_kinds(stem, compiled) -> None:
    case = CASES[stem]
    program = compiled(stem)
    kinds = {o.name: o.kind for o in program.module.outputs if o.kind != "source"}
    assert kinds == case.kinds
    notes = {d.message for d in program.diagnostics if d.code == "N202"}
    for name, kind in case.kinds.items():
        reason = program.module.output(name).reason
        if kind == "opaque":
            assert case.reasons[name] in reason, reason
            assert any(f"node {name!r}" in n for n in notes)
    assert not [d for d in program.diagnostics if d.severity == "error"]


@pytest.mark.parametrize("stem, data", RUNS)
def test_generated_flow_matches_the_reference(stem, data, compiled, datasets) -> None:
    case = CASES[stem]
    if case.run_skip:
        pytest.skip(case.run_skip)
    program = compiled(stem)
    expected = program.run_reference(datasets[data])
    assert all(len(frame) > 0 for frame in expected.outputs.values()), "a node never emitted"
    for batch_size in BATCH_SIZES:
        assert_results_equal(program.run(datasets[data], batch_size=batch_size), expected)


@pytest.mark.parametrize("stem", sorted(s for s, c in CASES.items() if "single" in c.data))
def test_reference_matches_each_compute_fn_on_the_full_history(stem, compiled, datasets) -> None:
    """The definition (docs/design.md): a traced node is its own compute function run by pandas on
    the full history; an opaque one is that function called per tick on its last P entries."""
    case = CASES[stem]
    if case.per_tick_skip:
        pytest.skip(case.per_tick_skip)
    program = compiled(stem)
    assert_results_equal(program.run_reference(datasets["single"]),
                         full_history_python(program, datasets["single"]))


def test_init_params_change_the_ids_of_the_nodes_that_use_them(datasets) -> None:
    import qmtl
    from qmtl.compiler.loader import load_strategy

    from .conftest import strategy_path

    cls = load_strategy(strategy_path("s18_closures_params"))
    default, tuned = qmtl.compile(cls()), qmtl.compile(cls(fast=2, slow=8))
    assert default.node_ids["cross"] != tuned.node_ids["cross"]
    assert default.node_ids["lb_ret"] == tuned.node_ids["lb_ret"]  # self.lookback did not change
    expected = tuned.run_reference(datasets["single"])
    assert_results_equal(expected, per_tick_python(tuned, datasets["single"]))
    assert_results_equal(tuned.run(datasets["single"], batch_size=7), expected)


@pytest.mark.parametrize("stem, data", RUNS)
def test_a_run_on_stored_artifacts_equals_a_run_from_scratch(stem, data, compiled, datasets, tmp_path) -> None:
    """docs/design.md "Shared execution": the second run reads every storable node value from the
    artifact store the first run filled, and its outputs are the same, bit for bit, at batch sizes
    1 and 10,000 (a strategy with tag-query nodes runs without the store, and says so by having no
    sharing report)."""
    import pandas as pd

    from qmtl.runtime.artifacts import ArtifactStore

    if CASES[stem].run_skip:
        pytest.skip(CASES[stem].run_skip)
    program = compiled(stem)
    scratch = program.run(datasets[data])
    store = ArtifactStore(tmp_path)
    first = program.run(datasets[data], store=store)
    if first.sharing is None:
        assert any(op.name == "tag_query" for op in program.module.ops)
        return
    for batch_size in (1, 10_000):
        again = program.run(datasets[data], store=store, batch_size=batch_size)
        assert set(again.sharing.reused) == set(first.sharing.written)
        assert not again.sharing.written
        for name in scratch.outputs:
            pd.testing.assert_frame_equal(again[name], scratch[name], check_exact=True, obj=f"{stem}.{name}")
