"""The compiler verifies what it hands on, so `qmtl compile` and `qmtl lint --ssa` agree on errors."""

import textwrap

import pytest

import qmtl
from qmtl.lint import lint_path
from qmtl.ir.diagnostics import CompileError
from tests.submit_support import UNSTABLE_CLOSURE

MIXED_OP = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput

class Mixed(Strategy):
    def setup(self):
        a = StreamInput(tags=["A"], interval=60, period=5)
        b = StreamInput(tags=["A"], interval=300, period=5)
        n = Node(input=[a, b], period=5, name="spread",
                 compute_fn=lambda view: view[a][60]["close"] - view[b][300]["close"])
        self.add_nodes([a, b, n])
'''

def write(tmp_path, text):
    path = tmp_path / "strategy.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_an_op_mixing_clocks_compiles_and_lints_clean(tmp_path):
    """A 1m - 5m spread is legal (the 5m bar is read as of its close): compile and lint agree."""
    path = write(tmp_path, MIXED_OP)
    compiled = qmtl.compile(path)
    assert compiled.module.output("spread").kind == "traced"
    report = lint_path(path)
    assert not [d for d in report.diagnostics if d.severity == "error"]
    assert report.exit_code() == 0


def test_an_unstable_opaque_function_compiles_with_a_warning_but_fails_lint(tmp_path):
    path = write(tmp_path, UNSTABLE_CLOSURE)
    compiled = qmtl.compile(path)
    assert [d.code for d in compiled.warnings if d.code == "E111"] == ["E111"]
    assert lint_path(path).exit_code() == 1


def test_lint_reports_the_unstable_function_once_as_an_error(tmp_path):
    report = lint_path(write(tmp_path, UNSTABLE_CLOSURE))
    found = [d for d in report.diagnostics if d.code == "E111"]
    assert [d.severity for d in found] == ["error"]
