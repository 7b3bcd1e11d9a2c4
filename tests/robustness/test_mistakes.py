"""User mistakes end in an error with a code that names the user's file and the line to fix — at
compile time where it can be known then, at bind time for data, never as a raw library traceback."""

from __future__ import annotations

import numpy as np
import pytest

import qmtl
from qmtl.ir.diagnostics import CompileError
from qmtl.runtime.data import DataError
from qmtl.runtime.results import NodeRuntimeError

from .conftest import strategy_path

COMPILE_MISTAKES = {
    "m02_wrong_interval": ("E304", "runs at interval 60s, not 3600s"),
    "m03_undeclared_input": ("E304", "'other', which is not in its input="),
    "m04_period_too_short": ("E109", "needs 50 bars"),
    "m05_wrong_signature": ("E304", "must take exactly one argument"),
    "m06_input_none": ("E304", "needs input="),
    "m07_non_numeric_period": ("E304", "period='twenty'"),
    "m08_returns_none": ("E304", "never returns a value"),
    "m09_divide_by_string": ("E106", "operator / between a series and '100'"),
    "m10_bad_interval_unit": ("E304", "interval='90x'"),
    "m11_syntax_error": ("E301", "syntax error"),
    "m12_setup_raises": ("E302", "NameError: name 'pricee'"),
    "m13_expr_lookahead": ("E310", "pct_change(-3)"),
    "m14_no_strategy": ("E303", "no Strategy subclass"),
    "s05_lookahead": ("E310", "shift(-1) reads 1 bar(s) after the current one"),
}


def mistake_line(stem: str) -> int:
    """The line marked ``# MISTAKE-LINE`` in the strategy file: where the error must point."""
    lines = strategy_path(stem).read_text().splitlines()
    (line,) = [i for i, text in enumerate(lines, start=1) if "MISTAKE-LINE" in text]
    return line


@pytest.mark.parametrize("stem", sorted(COMPILE_MISTAKES))
def test_mistake_is_a_compile_error_at_the_users_line(stem) -> None:
    code, words = COMPILE_MISTAKES[stem]
    with pytest.raises(CompileError) as caught:
        qmtl.compile(strategy_path(stem))
    (diag,) = caught.value.diagnostics
    assert diag.code == code and words in diag.message, diag.format()
    assert diag.loc.file.endswith(f"{stem}.py") and diag.loc.line == mistake_line(stem), diag.format()
    assert f"{stem}.py:{mistake_line(stem)}" in str(caught.value)


@pytest.fixture(scope="module")
def wrong_column():
    return qmtl.compile(strategy_path("m01_wrong_column"))


@pytest.mark.parametrize("runner", ["run_reference", "run"])
def test_misspelt_bar_field_fails_at_bind_time_naming_the_line(wrong_column, datasets, runner) -> None:
    with pytest.raises(DataError) as caught:
        getattr(wrong_column, runner)(datasets["single"])
    (diag,) = caught.value.diagnostics
    assert diag.code == "E506" and "'clsoe'" in diag.message and "close" in diag.message
    assert diag.loc.file.endswith("m01_wrong_column.py") and diag.loc.line == mistake_line("m01_wrong_column")


@pytest.mark.parametrize("runner", ["run_reference", "run"])
def test_data_missing_a_field_the_strategy_reads(compiled, datasets, runner) -> None:
    data = datasets["single"].drop(columns=["close"])
    with pytest.raises(DataError) as caught:
        getattr(compiled("s09_pct_diff"), runner)(data)
    (diag,) = caught.value.diagnostics
    assert diag.code == "E506" and "'close'" in diag.message
    assert diag.loc.file.endswith("s09_pct_diff.py") and diag.loc.line == 12


@pytest.mark.parametrize("runner", ["run_reference", "run"])
@pytest.mark.parametrize("damage, code, words", [
    (lambda d: d.assign(close=np.where(d.index == 5, np.nan, d["close"])), "E503", "NaN/null"),
    (lambda d: d.iloc[::-1].reset_index(drop=True), "E502", "unsorted timestamp"),
    (lambda d: d.iloc[[0, 0] + list(range(1, len(d)))].reset_index(drop=True), "E502", "duplicate timestamp"),
])
def test_bad_data_is_a_data_error(compiled, datasets, runner, damage, code, words) -> None:
    with pytest.raises(DataError) as caught:
        getattr(compiled("s09_pct_diff"), runner)(damage(datasets["single"]))
    assert caught.value.code == code and words in str(caught.value)


@pytest.mark.parametrize("runner", ["run_reference", "run"])
def test_user_code_raising_at_run_time_names_node_tick_and_line(datasets, runner) -> None:
    program = qmtl.compile(strategy_path("m15_runtime_raises"))
    with pytest.raises(NodeRuntimeError) as caught:
        getattr(program, runner)(datasets["single"])
    err = caught.value
    assert err.node == "bad" and err.ts is not None and "IndexError" in err.problem
    assert f"m15_runtime_raises.py:{mistake_line('m15_runtime_raises')}" in err.problem
