"""setup() failures, bad SDK arguments, defaults and node naming."""

from __future__ import annotations

import inspect

from qmtl.runtime.sdk.source_location import display_path
from qmtl.compiler.frontend import trace
from qmtl.runtime.sdk import MatchMode, Node, StreamInput, Strategy, TagQueryNode


def line_of(marker: str) -> int:
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    return next(i + 1 for i, text in enumerate(lines) if marker in text and "line_of(" not in text)


def only_error(result):
    errs = [d for d in result.diagnostics if d.severity == "error"]
    assert len(errs) == 1, [d.format() for d in result.diagnostics]
    return errs[0]


def test_bad_interval_in_setup_is_E304_at_the_users_line() -> None:
    class Bad(Strategy):
        def setup(self):
            self.add_nodes([StreamInput(interval="90 minutes")])  # BAD-INTERVAL

    err = only_error(trace(Bad))
    assert err.code == "E304" and "'90 minutes'" in err.message
    assert err.loc.file == display_path(__file__) and err.loc.line == line_of("# BAD-INTERVAL")


def test_exception_in_setup_is_E302() -> None:
    class Raises(Strategy):
        def setup(self):
            raise LookupError("feed missing")  # RAISES

    err = only_error(trace(Raises))
    assert err.code == "E302" and "LookupError: feed missing" in err.message
    assert err.loc.line == line_of("# RAISES")


def test_duplicate_explicit_names_are_E304() -> None:
    class Dup(Strategy):
        def setup(self):
            a = StreamInput(interval=60, name="x")
            b = StreamInput(interval=60, name="x")  # SECOND
            self.add_nodes([a, b])

    err = only_error(trace(Dup))
    assert err.code == "E304" and err.loc.line == line_of("# SECOND")


def test_auto_names_come_from_variables_functions_and_are_unique() -> None:
    def momentum(view):
        return view["price"][60]["close"].diff()

    class Auto(Strategy):
        default_interval = "1m"
        default_period = 12

        def setup(self):
            price = StreamInput(tags=["btc"])
            self.add_nodes([price, Node(input=price, compute_fn=momentum),
                            Node(input=price, compute_fn=momentum),
                            StreamInput(tags=["eth"])])

    result = trace(Auto)
    outputs = [(o.name, o.interval, o.period) for o in result.module.outputs]
    assert outputs == [("price", 60, 12), ("momentum", 60, 12), ("momentum_2", 60, 12),
                       ("stream_input", 60, 12)]
    assert result.sdk_nodes["price"].tags == ("btc",)
    assert trace(Auto).module == result.module  # deterministic


def test_nodes_inherit_interval_and_period_from_inputs() -> None:
    class Inherit(Strategy):
        def setup(self):
            price = StreamInput(interval="1h", period=48)
            self.add_nodes([Node(expr=price.close.diff(), name="d")])

    out = trace(Inherit).module.output("d")
    assert (out.interval, out.period) == (3600, 48)


def test_missing_interval_is_E304() -> None:
    class NoClock(Strategy):
        def setup(self):
            self.add_nodes([StreamInput(tags=["x"], name="x")])

    err = only_error(trace(NoClock))
    assert err.code == "E304" and "interval" in err.message


def test_tag_query_without_compute_is_a_source_and_tags_are_sorted() -> None:
    class Query(Strategy):
        def setup(self):
            q = TagQueryNode(query_tags=["b", "a"], interval=300, period=3, match_mode="all")
            self.add_nodes([q])

    result = trace(Query)
    (op,) = result.module.ops
    assert op.name == "tag_query" and op.attr_dict == {"tags": ("a", "b"), "match_mode": "all",
                                                       "interval": 300}
    assert result.module.outputs[0].kind == "source"
    assert MatchMode("any") is MatchMode.ANY


def test_trace_accepts_an_instance_and_does_not_duplicate_nodes() -> None:
    class Inst(Strategy):
        def setup(self):
            self.add_nodes([StreamInput(interval=60, name="p")])

    s = Inst()
    s.setup()
    assert len(trace(s).module.ops) == 1
