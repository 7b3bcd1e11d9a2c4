"""Every `qmtl lint --ssa` check of issue 2 part 7, reached from each input a user has: a ``.qir`` dump,
a DAG JSON document, and a strategy file.  Each case starts from a clean artefact written by
``qmtl compile`` and breaks exactly one thing, then checks the code, the exit status, and that the
finding points into the file being linted (``path:line:col: error[CODE]: …``)."""

from __future__ import annotations

import copy
import json
import re
import textwrap
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app

cli = CliRunner()
LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning|note)\[(?P<code>[EWN]\d{3})\]: ")

# Two clocks, so a mixed-clock op can be made by re-pointing one operand.
STRATEGY = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
import pandas as pd


class Two(Strategy):
    def setup(self):
        fast = StreamInput(tags=["A"], interval="1m", period=10)
        slow = StreamInput(tags=["B"], interval="1h", period=10)

        def fast_sig(view):
            close = view.as_frame(fast, 60).frame["close"]
            return pd.DataFrame({"s": (close.pct_change().rolling(5).mean() > 0).astype(int)})

        def slow_sig(view):
            return view.as_frame(slow, 3600).frame["close"].diff()

        self.add_nodes([fast, slow, Node(input=fast, compute_fn=fast_sig, name="fast_sig"),
                        Node(input=slow, compute_fn=slow_sig, name="slow_sig")])
