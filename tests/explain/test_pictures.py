"""`qmtl compile --emit svg|html`: the DAG drawn by Graphviz, opened in headless Chromium; every SDK
node's name must be in the rendered page (shared NodeIDs included), the marks must follow what
`explain` says, and the page must work with no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qmtl
from qmtl.cli.main import app
from tests.browser import rendered_dom, require_dot

from .strategies import MIXED, write

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
cli = CliRunner()


@pytest.fixture(autouse=True)
def _dot() -> None:
    require_dot()


def run(*args: object):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


def svg_texts(page: str) -> str:
    """The text of the drawing only (not the explain table above it)."""
    svg = page[page.index("<svg"):page.rindex("</svg>")]
    return "\n".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("group", ["node", "kernel"])
def test_html_in_chromium_names_every_node(example: Path, group: str, tmp_path: Path) -> None:
    r = run("compile", example, "--emit", "html", "--group", group)
    assert r.exit_code == 0, r.output
    assert "http://" not in r.stdout.replace("http://www.w3.org", "")  # no network: nothing fetched
    assert "https://" not in r.stdout
    page = tmp_path / "dag.html"
    page.write_text(r.stdout, encoding="utf-8")
    dom = rendered_dom(page)
    assert 'data-ready="1"' in dom  # the pan/zoom script ran
    drawn = svg_texts(dom)
    for name in qmtl.compile(example).node_ids:
        assert re.search(rf"(^|[ =]){re.escape(name)}($|[ (=,])", drawn, re.M), (name, drawn[:500])


def test_shared_node_ids_keep_every_name() -> None:
    # examples/indicators.py: trend and trend_traced are the same value (one NodeID)
    r = run("compile", ROOT / "examples" / "indicators.py", "--emit", "svg")
    assert r.exit_code == 0, r.output
    assert "trend = trend_traced" in svg_texts(r.stdout)
    r = run("compile", ROOT / "examples" / "indicators.py", "--emit", "dot")
    assert 'label="trend_traced"' in r.stdout and 'label="trend"' in r.stdout


def drawn_ops(source: str) -> dict[str, str]:
    """op value → its DOT attributes (labels span several lines)."""
    return dict(re.findall(r'^\s+"?v_([^"\s\[]+)"? \[(.*?)\]$', source, re.M | re.S))


def test_marks_follow_explain(tmp_path: Path) -> None:
    from qmtl.explain.graph import dag_graph
    compiled = qmtl.compile(write(tmp_path, "mixed.py", MIXED))
    ops = drawn_ops(dag_graph(compiled, compiled.explain()).source)
    assert set(ops) == {op.result for op in compiled.module.ops}
    gate = next(a for a in ops.values() if "py_call" in a)
    assert "shape=octagon" in gate  # opaque
    shared = [a for a in ops.values() if "peripheries=2" in a]
    assert len(shared) == 2 and all("in fast_mean, slope" in a for a in shared)
    assert "shape=cds" in next(a for a in ops.values() if "stream_input" in a)
    assert sum("shape=box" in a for a in ops.values()) == 3  # the traced ops: column, mean, diff


def test_reused_nodes_are_marked(tmp_path: Path) -> None:
    from qmtl.runtime.artifacts import ArtifactStore
    from qmtl.runtime.synthetic import synthetic_bars
    path = write(tmp_path, "mixed.py", MIXED)
    store = tmp_path / "store"
    fill = "#cfe2ff"
    r = run("compile", path, "--emit", "svg", "--store", store.mkdir() or store)
    assert r.stdout.count(f'fill="{fill}"') == 1  # the legend only
    qmtl.compile(path).run(synthetic_bars(60), store=ArtifactStore(store))
    r = run("compile", path, "--emit", "svg", "--store", store)
    assert r.stdout.count(f'fill="{fill}"') == 1 + 3  # fast_mean, slope, gate


def test_zoom_moves_the_view(tmp_path: Path) -> None:
    r = run("compile", ROOT / "examples" / "multi_node.py", "--emit", "html")
    page = tmp_path / "dag.html"
    page.write_text(r.stdout, encoding="utf-8")
    first = re.search(r'<svg[^>]*viewBox="([^"]+)"', rendered_dom(page)).group(1)
    zoomed_dom = rendered_dom_with_hash(page, "zoom=4")
    zoomed = re.search(r'<svg[^>]*viewBox="([^"]+)"', zoomed_dom).group(1)
    w0, w1 = float(first.split()[2]), float(zoomed.split()[2])
    assert w1 == pytest.approx(w0 / 4, rel=1e-3)


def rendered_dom_with_hash(page: Path, fragment: str) -> str:
    link = page.with_name("link.html")
    link.write_text(f'<meta http-equiv="refresh" content="0; url={page.name}#{fragment}">', encoding="utf-8")
    return rendered_dom(link)


def test_thousand_op_page_renders_with_every_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QMTL_CHAIN_N", "350")  # read when the file is loaded
    compiled = qmtl.compile(ROOT / "benchmarks" / "strategies" / "chain.py")
    assert len(compiled.module.ops) > 1000
    from qmtl.explain.page import to_html
    page = tmp_path / "chain.html"
    page.write_text(to_html(compiled, compiled.explain()), encoding="utf-8")
    drawn = svg_texts(rendered_dom(page))
    missing = [n for n in compiled.node_ids if not re.search(rf"(^|[ =]){n}($|[ =])", drawn, re.M)]
    assert missing == []


def test_missing_dot_is_a_named_error(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    r = run("compile", ROOT / "examples" / "momentum.py", "--emit", "svg")
    assert r.exit_code == 2 and "apt-get install graphviz" in r.stderr and "Traceback" not in r.output
