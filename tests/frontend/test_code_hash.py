"""code_hash: formatting, comments and closure variable names do not matter; constants do."""

from __future__ import annotations

import random
import textwrap
import types

import numpy as np

from qmtl.compiler.frontend.code_hash import code_hash
from qmtl.runtime.sdk import StreamInput


def make(source: str, **bindings) -> types.FunctionType:
    """Define the last function in ``source`` in a fresh module namespace, closing over ``bindings``."""
    outer = "def _outer(" + ", ".join(bindings) + "):\n" + textwrap.indent(textwrap.dedent(source), "    ")
    outer += f"\n    return {source.strip().split('(')[0].split()[-1]}\n"
    namespace: dict = {"np": np}
    filename = f"<gen-{abs(hash(outer))}>"
    import linecache
    linecache.cache[filename] = (len(outer), None, outer.splitlines(True), filename)
    exec(compile(outer, filename, "exec"), namespace)
    return namespace["_outer"](**bindings)


IDENTITIES = {}


def ident(node):
    return IDENTITIES.get(id(node))


def test_comments_whitespace_and_docstrings_do_not_matter() -> None:
    a = make("def f(view):\n    return view[p][60]['close'].rank() * 2\n", p=1)
    b = make('def f(view):\n    """Doc."""\n    # a comment\n    return (view[p][60]["close"]\n'
             '            .rank()   *   2)\n', p=1)
    assert code_hash(a, ident).value == code_hash(b, ident).value


def test_renaming_a_closure_node_does_not_matter_but_another_node_does() -> None:
    price, other = StreamInput(interval=60), StreamInput(interval=60)
    IDENTITIES[id(price)] = "blake3:aaa"
    IDENTITIES[id(other)] = "blake3:bbb"
    a = make("def f(view):\n    return view[price][60].close.rank()\n", price=price)
    b = make("def g(view):\n    return view[px][60].close.rank()\n", px=price)
    c = make("def f(view):\n    return view[price][60].close.rank()\n", price=other)
    assert code_hash(a, ident).value == code_hash(b, ident).value
    assert code_hash(a, ident).value != code_hash(c, ident).value


def test_a_changed_constant_changes_the_hash() -> None:
    a = make("def f(view):\n    return view.x.rolling(n).mean()\n", n=5)
    b = make("def f(view):\n    return view.x.rolling(n).mean()\n", n=6)
    c = make("def f(view):\n    return view.x.rolling(5).mean()\n")
    d = make("def f(view):\n    return view.x.rolling(6).mean()\n")
    assert code_hash(a, ident).value != code_hash(b, ident).value
    assert code_hash(c, ident).value != code_hash(d, ident).value
    e = make("def f(view, k=3):\n    return k\n")
    f = make("def f(view, k=4):\n    return k\n")
    assert code_hash(e, ident).value != code_hash(f, ident).value


def test_helper_functions_hash_recursively() -> None:
    helper1 = make("def h(x):\n    return x + 1\n")
    helper2 = make("def h(x):\n    return x + 2\n")
    a = make("def f(view):\n    return helper(view)\n", helper=helper1)
    b = make("def f(view):\n    return helper(view)\n", helper=helper2)
    assert code_hash(a, ident).value != code_hash(b, ident).value
    assert code_hash(a, ident).deterministic


def test_non_canonical_closure_value_is_not_deterministic() -> None:
    fn = make("def f(view):\n    return rng.random()\n", rng=random.Random(1))
    h = code_hash(fn, ident)
    assert not h.deterministic and any("rng" in p for p in h.problems)
    ok = make("def f(view):\n    return np.log(cfg['k'])\n", cfg={"k": (1, 2.5, None, "x")})
    assert code_hash(ok, ident).deterministic


def test_module_globals_hash_by_name() -> None:
    fn = make("def f(view):\n    return np.sqrt(view)\n")
    assert code_hash(fn, ident).deterministic


def test_trace_uses_upstream_node_ids_for_closure_nodes() -> None:
    from .helpers import one_node, opaque_op

    def f(view):
        return view[price][60]["close"].rank()

    price = StreamInput(tags=["btc"], interval=60, period=30, name="price")
    first = opaque_op(one_node(f, price=price), "sig").attr("code_hash")
    price2 = StreamInput(tags=["eth"], interval=60, period=30, name="price")
    price = price2  # f's closure now reads a node over other data: a different identity
    second = opaque_op(one_node(f, price=price2), "sig").attr("code_hash")
    assert first != second