'''


def run(*args: object):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def findings(output: str) -> list[dict[str, str]]:
    return [m.groupdict() for line in output.splitlines() if (m := LINE.match(line))]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lint")
    src = root / "two.py"
    src.write_text(STRATEGY)
    result = run("compile", src, "-o", root / "build")
    assert result.exit_code == 0, result.output
    assert run("lint", "--ssa", root / "build" / "module.qir").exit_code == 0
    assert run("lint", "--ssa", root / "build" / "dag.json").exit_code == 0
    return root / "build"


# --- .qir ---------------------------------------------------------------------------------------------

def _swap(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def _redefine(text: str) -> str:
    return re.sub(r"%fast_sig\.2 = pct_change", "%fast_sig.1 = pct_change", text, count=1)


QIR_CASES: dict[str, Callable[[str], str]] = {
    "E001": _swap("= pct_change(", "= pct_change(("),
    "E101": _redefine,
    "E102": _swap("rolling_mean(%fast_sig.2)", "rolling_mean(%nowhere)"),
    "E103": _swap("column(%fast)", "column(%fast_sig.3)"),
    "E104": _swap("= pct_change(", "= pct_changes("),
    "E105": _swap("gt(%fast_sig.3, %fast_sig.4)", "gt(%fast_sig.3)"),
    "E106": _swap("pct_change(%fast_sig.1)", "pct_change(%fast)"),
    "E107": _swap("{window = 5}", '{window = "5"}'),
    "E108": _swap("{window = 5}", "{window = 4}"),
    "E109": _swap('kind = "traced", period = 10', 'kind = "traced", period = 2'),
    "E111": lambda t: re.sub(r"= diff\(%slow_sig\.1\).*", '= py_call(%slow) {code_hash = "x", '
                             'deterministic = false, fn = "f", period = 10, unstable = "rng (Generator)"} '
                             ': opaque', t, count=1),
    "E112": _swap("output @fast_sig = %fast_sig ", "output @fast_sig = %nothing "),
    "E113": _swap("{window = 5} : series<f64>", "{window = 5} : series<i64>"),
}


@pytest.mark.parametrize("code", sorted(QIR_CASES))
def test_each_check_is_reachable_from_a_qir_dump(built, tmp_path, code):
    text = (built / "module.qir").read_text()
    broken = QIR_CASES[code](text)
    path = tmp_path / f"{code}.qir"
    path.write_text(broken)
    result = run("lint", "--ssa", path)
    assert result.exit_code == 1, result.output
    found = findings(result.output)
    assert code in {f["code"] for f in found}, result.output
    hit = next(f for f in found if f["code"] == code)
    assert hit["path"] == str(path) and int(hit["line"]) >= 1


# --- DAG JSON -----------------------------------------------------------------------------------------

def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def _id(doc: dict, name: str) -> str:
    return _node(doc, name)["node_id"]


DAG_CASES: dict[str, Callable[[dict], None]] = {
    "E101": lambda d: d["nodes"].append(copy.deepcopy(_node(d, "fast_sig.2"))),
    "E102": lambda d: _node(d, "fast_sig.3")["inputs"].__setitem__(0, "blake3:" + "0" * 64),
    "E103": lambda d: _node(d, "fast_sig.1")["inputs"].__setitem__(0, _id(d, "fast_sig.3")),
    "E104": lambda d: _node(d, "fast_sig.2").__setitem__("op", "pct_changes"),
    "E105": lambda d: _node(d, "fast_sig.5")["inputs"].pop(),
    "E106": lambda d: _node(d, "fast_sig.2")["inputs"].__setitem__(0, _id(d, "fast")),
    "E107": lambda d: _node(d, "fast_sig.3")["params"].__setitem__("window", "5"),
    "E108": lambda d: _node(d, "fast_sig.3")["params"].__setitem__("window", 4),
    "E109": lambda d: next(o for o in d["outputs"] if o["name"] == "fast_sig").__setitem__("period", 2),
    "E111": lambda d: _node(d, "slow_sig").update(
        op="py_call", inputs=[_id(d, "slow")], type="opaque", code_hash="blake3:00", period=10,
        params={"fn": "f"}, meta={"deterministic": False, "unstable": "rng (Generator)"}),
    "E112": lambda d: d["outputs"].append(copy.deepcopy(d["outputs"][-1])),
    "E113": lambda d: _node(d, "fast_sig.3").__setitem__("type", "series<i64>"),
}


@pytest.mark.parametrize("code", sorted(DAG_CASES))
def test_each_check_is_reachable_from_a_dag_document(built, tmp_path, code):
    doc = json.loads((built / "dag.json").read_text())
    DAG_CASES[code](doc)
    path = tmp_path / f"{code}.json"
    path.write_text(json.dumps(doc, indent=2))
    result = run("lint", "--ssa", path)
    assert result.exit_code == 1, result.output
    found = findings(result.output)
    assert code in {f["code"] for f in found}, result.output
    hit = next(f for f in found if f["code"] == code)
    # the finding points at the node's line in the JSON being linted, not at the strategy source
    assert hit["path"] == str(path)
    line = path.read_text().splitlines()[int(hit["line"]) - 1]
    assert '"node_id"' in line


def test_dag_json_format_json_gives_the_same_findings(built, tmp_path):
    doc = json.loads((built / "dag.json").read_text())
    DAG_CASES["E108"](doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc, indent=2))
    result = run("lint", "--ssa", path, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report[0]["kind"] == "dag" and report[0]["exit_code"] == 1
    assert {d["code"] for d in report[0]["diagnostics"]} == {"E108"}


# --- strategy files -----------------------------------------------------------------------------------

STRATEGY_CASES = {
    "E109": ('''
        from qmtl.runtime.sdk import Strategy, Node, StreamInput
        class S(Strategy):
            def setup(self):
                p = StreamInput(interval=60, period=30)
                self.add_nodes([p, Node(input=p, name="m", period=3,
                                        compute_fn=lambda v: v[p][60]["close"].rolling(10).mean())])
        ''', 6),
    "E111": ('''
        import threading
        from qmtl.runtime.sdk import Strategy, Node, StreamInput
        class S(Strategy):
            def setup(self):
                p = StreamInput(interval=60, period=5)
                guard = threading.Lock()
                def f(view):
                    with guard:
                        return view[p][60]["close"].apply(abs)
                self.add_nodes([p, Node(input=p, name="locked", compute_fn=f)])
        ''', 7),
    "E301": ('''
        from qmtl.runtime.sdk import Strategy
        class S(Strategy)
            pass
        ''', 2),
    "E302": ('''
        from qmtl.runtime.sdk import Strategy
        class S(Strategy):
            def setup(self):
                raise RuntimeError("no data source configured")
        ''', 4),
    "E303": ('''
        answer = 42
        ''', None),
    "E304": ('''
        from qmtl.runtime.sdk import Strategy, StreamInput
        class S(Strategy):
            def setup(self):
                self.add_nodes([StreamInput(interval="90 fortnights", period=3)])
        ''', 4),
}


@pytest.mark.parametrize("code", sorted(STRATEGY_CASES))
def test_strategy_file_findings_point_at_the_users_line(tmp_path, code):
    text, line = STRATEGY_CASES[code]
    path = tmp_path / f"s_{code}.py"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    result = run("lint", "--ssa", path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    hit = next(f for f in findings(result.output) if f["code"] == code)
    assert hit["path"] == str(path)
    if line is not None:
        assert int(hit["line"]) == line  # counted from the first non-blank line (lstrip below)


def test_E111_names_the_value_with_no_canonical_form(tmp_path):
    text, _ = STRATEGY_CASES["E111"]
    path = tmp_path / "locked.py"
    path.write_text(textwrap.dedent(text))
    result = run("lint", "--ssa", path)
    message = next(line for line in result.output.splitlines() if "[E111]" in line)
    assert "guard" in message and "no canonical form" in message
    # the opaque reason (why tracing stopped) is a separate note, not the E111 explanation
    assert "Series.apply" not in message


def test_compile_reports_the_column_of_the_failing_expression_and_how_to_pick_a_strategy(tmp_path):
    broken = tmp_path / "typo.py"
    broken.write_text("from qmtl.runtime.sdk import Strategy\nx = 1 + undefined_name\n")
    result = run("compile", broken)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{broken}:2:9: error[E302]: NameError" in result.output
    two = tmp_path / "two.py"
    two.write_text("from qmtl.runtime.sdk import Strategy, StreamInput\n"
                   "class A(Strategy):\n    def setup(self): self.add_nodes([StreamInput(interval=60)])\n"
                   "class B(Strategy):\n    def setup(self): self.add_nodes([StreamInput(interval=60)])\n")
    result = run("compile", two)
    assert result.exit_code == 1 and "[E303]" in result.output and "--strategy NAME" in result.output
    assert run("compile", two, "--strategy", "B", "-o", tmp_path / "b").exit_code == 0
