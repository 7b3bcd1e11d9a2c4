"""`qmtl explain` / `CompiledStrategy.explain()`: per node how it runs, why, where, what it shares,
and (asked) what a store or gateway already holds — on the examples and on strategies built to show
each case."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qmtl
from qmtl.cli.main import app
from qmtl.codegen.plan import MAX_KERNEL_OPS
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.synthetic import synthetic_bars

from .strategies import MIXED, wide, write

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
cli = CliRunner()


def run(*args: object):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_each_kind_with_its_reason_and_place(tmp_path: Path) -> None:
    ex = qmtl.compile(write(tmp_path, "mixed.py", MIXED)).explain()
    assert [n.name for n in ex.nodes] == ["price", "fast_mean", "slope", "gate"]
    price, fast, slope, gate = ex.nodes
    assert (price.kind, price.runs_in) == ("source", ("input",))
    assert (fast.kind, fast.runs_in, fast.why) == ("traced", ("k0",), "")
    assert gate.kind == "opaque" and gate.runs_in == ("python",)
    assert "control flow" in gate.why and "mixed.py:16" in gate.why
    assert "20-bar window" in gate.cost
    # slope = fast_mean.diff(): both compute column(close) and its rolling mean, one op each after CSE
    assert dict(fast.shares) == {"slope": 2} and dict(slope.shares) == {"fast_mean": 2}
    assert gate.shares == () and price.shares == ()
    assert fast.node_id == qmtl.compile(write(tmp_path, "mixed.py", MIXED)).node_ids["fast_mean"]


def test_per_tick_nodes_say_why_and_what_they_cost() -> None:
    ex = qmtl.compile(ROOT / "examples" / "correlation.py").explain()
    kinds = {n.name: (n.kind, n.runs_in) for n in ex.nodes}
    assert kinds == {"indicators": ("per-tick", ("interpreter",)),
                     "indicator_corr": ("per-tick", ("interpreter",))}
    assert "tag query" in ex.node("indicators").why
    assert "opaque: iterating the view" in ex.node("indicator_corr").why  # it is opaque as well
    assert "'indicators'" in ex.node("indicator_corr").why
    assert all("ms per bar" in n.cost for n in ex.nodes)


def test_compile_summary_and_repr_say_per_tick(tmp_path: Path) -> None:
    compiled = qmtl.compile(ROOT / "examples" / "correlation.py")
    assert "(2 per-tick)" in repr(compiled)
    r = run("compile", ROOT / "examples" / "correlation.py", "-o", tmp_path / "build")
    rows = [line for line in r.stdout.splitlines() if line.startswith("│ indicator")]
    assert len(rows) == 2 and all("opaque, per" in line for line in rows)


def test_a_long_node_is_fused_into_several_kernels(tmp_path: Path) -> None:
    # one node of 2 * MAX_KERNEL_OPS chained ops cannot fit one kernel
    chain = " + ".join(f"c.shift({i})" for i in range(1, MAX_KERNEL_OPS + 1))
    src = f'''
from qmtl.runtime.sdk import Strategy, Node, StreamInput

class Long(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period={MAX_KERNEL_OPS + 2}, name="price")
        def long(view):
            c = view[price][60]["close"]
            return {chain}
        self.add_nodes([price, Node(input=price, name="long", compute_fn=long)])
'''
    ex = qmtl.compile(write(tmp_path, "long.py", src)).explain()
    node = ex.node("long")
    assert node.ops > MAX_KERNEL_OPS
    assert len(node.runs_in) >= 2 and all(k.startswith("k") for k in node.runs_in)
    assert ex.kernels == len(node.runs_in)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_cli_text_names_every_node_of_each_example(example: Path) -> None:
    r = run("explain", example)
    assert r.exit_code == 0, r.output
    compiled = qmtl.compile(example)
    for name, node_id in compiled.node_ids.items():
        line = next(line for line in r.stdout.splitlines() if f" {name} " in line)
        assert node_id[:19] in line


def test_cli_json_matches_the_api(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.py", MIXED)
    r = run("explain", path, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["strategy"] == "Mixed" and doc["store"] is None and doc["gateway"] is None
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert by_name["gate"]["kind"] == "opaque" and by_name["slope"]["shares"] == {"fast_mean": 2}
    assert by_name["fast_mean"]["node_id"] == qmtl.compile(path).node_ids["fast_mean"]


def test_twenty_nodes_fit_one_screen(tmp_path: Path) -> None:
    r = run("explain", write(tmp_path, "wide.py", wide(20)))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 120
    assert sum(1 for line in lines if " ma_" in line) == 19


def test_store_says_which_values_are_already_stored(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.py", MIXED)
    store = ArtifactStore(tmp_path / "store")
    compiled = qmtl.compile(path)
    before = compiled.explain(store=store)
    assert {n.name: n.stored for n in before.nodes} == {"price": 0, "fast_mean": 0, "slope": 0, "gate": 0}
    compiled.run(synthetic_bars(60), store=store)
    after = compiled.explain(store=store)
    stored = {n.name: n.stored for n in after.nodes}
    assert stored["price"] == 0  # sources are bars, never artifacts
    assert stored["fast_mean"] == stored["slope"] == stored["gate"] == 1
    compiled.run(synthetic_bars(60, seed=1), store=store)  # other bars: a second dataset
    assert compiled.explain(store=store).node("slope").stored == 2
    r = run("explain", path, "--store", tmp_path / "store")
    assert r.exit_code == 0, r.output
    assert "stored" in r.stdout and "2 datasets" in r.stdout


def test_store_and_data_say_what_a_run_on_those_bars_would_read(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.py", MIXED)
    store = ArtifactStore(tmp_path / "store")
    compiled = qmtl.compile(path)
    seen, unseen = synthetic_bars(60), synthetic_bars(60, seed=7)
    compiled.run(seen, store=store)
    here = {n.name: n.stored_here for n in compiled.explain(store=store, data=seen).nodes}
    assert here == {"price": False, "fast_mean": True, "slope": True, "gate": True}
    there = {n.name: n.stored_here for n in compiled.explain(store=store, data=unseen).nodes}
    assert there == {"price": False, "fast_mean": False, "slope": False, "gate": False}
    assert compiled.explain(store=store).node("slope").stored_here is None  # not asked
    # what explain says is what the run does: the values it reads are the ones said stored here
    assert set(compiled.run(seen, store=store).sharing.reused) == {"fast_mean", "slope", "gate"}
    bars = tmp_path / "seen.parquet"
    seen.to_parquet(bars)
    r = run("explain", path, "--store", tmp_path / "store", "--data", bars)
    assert r.exit_code == 0, r.output
    assert re.search(r"│ slope .*│ 1 dataset, this data +│", r.stdout)
    r = run("explain", path, "--data", bars)
    assert r.exit_code == 1 and "--store" in r.stderr
    r = run("explain", path, "--store", tmp_path / "store", "--data", tmp_path / "nope.parquet")
    assert r.exit_code == 1 and "nope.parquet" in r.stderr
    no_close = seen.drop(columns=["close"])
    no_close.to_parquet(tmp_path / "no_close.parquet")
    r = run("explain", path, "--store", tmp_path / "store", "--data", tmp_path / "no_close.parquet")
    assert r.exit_code == 1 and "E506" in r.stderr and "Traceback" not in r.output


def test_gateway_says_which_nodes_the_graph_and_index_have(tmp_path: Path, monkeypatch) -> None:
    from qmtl.config import QmtlConfig
    from qmtl.runner import Runner
    from qmtl.services.app import EmbeddedServices

    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    path = write(tmp_path, "mixed.py", MIXED)
    with EmbeddedServices(QmtlConfig(home=tmp_path / "svc")) as url:
        r = run("explain", path, "--gateway", url, "--format", "json")
        assert r.exit_code == 0, r.output
        before = {n["name"]: (n["in_graph"], n["registered"]) for n in json.loads(r.stdout)["nodes"]}
        assert before == {"price": (0, 0), "fast_mean": (0, 0), "slope": (0, 0), "gate": (0, 0)}
        assert run("world", "create", "w", "--preset", "sandbox", "--gateway-url", url).exit_code == 0
        res = Runner.submit(path, world="w", data=synthetic_bars(60), gateway_url=url)
        assert res.status == "accepted", res
        r = run("explain", path, "--gateway", url, "--format", "json")
        doc = json.loads(r.stdout)
        assert doc["gateway"] == url
        after = {n["name"]: (n["in_graph"], n["registered"]) for n in doc["nodes"]}
        # every node is in the graph, used by the one strategy; sources have no artifact
        assert after == {"price": (1, 0), "fast_mean": (1, 1), "slope": (1, 1), "gate": (1, 1)}
        text = run("explain", path, "--gateway", url).stdout
        assert re.search(r"│ fast_mean .*│ used by 1, 1 artifact +│", text)
        assert re.search(r"│ price .*│ used by 1 +│", text)
        other = write(tmp_path, "other.py", MIXED.replace("rolling(5)", "rolling(7)"))
        doc = json.loads(run("explain", other, "--gateway", url, "--format", "json").stdout)
        fresh = {n["name"]: n["in_graph"] for n in doc["nodes"]}
        assert fresh == {"price": 1, "fast_mean": 0, "slope": 0, "gate": 1}  # window 7: new NodeIDs


def test_bad_inputs_are_named_not_tracebacks(tmp_path: Path) -> None:
    r = run("explain", tmp_path / "missing.py")
    assert r.exit_code == 1 and "missing.py" in r.stderr and "Traceback" not in r.output
    r = run("explain", ROOT / "examples" / "momentum.py", "--strategy", "Nope")
    assert r.exit_code == 1 and "Nope" in r.stderr and "GeneralStrategy" in r.stderr
    r = run("explain", ROOT / "examples" / "momentum.py", "--format", "xml")
    assert r.exit_code == 2 and "xml" in r.output
    r = run("explain", ROOT / "examples" / "momentum.py", "--store", tmp_path / "nowhere")
    assert r.exit_code == 1 and "nowhere" in r.stderr


def test_gateway_down_is_a_named_error(tmp_path: Path) -> None:
    from tests.submit_support import closed_port_url
    url = closed_port_url()
    r = run("explain", ROOT / "examples" / "momentum.py", "--gateway", url)
    assert r.exit_code == 1 and "E_UNAVAILABLE" in r.stderr and url in r.stderr


def test_notebook_forms(tmp_path: Path) -> None:
    ex = qmtl.compile(write(tmp_path, "mixed.py", MIXED)).explain()
    assert repr(ex) == "<Explanation Mixed: 4 nodes, 5 ops, 1 kernel (1 source, 2 traced, 1 opaque)>"
    page = ex._repr_html_()
    assert page.count("<tr>") == 5 and "control flow" in page
