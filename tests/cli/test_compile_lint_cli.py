"""`qmtl compile` and `qmtl lint` as a user runs them: typer's CliRunner on the real app, real files.

Diagnostics go to stderr in the compiler format ``path:line:col: severity[CODE]: message``; the
summary, emitted forms and ``--format json`` go to stdout.  Exit codes: compile 0 ok / 1 errors;
lint 0 clean / 1 findings / 2 unusable input.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.ir.parser import parse_module
from qmtl.ir.verifier import verify

ROOT = Path(__file__).resolve().parents[2]
MOMENTUM = ROOT / "examples" / "momentum.py"
cli = CliRunner()

TWO_STRATEGIES = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Fast(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval=60, period=10)
        fast = Node(input=price, name="fast", compute_fn=lambda v: v[price][60]["close"].rolling(3).mean())
        self.add_nodes([price, fast])


class Slow(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval=60, period=30)
        slow = Node(input=price, name="slow", compute_fn=lambda v: v[price][60]["close"].rolling(20).mean())
        self.add_nodes([price, slow])
'''

SYNTAX_ERROR = '''
from qmtl.runtime.sdk import Strategy


class Broken(Strategy):
    def setup(self)
        pass
'''

OPAQUE = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Loopy(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval=60, period=10)

        def count_up(view):
            total = 0
            for _ in range(3):
                total += 1
            if view[price][60]["close"].iloc[-1] > total:
                return 1.0
            return 0.0

        self.add_nodes([price, Node(input=price, name="loopy", compute_fn=count_up)])
'''

SHORT_PERIOD = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Short(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval=60, period=30)
        ma = Node(input=price, name="ma", period=5,
                  compute_fn=lambda v: v[price][60]["close"].pct_change().rolling(5).mean())
        self.add_nodes([price, ma])
'''


def run(*args: str):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def diagnostic_lines(text: str, code: str) -> list[str]:
    return [line for line in text.splitlines() if f"[{code}]" in line]


# --- compile ------------------------------------------------------------------------------------------

def test_compile_prints_a_summary_and_writes_the_artefacts(tmp_path):
    out_dir = tmp_path / "build"
    r = run("compile", MOMENTUM, "-o", out_dir)
    assert r.exit_code == 0, r.output
    assert "GeneralStrategy: 8 ops, 2 nodes" in r.stdout
    assert "momentum_signal" in r.stdout and "price_stream" in r.stdout
    assert "wrote" in r.stdout
    assert sorted(p.name for p in out_dir.iterdir()) == ["dag.json", "module.py", "module.qir"]
    module = parse_module((out_dir / "module.qir").read_text(), "module.qir")
    assert verify(module, check_ids=True) == []  # printed NodeIDs recompute
    dag = json.loads((out_dir / "dag.json").read_text())
    assert {n["node_id"] for n in dag["nodes"]} == {op.node_id for op in module.ops}
    compile((out_dir / "module.py").read_text(), "module.py", "exec")  # generated code is Python


def test_emit_ir_prints_parseable_ir_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("compile", MOMENTUM, "--emit", "ir")
    assert r.exit_code == 0, r.output
    module = parse_module(r.stdout)
    assert module.name == "GeneralStrategy" and [o.name for o in module.outputs] == \
        ["price_stream", "momentum_signal"]
    assert not any(tmp_path.iterdir())


def test_emit_json_prints_the_dag_document():
    r = run("compile", MOMENTUM, "--emit", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "qmtl.dag/1" and doc["strategy"] == "GeneralStrategy"
    assert {o["name"] for o in doc["outputs"]} == {"price_stream", "momentum_signal"}


def test_emit_dot_prints_a_graph():
    r = run("compile", MOMENTUM, "--emit", "dot")
    assert r.exit_code == 0, r.output
    assert r.stdout.lstrip().startswith("digraph") and "rolling_mean" in r.stdout
    assert r.stdout.count("->") >= 7  # one edge per operand of the 8-op module


def test_strategy_option_picks_one_of_two_strategies(tmp_path):
    path = write(tmp_path, "two.py", TWO_STRATEGIES)
    ambiguous = run("compile", path, "--emit", "ir")
    assert ambiguous.exit_code == 1
    [line] = diagnostic_lines(ambiguous.stderr, "E303")
    assert "several strategies (Fast, Slow)" in line
    picked = run("compile", path, "--strategy", "Slow", "--emit", "ir")
    assert picked.exit_code == 0, picked.output
    module = parse_module(picked.stdout)
    assert module.name == "Slow" and [o.name for o in module.outputs] == ["price", "slow"]
    unknown = run("compile", path, "--strategy", "Medium", "--emit", "ir")
    assert unknown.exit_code == 1 and "no Strategy named 'Medium'" in unknown.stderr


def test_syntax_error_in_the_strategy_is_a_located_E301_without_traceback(tmp_path):
    path = write(tmp_path, "broken.py", SYNTAX_ERROR)
    r = run("compile", path)
    assert r.exit_code == 1
    [line] = diagnostic_lines(r.stderr, "E301")
    assert re.match(rf"^{re.escape(str(path))}:6:\d+: error\[E301\]: syntax error", line), line
    assert "Traceback" not in r.output


def test_verbose_shows_why_a_node_is_opaque(tmp_path):
    path = write(tmp_path, "loopy.py", OPAQUE)
    quiet = run("compile", path, "--emit", "ir")
    assert quiet.exit_code == 0, quiet.output
    assert not diagnostic_lines(quiet.stderr, "N202")
    loud = run("compile", path, "--emit", "ir", "-v")
    [note] = diagnostic_lines(loud.stderr, "N202")
    assert note.startswith(f"{path}:") and "note[N202]" in note
    assert "node 'loopy' runs as an opaque Python call" in note
    assert "py_call" in loud.stdout


def test_compile_to_an_unwritable_directory_is_a_one_line_error_exit_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    for target in (blocker / "build", Path("/proc/nope")):
        r = run("compile", MOMENTUM, "-o", target)
        assert r.exit_code == 2, r.output
        assert r.stderr.startswith(f"error: cannot write build artefacts to {target}: ")
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert "wrote" not in r.stdout


# --- lint ---------------------------------------------------------------------------------------------

@pytest.fixture
def qir(tmp_path) -> Path:
    r = run("compile", MOMENTUM, "--emit", "ir")
    assert r.exit_code == 0, r.output
    return write(tmp_path, "momentum.qir", r.stdout)


def test_lint_clean_qir_exits_0(qir):
    r = run("lint", "--ssa", qir)
    assert r.exit_code == 0, r.output
    assert f"{qir}: ok" in r.stdout and "error" not in r.stderr


def test_lint_tampered_node_id_points_at_its_line_in_the_qir(qir):
    lines = qir.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "rolling_mean(" in line)
    lines[index] = re.sub(r"(id blake3:)([0-9a-f])", lambda m: m.group(1) + ("1" if m.group(2) != "1" else "2"),
                          lines[index])
    qir.write_text("\n".join(lines) + "\n")
    r = run("lint", "--ssa", qir)
    assert r.exit_code == 1
    [line] = diagnostic_lines(r.stderr, "E108")
    # the .qir file and line, not the strategy file the op's loc(...) names
    assert line.startswith(f"{qir}:{index + 1}:"), line
    assert "%momentum_signal.3 has id" in line


def test_lint_tampered_dag_json_reports_E108(tmp_path):
    r = run("compile", MOMENTUM, "--emit", "json")
    doc = json.loads(r.stdout)
    node = next(n for n in doc["nodes"] if n["op"] == "rolling_mean")
    node["params"]["window"] = 6  # the content changed, the printed NodeID did not
    path = write(tmp_path, "dag.json", json.dumps(doc))
    r = run("lint", "--ssa", path)
    assert r.exit_code == 1
    # the node, the NodeID it claims and the one its content hashes to (what the gateway answers too)
    assert any("does not match its recomputed NodeID" in line and "dag.nodes[" in line
               for line in diagnostic_lines(r.stderr, "E108"))


def test_lint_garbage_json_is_unusable_input(tmp_path):
    path = write(tmp_path, "garbage.json", "{not json")
    r = run("lint", "--ssa", path)
    assert r.exit_code == 2
    [line] = diagnostic_lines(r.stderr, "E401")
    assert line.startswith(f"{path}:1:") and "not JSON" in line
    not_a_dag = run("lint", "--ssa", write(tmp_path, "list.json", "[1, 2]"))
    assert not_a_dag.exit_code == 2 and "not a DAG document" in not_a_dag.stderr


def test_lint_missing_file_is_unusable_input(tmp_path):
    r = run("lint", "--ssa", tmp_path / "nowhere.qir")
    assert r.exit_code == 2
    assert "no such file" in r.stderr and "Traceback" not in r.output


def test_lint_format_json_is_machine_readable(qir, tmp_path):
    missing = tmp_path / "nowhere.qir"
    r = run("lint", "--ssa", "--format", "json", qir, missing)
    assert r.exit_code == 2  # the worst of the files
    reports = json.loads(r.stdout)
    assert [(x["path"], x["kind"], x["exit_code"]) for x in reports] == \
        [(str(qir), "qir", 0), (str(missing), "qir", 2)]
    [diag] = reports[1]["diagnostics"]
    assert diag["code"] == "E401" and diag["severity"] == "error" and diag["loc"]["file"] == str(missing)


def test_lint_unknown_format_is_rejected_not_silently_text(qir):
    r = cli.invoke(app, ["lint", "--ssa", "--format", "xml", str(qir)])
    assert r.exit_code == 2  # typer's usage error, before any file is linted
    assert "xml" in r.stderr and "text" in r.stderr and "json" in r.stderr  # names the bad value and the choices
    assert r.stdout == ""
    assert run("lint", "--ssa", "--format", "text", qir).exit_code == 0


def test_lint_strategy_with_too_short_period_reports_E109(tmp_path):
    path = write(tmp_path, "short.py", SHORT_PERIOD)
    r = run("lint", "--ssa", path)
    assert r.exit_code == 1
    [line] = diagnostic_lines(r.stderr, "E109")
    assert line.startswith(f"{path}:9:"), line
    assert "node 'ma' declares period=5 but pct_change(1) → rolling_mean(5) needs 6 bars" in line


# --- README ---------------------------------------------------------------------------------------------

def test_readme_documents_the_look_ahead_and_unavailable_codes_the_code_emits():
    from qmtl.runtime.sdk.errors import LookAheadError
    readme = (ROOT / "README.md").read_text()
    codes = readme[readme.index("## Diagnostic codes"):]
    codes = codes[:codes.index("\n## ", 1)]
    assert f"| {LookAheadError.code} | look-ahead" in codes
    sources = {p: p.read_text() for p in (ROOT / "qmtl").rglob("*.py")}
    for name in ("E_WORLD_UNAVAILABLE", "E_UNAVAILABLE"):
        assert any(name in text for text in sources.values()), f"{name} no longer emitted"
        assert f"`{name}`" in codes or f"[{name}]" in codes
