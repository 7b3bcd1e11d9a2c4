"""Node regions: where each SDK node's window starts and which ops it computes."""

from __future__ import annotations

from qmtl.ir import types as T
from qmtl.ir.module import Output
from qmtl.ir.regions import node_regions, regions_in_dependency_order

from runtime_modules import module, momentum, op, src


def test_momentum_region_holds_the_chain_and_reads_the_source():
    regions = node_regions(momentum())
    price, sig = regions["price"], regions["momentum_signal"]
    assert price.is_source and price.inputs == () and [o.name for o in price.ops] == ["stream_input"]
    assert sig.inputs == ("src",)
    assert [o.result for o in sig.ops] == ["close", "pc", "rm", "zero", "up", "sig", "frame"]
    assert (sig.period, sig.interval, sig.value) == (30, 60, "frame")


def _two_level():
    return module([
        src("a"), src("b", tags=("B",)),
        op("ca", "column", ("a",), name="close"),
        op("cb", "column", ("b",), name="close"),
        op("spread", "sub", ("ca", "cb")),
        op("ma", "rolling_mean", ("spread",), window=3),
        op("dev", "sub", ("spread", "ma")),
        op("mean_dev", "rolling_mean", ("dev",), window=2),
    ], [Output("A", "a", 1, 60, "source"), Output("B", "b", 1, 60, "source"),
        Output("spread", "spread", 5, 60), Output("dev", "dev", 4, 60), Output("smooth", "mean_dev", 3, 60)])


def test_other_outputs_are_boundaries_and_inputs_keep_module_order():
    regions = node_regions(_two_level())
    assert regions["spread"].inputs == ("a", "b")
    assert [o.result for o in regions["spread"].ops] == ["ca", "cb", "spread"]
    # dev reads the spread node's value, so that is a boundary, not recomputed inside
    assert regions["dev"].inputs == ("spread",)
    assert [o.result for o in regions["dev"].ops] == ["ma", "dev"]
    assert regions["smooth"].inputs == ("dev",)
    assert [r.name for r in regions_in_dependency_order(_two_level())] == ["spread", "dev", "smooth"]


def test_shared_op_after_cse_belongs_to_both_regions():
    m = module([
        src(),
        op("close", "column", ("src",), name="close"),
        op("ret", "pct_change", ("close",)),
        op("fast", "rolling_mean", ("ret",), window=3),
        op("slow", "rolling_mean", ("ret",), window=9),
    ], [Output("price", "src", 1, 60, "source"), Output("fast", "fast", 10, 60),
        Output("slow", "slow", 20, 60)])
    regions = node_regions(m)
    assert [o.result for o in regions["fast"].ops] == ["close", "ret", "fast"]
    assert [o.result for o in regions["slow"].ops] == ["close", "ret", "slow"]
    assert regions["fast"].inputs == regions["slow"].inputs == ("src",)


def test_node_with_two_inputs_lists_both_in_module_order():
    m = module([
        src("x"), src("y", tags=("Y",)),
        op("cy", "column", ("y",), name="close"),
        op("cx", "column", ("x",), name="close"),
        op("r", "div", ("cy", "cx"), T.F64),
    ], [Output("x", "x", 1, 60, "source"), Output("y", "y", 1, 60, "source"), Output("ratio", "r", 2, 60)])
    assert node_regions(m)["ratio"].inputs == ("x", "y")
