"""The JSON guard parses each body once: its quick path (pydantic-core's parser, a walk without paths)
must refuse exactly what the exact path refuses, and hand the route the same document."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, strategies as st

from qmtl.services.request_guard import (INT64_MAX, INT64_MIN, MAX_JSON_DEPTH, NOT_CHECKED, InputError,
                                         check_json, checked_json)

scalars = st.one_of(st.none(), st.booleans(), st.text(alphabet=st.sampled_from("ab\x00é")),
                    st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(alphabet=st.sampled_from("k\x00"), max_size=2), inner, max_size=4)),
    max_leaves=30)


def acceptable(value: Any, depth: int = 0) -> bool:
    """The rules, spelled out independently of the guard."""
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return all("\x00" not in k and acceptable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(acceptable(v, depth + 1) for v in value)
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    return math.isfinite(value)


@given(documents)
def test_refuses_exactly_what_the_rules_refuse_and_returns_the_document(doc: Any) -> None:
    body = json.dumps(doc).encode()
    if acceptable(doc):
        assert check_json(body) == json.loads(body)
    else:
        with pytest.raises(InputError):
            check_json(body)


@pytest.mark.parametrize("leaf", ['1', '"s"', '{"k": "s"}', '[]'])
@pytest.mark.parametrize("depth, ok", [(MAX_JSON_DEPTH - 1, True), (MAX_JSON_DEPTH, True),
                                       (MAX_JSON_DEPTH + 1, False), (500, False)])
def test_depth_bound_on_both_paths(depth: int, ok: bool, leaf: str) -> None:
    """A value more than ``MAX_JSON_DEPTH`` containers deep is refused, whatever it is."""
    ok = ok if leaf not in ('{"k": "s"}',) else depth < MAX_JSON_DEPTH  # the object adds a level
    ok = ok if leaf != "[]" else depth <= MAX_JSON_DEPTH  # an empty container has no deeper value
    body = ("[" * depth + leaf + "]" * depth).encode()
    if ok:
        assert check_json(body) == json.loads(body)
    else:
        with pytest.raises(InputError, match="nested deeper"):
            check_json(body)


def test_checked_document_is_given_only_for_the_body_it_came_from() -> None:
    body = b'{"a": [1, 2]}'
    scope = {"qmtl.checked_json": (body, check_json(body))}
    assert checked_json(scope, body) == {"a": [1, 2]}
    assert checked_json(scope, b'{"a": [1, 3]}') is NOT_CHECKED
    assert checked_json({}, body) is NOT_CHECKED
