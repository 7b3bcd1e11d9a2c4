"""Type spelling, shared by the printer, the parser and the DAG document: ``str(t)`` and back."""

from __future__ import annotations

import re

from .types import Type

_SIMPLE = re.compile(r"^(series|scalar)<(f64|i64|bool)>$")
_FRAME = re.compile(r"^frame<(.*)>$")


def parse_type(text: str) -> Type:
    text = text.strip()
    if text in ("bars", "opaque"):
        return Type(text)
    m = _SIMPLE.match(text)
    if m:
        return Type(m.group(1), m.group(2))
    m = _FRAME.match(text)
    if m:
        cols = []
        for part in filter(None, (p.strip() for p in m.group(1).split(","))):
            name, _, dtype = part.partition(":")
            cols.append((name.strip(), dtype.strip()))
        return Type("frame", None, tuple(cols))
    raise ValueError(f"unknown type {text!r}")
