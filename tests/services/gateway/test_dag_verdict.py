"""Issue 8 section 4: one verdict on a DAG document.

Mutated documents go to ``qmtl lint --ssa`` (its DAG-JSON path) and to the running gateway; both must
agree on every one (lint exit 0 <=> the gateway acknowledges), lint must never raise, and the gateway
must never answer 5xx.  The mutants start from two genuine documents: one the compiler made from a
real strategy (with a py_call node and informational meta) and a synthetic chain.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from qmtl.lint import lint_dag_text
from qmtl.compiler.pipeline import compile as compile_strategy
from qmtl.services.gateway.sample_dags import chain_dag
from tests.submit_support import MOMENTUM

Stack = Any
MUTANTS = int(__import__("os").environ.get("QMTL_DAG_MUTANTS", "150"))

# Values that broke lint or slipped past it before (issue 8): wrong types, huge or non-finite numbers,
# deep nesting, ids of other nodes.
NASTY: list[Any] = [5, -1, 0, 2**70, {}, [], None, True, "", "x", "60", 1.5, [[[[[[]]]]]], {"a": {"b": {}}},
                    "blake3:" + "0" * 64, "1e309"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    path = Path(tmp_path_factory.mktemp("verdict")) / "momentum.py"
    path.write_text(MOMENTUM)
    return [compile_strategy(path).dag, chain_dag("verdict", 8, seed=5)]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _set(doc: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def mutate(base: dict, rng: random.Random) -> str:
    """One mutant as JSON text: a value replaced, a key dropped or added, a field of identity touched."""
    doc = copy.deepcopy(base)
    nodes = doc["nodes"]
    kind = rng.randrange(7)
    if kind == 0:  # a non-source node's interval, or the schema_compat_id (both hashed)
        node = rng.choice(nodes[1:])
        node[rng.choice(["interval", "schema_compat_id"])] = rng.choice([120, 1, "qmtl.ops/0"])
    elif kind == 1:  # a meta key that looks like an op attribute
        rng.choice(nodes).setdefault("meta", {})[rng.choice(["window", "period", "interval", "name", "zzz"])] = 99
    elif kind == 2:  # an output renamed, re-periodised or broken
        if doc["outputs"]:
            out = rng.choice(doc["outputs"])
            out[rng.choice(["name", "period", "interval", "node_id", "kind"])] = rng.choice(NASTY + [10_000])
    elif kind == 3:  # drop a key
        path = rng.choice([p for p in _paths(doc) if p and not isinstance(p[-1], int)])
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
    elif kind == 4:  # deep nesting inside params
        deep: Any = 1
        for _ in range(rng.choice([50, 900])):
            deep = [deep]
        rng.choice(nodes)["params"]["x"] = deep
    else:  # any value replaced by a nasty one
        path = rng.choice([p for p in _paths(doc) if p])
        _set(doc, path, rng.choice(NASTY))
    text = json.dumps(doc)
    return text.replace('"1e309"', "1e309")  # a number JSON can spell but not hold


def test_lint_and_gateway_agree_on_mutated_documents(stack: Stack, bases: list[dict]) -> None:
    stack.make_world("w1")
    rng = random.Random(8)
    disagreements: list[str] = []
    accepted = rejected = 0
    for i in range(MUTANTS):
        text = mutate(bases[i % len(bases)], rng)
        report = lint_dag_text(text, f"mutant{i}.json")  # must not raise
        body = '{"world_ids": ["w1"], "dag": ' + text + "}"
        resp = stack.client.post("/strategies", content=body, headers={"content-type": "application/json"})
        assert resp.status_code < 500, (resp.status_code, resp.text, text[:300])
        lint_ok, gateway_ok = report.exit_code() == 0, resp.status_code in (200, 201)
        accepted += gateway_ok
        rejected += not gateway_ok
        if lint_ok != gateway_ok:
            disagreements.append(f"mutant {i}: lint {'passes' if lint_ok else 'rejects'} "
                                 f"({[d.code for d in report.diagnostics]}), gateway {resp.status_code} "
                                 f"{resp.text[:200]}\n  {text[:400]}")
    assert not disagreements, "\n".join(disagreements[:10])
    assert accepted and rejected  # the mutants exercised both verdicts


def test_the_unmutated_documents_pass_both(stack: Stack, bases: list[dict]) -> None:
    stack.make_world("w1")
    for base in bases:
        assert lint_dag_text(json.dumps(base)).exit_code() == 0
        resp = stack.client.post("/strategies", json={"dag": base, "world_ids": ["w1"]})
        assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("field, value, code", [
    ("interval", 120, "E_NODE_ID_MISMATCH"),  # a non-source node's interval is hashed
    ("schema_compat_id", "qmtl.ops/0", "E_NODE_ID_MISMATCH"),
])
def test_tampered_identity_fields_are_rejected_by_both(stack: Stack, bases, field: str, value, code: str) -> None:
    stack.make_world("w1")
    doc = copy.deepcopy(bases[1])
    doc["nodes"][3][field] = value
    assert lint_dag_text(json.dumps(doc)).exit_code() == 1
    resp = stack.client.post("/strategies", json={"dag": doc, "world_ids": ["w1"]})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == code


def test_meta_is_not_read_as_op_attributes(stack: Stack, bases) -> None:
    """A ``meta`` key named like an identity attribute changes nothing: both accept, same strategy."""
    stack.make_world("w1")
    plain = stack.client.post("/strategies", json={"dag": bases[1], "world_ids": ["w1"]}).json()
    doc = copy.deepcopy(bases[1])
    doc["nodes"][3]["meta"] = {"window": 999, "zzz": 1}
    assert lint_dag_text(json.dumps(doc)).exit_code() == 0
    resp = stack.client.post("/strategies", json={"dag": doc, "world_ids": ["w1"]})
    assert resp.status_code == 200 and resp.json()["strategy_id"] == plain["strategy_id"]


def test_outputs_are_part_of_strategy_identity(stack: Stack, bases) -> None:
    stack.make_world("w1")
    base = bases[1]
    first = stack.client.post("/strategies", json={"dag": base, "world_ids": ["w1"]}).json()
    again = stack.client.post("/strategies", json={"dag": base, "world_ids": ["w1"]}).json()
    assert again["strategy_id"] == first["strategy_id"] and again["created"] is False
    for change in ({"period": base["outputs"][0]["period"] + 5}, {"name": "renamed"}):
        doc = copy.deepcopy(base)
        doc["outputs"][0].update(change)
        resp = stack.client.post("/strategies", json={"dag": doc, "world_ids": ["w1"]})
        assert resp.status_code == 201, resp.text
        sid = resp.json()["strategy_id"]
        assert sid != first["strategy_id"] and resp.json()["checksum"] == first["checksum"]
        stored = stack.client.get(f"/strategies/{sid}").json()
        assert stored["dag"]["outputs"][0][next(iter(change))] == next(iter(change.values()))
    short = copy.deepcopy(base)
    short["outputs"][0]["period"] = 1  # shorter than the look-back: both refuse it (E109)
    assert [d.code for d in lint_dag_text(json.dumps(short)).diagnostics] == ["E109"]
    resp = stack.client.post("/strategies", json={"dag": short, "world_ids": ["w1"]})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "E_DAG_INVALID"
