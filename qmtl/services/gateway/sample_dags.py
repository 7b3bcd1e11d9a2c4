"""Synthetic but genuine DAG documents, built as IR modules and hashed by the real ``to_dag``.

Tests and the load benchmark need many distinct strategies without a frontend in the loop; building
the IR by hand and going through ``qmtl.ir.dag.to_dag`` keeps every NodeID honest.
"""

from __future__ import annotations

from typing import Any

from qmtl.ir import types as T
from qmtl.ir.dag import to_dag
from qmtl.ir.lookback import output_required_period
from qmtl.ir.module import Module, Op, Output, make_attrs
from qmtl.ir.nodeid import with_node_ids

_WINDOWED = ("rolling_mean", "rolling_max", "rolling_min", "rolling_sum")


def _op(result: str, opname: str, operands: tuple[str, ...] = (), type_: T.Type = T.F64,
        **attrs: Any) -> Op:
    return Op(result, opname, operands, make_attrs(attrs), type_)


def source_ops(symbol: str, interval: int = 60) -> list[Op]:
    """A price stream for ``symbol`` and its close column: the sub-DAG strategies on it share."""
    return [_op("src", "stream_input", type_=T.BARS, tags=(symbol, "price"), interval=interval),
            _op("close", "column", ("src",), name="close")]


def chain_module(name: str, n_nodes: int, seed: int = 0, symbol: str = "BTC",
                 interval: int = 60) -> Module:
    """A strategy of exactly ``n_nodes`` ops: a shared source, then rolling stats and arithmetic.

    ``seed`` changes the window lengths, so two seeds give disjoint NodeIDs after the source; the
    same (symbol, interval) always gives the same two source nodes, which is the reuse case.
    """
    if n_nodes < 3:
        raise ValueError("a chain strategy needs at least 3 nodes (source, column, one op)")
    ops = source_ops(symbol, interval)
    prev = "close"
    for i in range(n_nodes - 2):
        result = f"v{i}"
        if i % 3 == 2:
            ops.append(_op(result, "sub", (prev, ops[-2].result)))
        else:
            stat = _WINDOWED[i % len(_WINDOWED)]
            ops.append(_op(result, stat, (prev,), window=2 + (seed * 7 + i) % 50 + seed * 50))
        prev = result
    draft = Module(name, tuple(ops), (Output("signal", prev, period=1, interval=interval),))
    # The period the look-back needs, so the document is one lint and the gateway both accept.
    period = output_required_period(draft, draft.outputs[0])
    return Module(name, tuple(ops), (Output("signal", prev, period=period, interval=interval),))


def chain_dag(name: str, n_nodes: int, seed: int = 0, symbol: str = "BTC",
              interval: int = 60) -> dict[str, Any]:
    """The DAG document of ``chain_module`` (what ``qmtl compile --emit json`` would print)."""
    return to_dag(with_node_ids(chain_module(name, n_nodes, seed, symbol, interval)))
