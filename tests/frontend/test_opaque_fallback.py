"""Unsupported code falls back to ONE py_call over the node's inputs, with the reason kept."""

from __future__ import annotations

import pandas as pd
import pytest

from qmtl.runtime.sdk.source_location import display_path
from qmtl.compiler.frontend import trace
from qmtl.runtime.sdk import Node, StreamInput, Strategy
from .helpers import one_node, opaque_op


def rank(view):
    return view["price"][60]["close"].rank()


def branch(view):
    c = view["price"][60]["close"]
    if c > 0:
        return c
    return -c


def length(view):
    return view["price"][60]["close"] * len(view["price"][60]["close"])


def iterate(view):
    return [view[n][60] for n in view][0]["close"]


def returns_number(view):
    return 1.0


@pytest.mark.parametrize("fn, reason", [
    (rank, "unsupported method Series.rank at test_opaque_fallback.py:15"),
    (branch, "Python control flow on a series"),
    (length, "len() of a series"),
    (iterate, "iterating the view"),
    (returns_number, "returns a float"),
])
def test_unsupported_code_is_opaque_with_reason(fn, reason) -> None:
    result = one_node(fn)
    op = opaque_op(result, "sig")
    assert reason in op.attr("reason")
    assert op.operands == ("price",) and op.attr("period") == 30 and op.attr("fn") == fn.__name__
    assert result.functions[op.attr("code_hash")] is fn
    # nothing from the failed trace is left behind
    assert [o.name for o in result.module.ops] == ["stream_input", "py_call"]
    (note,) = [d for d in result.diagnostics if d.code == "N202"]
    assert note.severity == "note" and reason in note.message
    assert result.module.output("sig").kind == "opaque"


def test_raising_function_is_called_once_and_keeps_the_reason() -> None:
    calls = []

    def explode(view):
        calls.append(1)
        raise ValueError("no data yet")

    result = one_node(explode)
    op = opaque_op(result, "sig")
    assert calls == [1]
    assert "ValueError: no data yet" in op.attr("reason") and "test_opaque_fallback.py" in op.attr("reason")


def test_side_effects_run_once_even_when_tracing_succeeds() -> None:
    calls = []

    def fn(view):
        calls.append(1)
        return view["price"][60]["close"].diff()

    one_node(fn)
    assert calls == [1]


def test_py_call_reads_every_input_once_in_order() -> None:
    class Two(Strategy):
        def setup(self):
            a = StreamInput(tags=["a"], interval=60, period=5, name="a")
            b = StreamInput(tags=["b"], interval=60, period=5, name="b")
            self.add_nodes([Node(input=[b, a, b], compute_fn=lambda v: v[a][60]["close"].rank(), name="r")])

    result = trace(Two)
    assert opaque_op(result, "r").operands == ("b", "a")


def test_reading_an_undeclared_input_is_an_error() -> None:
    class Sneaky(Strategy):
        def setup(self):
            a = StreamInput(tags=["a"], interval=60, period=5, name="a")
            b = StreamInput(tags=["b"], interval=60, period=5, name="b")
            self.add_nodes([b, Node(input=a, compute_fn=lambda v: v[b][60]["close"], name="x")])

    result = trace(Sneaky)
    (err,) = [d for d in result.diagnostics if d.severity == "error"]
    assert err.code == "E304" and "'b'" in err.message and err.loc.file == display_path(__file__)


def test_wrong_interval_in_view_is_an_error() -> None:
    # the run-time view holds only the input's own interval: running it opaque would fail on bar one
    class WrongInterval(Strategy):
        def setup(self):
            p = StreamInput(interval=60, period=5, name="price")
            self.add_nodes([p, Node(input=p, compute_fn=lambda v: v["price"]["5m"]["close"], name="sig")])

    (err,) = [d for d in trace(WrongInterval).diagnostics if d.severity == "error"]
    assert err.code == "E304" and "interval 60s, not 300s" in err.message and err.loc.file == display_path(__file__)


def test_missing_column_of_an_upstream_frame_is_an_error() -> None:
    class Missing(Strategy):
        def setup(self):
            p = StreamInput(interval=60, period=5, name="p")
            f = Node(input=p, compute_fn=lambda v: pd.DataFrame({"a": v[p][60].close}), name="f")
            g = Node(input=f, compute_fn=lambda v: v[f][60]["b"], name="g")
            self.add_nodes([g])

    (err,) = [d for d in trace(Missing).diagnostics if d.severity == "error"]
    assert err.code == "E304" and "no column 'b'" in err.message and err.loc.file == display_path(__file__)


def test_a_misspelled_traced_method_is_named_with_a_hint(tmp_path):
    """``rolling(3).meen()`` cannot be traced (it is not a method); the opaque reason says what was
    probably meant, so the typo is visible at compile time, not only when the node runs."""
    import qmtl

    path = tmp_path / "typo.py"
    path.write_text(
        "from qmtl.runtime.sdk import Node, Strategy, StreamInput\n"
        "class T(Strategy):\n"
        "    def setup(self):\n"
        "        p = StreamInput(interval='60s', period=3, name='p')\n"
        "        def fn(view):\n"
        "            return view[p][60]['close'].rolling(3).meen()\n"
        "        def g(view):\n"
        "            return view[p][60]['close'].pct_chnage()\n"
        "        self.add_nodes([p, Node(input=p, compute_fn=fn, name='m'), Node(input=p, compute_fn=g, name='g')])\n")
    compiled = qmtl.compile(path)
    m, g = compiled.module.output("m"), compiled.module.output("g")
    assert m.kind == "opaque" and "Rolling.meen (did you mean .mean?)" in m.reason
    assert g.kind == "opaque" and "Series.pct_chnage (did you mean .pct_change?)" in g.reason
