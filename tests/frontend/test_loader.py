"""load_strategy: the right class, or an E30x error pointing into the user's file."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from qmtl.compiler.loader import load_strategy
from qmtl.ir.diagnostics import CompileError

HEADER = "from qmtl.runtime.sdk import Strategy, Node, StreamInput\n"


def write(tmp_path: Path, body: str, name: str = "strat.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def failure(path: Path, name: str | None = None):
    with pytest.raises(CompileError) as info:
        load_strategy(path, name)
    (diag,) = info.value.diagnostics
    return diag


def test_loads_the_only_strategy_and_sibling_imports(tmp_path: Path) -> None:
    (tmp_path / "helper_mod_xyz.py").write_text("PERIOD = 7\n")
    path = write(tmp_path, """
        from helper_mod_xyz import PERIOD
        class Mine(Strategy):
            def setup(self):
                self.add_nodes([StreamInput(interval=60, period=PERIOD)])
    """)
    cls = load_strategy(path, None)
    assert cls.__name__ == "Mine" and str(tmp_path) not in sys.path


def test_syntax_error_is_E301_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "class Broken(Strategy):\n    def setup(self)\n        pass\n")
    diag = failure(path)
    assert diag.code == "E301" and diag.loc.file == str(path.resolve()) and diag.loc.line == 3
    assert diag.loc.col > 0


def test_import_time_exception_is_E302_at_the_users_line(tmp_path: Path) -> None:
    path = write(tmp_path, "\nx = 1\nraise RuntimeError('no config')\n")
    diag = failure(path)
    assert diag.code == "E302" and diag.loc.line == 4 and "RuntimeError: no config" in diag.message


def test_exception_in_a_called_function_points_at_the_innermost_user_frame(tmp_path: Path) -> None:
    path = write(tmp_path, "def boom():\n    return {}['missing']\nboom()\n")
    diag = failure(path)
    assert diag.code == "E302" and diag.loc.line == 3 and "KeyError" in diag.message


def test_no_strategy_is_E303(tmp_path: Path) -> None:
    path = write(tmp_path, "from qmtl.runtime.sdk import Strategy as Imported\nclass NotOne:\n    pass\n")
    diag = failure(path)
    assert diag.code == "E303" and "no Strategy" in diag.message and diag.loc.file == str(path.resolve())


def test_several_strategies_need_a_name(tmp_path: Path) -> None:
    path = write(tmp_path, """
        class A(Strategy):
            def setup(self): pass
        class B(Strategy):
            def setup(self): pass
    """)
    diag = failure(path)
    assert diag.code == "E303" and "A, B" in diag.message and diag.loc.line == 5
    assert load_strategy(path, "B").__name__ == "B"
    missing = failure(path, "C")
    assert missing.code == "E303" and "'C'" in missing.message and "A, B" in missing.message


def test_bad_interval_at_import_time_is_E304(tmp_path: Path) -> None:
    path = write(tmp_path, "\nPRICE = StreamInput(interval='1w')\n")
    diag = failure(path)
    assert diag.code == "E304" and "'1w'" in diag.message and diag.loc.line == 3
