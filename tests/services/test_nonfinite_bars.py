"""Issue 8 section 5: ``inf``/``1e309`` in bar data is E503 naming the row (it used to pass the loader
and crash ``qmtl submit`` with a JSON traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.runtime.data import DataError, load
from tests.submit_support import MOMENTUM


def _csv(path: Path, bad: str, row: int = 3) -> Path:
    lines = ["ts,open,high,low,close,volume"]
    for i in range(40):
        close = bad if i == row else f"{100 + i * 0.5}"
        lines.append(f"{60 * (i + 1)},100,101,99,{close},10")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("bad, what", [("1e309", "infinite"), ("inf", "infinite"), ("-inf", "infinite"),
                                       ("nan", "NaN/null")])
def test_non_finite_bar_values_are_E503_with_the_row(tmp_path: Path, bad: str, what: str) -> None:
    with pytest.raises(DataError) as exc:
        load(_csv(tmp_path / "bars.csv", bad))
    diag = exc.value.diagnostics[0]
    assert diag.code == "E503" and f"column 'close' is {what}" in diag.message and "row 3" in diag.message


def test_qmtl_submit_reports_it_without_a_traceback(tmp_path: Path) -> None:
    strategy = tmp_path / "momentum.py"
    strategy.write_text(MOMENTUM)
    data = _csv(tmp_path / "bars.csv", "1e309")
    result = CliRunner().invoke(app, ["submit", str(strategy), "--world", "w", "--data", str(data),
                                      "--output", "json", "--gateway-url", "http://127.0.0.1:9"])
    assert "Traceback" not in result.output
    body = json.loads(result.stdout)
    assert body["status"] == "rejected" and "E503" in body["downgrade_reason"]
    assert "row 3" in body["downgrade_reason"]
