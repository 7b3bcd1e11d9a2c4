"""Golden NodeIDs: five IDs of ``examples/momentum.py`` and ``examples/indicators.py`` pinned as strings.

A NodeID is the identity the gateway, the global strategy graph and every stored artifact key on
(docs/design.md "Identity"), so changing its encoding — the canonical JSON, an op's canonical params,
an attribute default, ``SCHEMA_COMPAT_ID`` — re-keys everything already deployed.  That must be a
deliberate, visible act, not a side effect: this test fails on any such change.

To update after a *deliberate* encoding change: run

    QMTL_HOME=/tmp/qh python -c "import qmtl; [print(f, qmtl.compile(f).node_ids) for f in \
        ('examples/momentum.py', 'examples/indicators.py')]"

paste the new strings below, say in the commit message why the encoding changed, and update the IR
dump in README.md ("Using it"), whose printed prefixes are these IDs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import qmtl

ROOT = Path(__file__).resolve().parents[2]

GOLDEN = {
    ("momentum.py", "price_stream"): "blake3:f5722d8ff4fcd8e20fdea163e5d84c7e0d4de9de5c4649c36e51ae2a00beaf1b",
    ("momentum.py", "momentum_signal"): "blake3:3814b419082556001ba245b6051d8055018d7a83657d1e7712010e0785e6fdfa",
    ("indicators.py", "price"): "blake3:e5e8bf35229cded57449481cf87000e4f1ac1550fcfb4a62ae9c9085faf54fdf",
    ("indicators.py", "trend"): "blake3:8fabbfd792e0eeee51a657a417f8f70d4f8380b8d9aaafe3950c61732a12d3f1",
    ("indicators.py", "bands"): "blake3:0d8c66ced73a289c41a4275fb19e260924c31752446c382964d4e128bbb23bbe",
}

#: one op inside a node too (momentum's ``rolling_mean(pct_change(close), 5)``)
GOLDEN_OP = ("momentum.py", "rolling_mean",
             "blake3:b0a16048cca3c677a4ec95698068391e81a535945ccf3a8685b7d472a2d7aa98")


@pytest.fixture(scope="module")
def compiled():
    return {name: qmtl.compile(ROOT / "examples" / name) for name in ("momentum.py", "indicators.py")}


@pytest.mark.parametrize("example, node", sorted(GOLDEN), ids=lambda x: str(x))
def test_golden_node_id(compiled, example, node):
    assert compiled[example].node_ids[node] == GOLDEN[(example, node)], (
        "the NodeID encoding changed; if deliberate, update GOLDEN (see the module docstring)")


def test_golden_op_id_and_dag_agree(compiled):
    example, op, want = GOLDEN_OP
    c = compiled[example]
    assert {n["node_id"] for n in c.dag["nodes"] if n["op"] == op} == {want}
    dag_ids = {n["node_id"] for n in c.dag["nodes"]}
    assert set(c.node_ids.values()) <= dag_ids


def test_the_two_spellings_of_trend_share_the_golden_id(compiled):
    ids = compiled["indicators.py"].node_ids
    assert ids["trend_traced"] == ids["trend"] == GOLDEN[("indicators.py", "trend")]
