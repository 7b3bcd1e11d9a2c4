"""`qmtl diff`: two versions of a strategy compared by NodeID — as strategy files, IR dumps or DAG
documents — with locations never counting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qmtl
from qmtl.cli.main import app
from qmtl.ir.diff import diff_modules
from qmtl.ir.module import without_locs
from qmtl.ir.printer import print_module

from .strategies import MIXED, write

ROOT = Path(__file__).resolve().parents[2]
MOMENTUM = (ROOT / "examples" / "momentum.py").read_text()
cli = CliRunner()


def run(*args: object):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def diff(tmp_path: Path, old: str, new: str):
    a = qmtl.compile(write(tmp_path, "old.py", old)).module
    b = qmtl.compile(write(tmp_path, "new.py", new)).module
    return diff_modules(a, b)


def test_identical_and_moved_code_has_no_differences(tmp_path: Path) -> None:
    moved = "\n\n# a comment and blank lines move every op's location\n\n" + MOMENTUM
    d = diff(tmp_path, MOMENTUM, moved)
    assert d.empty and d.unchanged_nodes == ("price_stream", "momentum_signal")
    r = run("diff", write(tmp_path, "a.py", MOMENTUM), write(tmp_path, "b.py", moved))
    assert r.exit_code == 0 and "no differences" in r.stdout


def test_a_changed_window_names_the_param_and_what_it_invalidates(tmp_path: Path) -> None:
    d = diff(tmp_path, MOMENTUM, MOMENTUM.replace("rolling(5)", "rolling(10)"))
    assert [(n.name, n.status) for n in d.nodes] == [("momentum_signal", "changed")]
    changed = [o for o in d.ops if o.status == "changed"]
    assert len(changed) == 1 and changed[0].op == "rolling_mean"
    assert [(p.key, p.old, p.new) for p in changed[0].params] == [("window", "5", "10")]
    invalidated = [o for o in d.ops if o.status == "invalidated"]
    # everything computed from the mean: the comparison, the cast, the frame
    assert {o.op for o in invalidated} == {"gt", "astype", "make_frame"}
    assert all(o.old_id != o.new_id for o in invalidated)


def test_downstream_nodes_are_invalidated(tmp_path: Path) -> None:
    src = (ROOT / "examples" / "multi_node.py").read_text()
    d = diff(tmp_path, src, src.replace("np.log(b).diff()", "np.log(b).diff(2)"))
    status = {n.name: n for n in d.nodes}
    assert status["returns"].status == "changed"
    assert any("periods 1 → 2" in x for x in status["returns"].details)
    assert status["spread_signal"].status == "invalidated"
    assert status["spread_signal"].details[0] == "upstream returns changed"
    assert set(d.unchanged_nodes) == {"btc", "eth"}


RENAMED = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Mixed(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def fast_mean(view):
            return view[price][60]["close"].rolling(5).mean()

        def gate(view):
            if view[price][60]["close"].iloc[-1] > 100:
                return 1.0
            return 0.0

        self.add_nodes([price, Node(input=price, name="fast_mean", compute_fn=fast_mean, period=30),
                        Node(input=price, name="gate2", compute_fn=gate),
                        Node(input=price, name="extra",
                             compute_fn=lambda v: v[price][60]["close"].ewm(span=3).mean())])
'''


def test_added_removed_renamed_and_emission(tmp_path: Path) -> None:
    d = diff(tmp_path, MIXED, RENAMED)
    status = {n.name: n.status for n in d.nodes}
    # slope gone; gate renamed (same code, same NodeID); fast_mean only emits later (period 20 → 30)
    assert status == {"fast_mean": "emission", "gate2": "renamed", "extra": "added", "slope": "removed"}
    assert next(n for n in d.nodes if n.name == "gate2").details == ("was 'gate'",)
    fast = next(n for n in d.nodes if n.name == "fast_mean")
    assert fast.details[0] == "period 20 → 30" and fast.old_id == fast.new_id
    # the column extra reads is the one fast_mean reads (one NodeID): only its mean is new
    assert [(o.status, o.op) for o in d.ops] == [("added", "ewm_mean"), ("removed", "diff")]


def test_opaque_code_change_is_a_changed_code_hash(tmp_path: Path) -> None:
    d = diff(tmp_path, MIXED, MIXED.replace("> 100", "> 101"))
    gate = next(n for n in d.nodes if n.name == "gate")
    assert gate.status == "changed" and "code_hash" in gate.details[0]
    assert {n.name for n in d.nodes} == {"gate"}


@pytest.mark.parametrize("form", ["qir", "qir-no-loc", "json"])
def test_dumps_and_dags_diff_like_strategies(tmp_path: Path, form: str) -> None:
    old, new = write(tmp_path, "old.py", MOMENTUM), write(tmp_path, "new.py", MOMENTUM.replace("rolling(5)", "rolling(7)"))
    files = []
    for path in (old, new):
        if form == "json":
            r = run("compile", path, "--emit", "json")
        else:
            r = run("compile", path, "--emit", "ir", *(["--no-loc"] if form == "qir-no-loc" else []))
        assert r.exit_code == 0, r.output
        target = path.with_suffix(".json" if form == "json" else ".qir")
        target.write_text(r.stdout, encoding="utf-8")
        files.append(target)
    if form == "qir-no-loc":
        assert "loc(" not in files[0].read_text()
    r = run("diff", *files, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert [(n["name"], n["status"]) for n in doc["nodes"]] == [("momentum_signal", "changed")]
    changed = [o for o in doc["ops"] if o["status"] == "changed"]
    assert changed[0]["params"] == [{"key": "window", "old": "5", "new": "7"}]
    r = run("diff", old, files[1])  # a strategy against a dump of another version
    assert r.exit_code == 1 and "window 5 → 7" in r.stdout


def test_no_loc_dump_equals_the_module_without_locations(tmp_path: Path) -> None:
    compiled = qmtl.compile(write(tmp_path, "m.py", MOMENTUM))
    r = run("compile", tmp_path / "m.py", "--emit", "ir", "--no-loc")
    assert r.stdout == print_module(without_locs(compiled.module))
    assert r.stdout != compiled.ir_text and "loc(" in compiled.ir_text


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    good = write(tmp_path, "m.py", MOMENTUM)
    r = run("diff", good, tmp_path / "missing.qir")
    assert r.exit_code == 2 and "missing.qir: no such file" in r.stderr
    r = run("diff", good, write(tmp_path, "x.txt", "hello"))
    assert r.exit_code == 2 and "x.txt: unknown kind of file" in r.stderr
    r = run("diff", good, write(tmp_path, "bad.qir", "module @x {\n  %a = \n}\n"))
    assert r.exit_code == 2 and "bad.qir" in r.stderr and "Traceback" not in r.output
    r = run("diff", good, write(tmp_path, "bad.json", "[1, 2]"))
    assert r.exit_code == 2 and "bad.json: not a DAG document" in r.stderr
    r = run("diff", good, write(tmp_path, "bad2.json", '{"nodes": [{"op": "column"}]}'))
    assert r.exit_code == 2 and "bad2.json" in r.stderr and "Traceback" not in r.output
    r = run("diff", good, good, "--strategy", "Nope")
    assert r.exit_code == 2 and "Nope" in r.stderr
