"""Parse the IR text form back into a ``Module``: ``parse_module(text, path) -> Module``.

The grammar (``grammar.lark``, shipped as package data) is LALR(1) and the tree is built by an
inline transformer, so lark never materialises a parse tree (DESIGN.md: LALR parses ~10–19k lines/s,
Earley is 10–25× slower).  The Lark object is built once per process.

The parser is syntactic: unknown ops, undefined values and mistyped operands parse fine, because lint
must be able to read broken text and report on it (``qmtl.ir.verifier``).  Every failure — a lark
exception, a bad string escape, an output missing ``period`` — becomes ``IRSyntaxError``, a
``CompileError`` carrying one ``Diagnostic`` with code E001 and the ``path:line:col`` of the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .diagnostics import CompileError, Diagnostic
from .module import Loc, Module, Op, Output
from .types import Type

SYNTAX_ERROR = "E001"
MAX_NESTING = 32  # list attributes deeper than this are refused
_OUTPUT_ATTRS = {"interval": int, "period": int, "kind": str, "reason": str, "inputs": tuple, "tags": tuple}


class IRSyntaxError(CompileError):
    """The IR text could not be read; ``diagnostic`` says where and why (code E001)."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic)
        self.diagnostic = diagnostic

    @property
    def loc(self) -> Loc:
        assert self.diagnostic.loc is not None
        return self.diagnostic.loc


@dataclass(frozen=True, slots=True)
class TextLocs:
    """Where each op and output sits in the IR text (same order as ``Module.ops`` / ``outputs``).

    ``Op.loc`` points into the user's strategy file; lint of an IR file wants the text position
    instead, so ``parse_module_with_locs`` returns both and ``verify(..., text_locs=…)`` uses these.
    """

    ops: tuple[Loc, ...]
    outputs: tuple[Loc, ...]


def parse_module(text: str, path: str = "<input>") -> Module:
    """Parse one ``module @name { … }``; raises ``IRSyntaxError`` (E001) with a location on bad text."""
    return parse_module_with_locs(text, path)[0]


def parse_module_with_locs(text: str, path: str = "<input>") -> tuple[Module, TextLocs]:
    """``parse_module`` plus the text position of every op and output (for lint diagnostics)."""
    module, locs = _parse(text, path, "module")
    # The transformer is shared per process and does not know the path; fill it in here.
    return module, TextLocs(tuple(Loc(path, at.line, at.col) for at in locs.ops),
                            tuple(Loc(path, at.line, at.col) for at in locs.outputs))


def parse_type(text: str, path: str = "<input>") -> Type:
    """Parse a type spelling: ``bars``, ``opaque``, ``series<f64>``, ``frame<a: f64, b: i64>``."""
    return _parse(text, path, "type")


def _parse(text: str, path: str, start: str) -> Any:
    try:
        return _lark().parse(text, start=start)
    except _FailAt as fail:
        raise _syntax_error(path, fail.line, fail.column, fail.message) from None
    except UnexpectedInput as e:
        line, column = _error_position(e, text)
        raise _syntax_error(path, line, column, _describe(e, text)) from None
    except (LarkError, ValueError, TypeError, RecursionError) as e:
        # Defensive: anything not raised with a position is reported at the start of the text.
        raise _syntax_error(path, 1, 1, f"cannot parse IR: {e}") from None


def _error_position(e: UnexpectedInput, text: str) -> tuple[int, int]:
    """Where to point: lark places end-of-input at the last token; the user wants the end of the text."""
    if _at_end(e) or e.line is None or e.line < 1:
        return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1
    return e.line, max(e.column, 1)


def _at_end(e: UnexpectedInput) -> bool:
    return isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END")


def _syntax_error(path: str, line: int, column: int, message: str) -> IRSyntaxError:
    return IRSyntaxError(Diagnostic(SYNTAX_ERROR, message, Loc(path, line, column)))


@cache
def _lark() -> Lark:
    grammar = resources.files("qmtl.ir").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", start=["module", "type"],
                transformer=_BuildIR(), maybe_placeholders=False)


# --- error messages --------------------------------------------------------------------------------

_READABLE = {
    "VALUE": "a value name like %x", "SYMBOL": "a name like @x", "IDENT": "a name", "STRING": "a string",
    "INT": "an integer", "FLOAT": "a float", "NODE_ID": "a node id like blake3:…", "$END": "end of input",
    "<END-OF-FILE>": "end of input",
}


def _describe(e: UnexpectedInput, text: str) -> str:
    """"expected one of …, after …, got …" — with lark's terminal names turned into what they spell."""
    if isinstance(e, UnexpectedToken):
        got = "end of input" if e.token.type == "$END" else repr(str(e.token))
        expected = e.expected
    elif isinstance(e, UnexpectedCharacters):
        got = repr(text[e.pos_in_stream]) if 0 <= e.pos_in_stream < len(text) else "end of input"
        expected = e.allowed or set()
    else:
        got, expected = "end of input", set(getattr(e, "expected", ()) or ())
    where = _before(text, len(text) if _at_end(e) else getattr(e, "pos_in_stream", None))
    return f"expected {_one_of(expected)}{where}, got {got}"


def _one_of(expected: Any) -> str:
    names = sorted({_terminal_text(t) for t in expected})
    if not names:
        return "something else"
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def _terminal_text(term: str) -> str:
    if term in _READABLE:
        return _READABLE[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term
    return repr(pattern.value) if pattern.type == "str" else term


def _before(text: str, pos: int | None) -> str:
    if pos is None or pos <= 0:
        return ""
    tail = text[:pos].rstrip().rsplit("\n", 1)[-1].strip()
    if not tail:
        return ""
    return " after " + repr(tail if len(tail) <= 30 else "…" + tail[-29:])


# --- building the module ------------------------------------------------------------------------------

class _FailAt(Exception):
    """A semantic-value error found while building (bad escape, bad dtype), with its position."""

    def __init__(self, where: Token, message: str):
        super().__init__(message)
        self.line = getattr(where, "line", None) or 1
        self.column = getattr(where, "column", None) or 1
        self.message = message


def _string(tok: Token) -> str:
    try:
        return json.loads(tok)
    except ValueError as e:
        raise _FailAt(tok, f"bad string {str(tok)!r}: {e}") from None


def _unquote(tok: Token, sigil: str = "") -> Token:
    """The name a ``%x`` / ``@"x"`` / ``"x"`` / ``x`` token spells, keeping its position."""
    raw = tok[len(sigil):]
    value = _string(Token(tok.type, raw, line=tok.line, column=tok.column)) if raw.startswith('"') else raw
    return Token.new_borrow_pos(tok.type, value, tok)


def _int(tok: Token) -> int:
    try:
        return int(tok)
    except ValueError as e:  # e.g. more digits than Python's int-conversion limit
        raise _FailAt(tok, f"bad integer: {e}") from None


@v_args(inline=True)
class _BuildIR(Transformer):
    """Inline transformer: each method builds the IR value of one grammar rule."""

    def module(self, symbol: Token, *items: tuple[str, Any, Loc]) -> tuple[Module, TextLocs]:
        ops = [(v, at) for kind, v, at in items if kind == "op"]
        outs = [(v, at) for kind, v, at in items if kind == "output"]
        module = Module(str(_unquote(symbol, "@")), tuple(o for o, _ in ops), tuple(o for o, _ in outs))
        return module, TextLocs(tuple(at for _, at in ops), tuple(at for _, at in outs))

    def op_def(self, result: Token, name: Token, operands: tuple[str, ...], *rest: Any):
        attrs: tuple = ()
        rest_list = list(rest)
        if rest_list and isinstance(rest_list[0], _Attrs):
            attrs = rest_list.pop(0).items
        bad = next((k for k, v in attrs if _has_ref(v)), None)
        if bad is not None:
            raise _FailAt(name, f"attribute {bad!r} of %{_unquote(result, '%')} holds a value reference; "
                                "only an output's inputs may name values")
        type_, *tail = rest_list
        loc = next((x for x in tail if isinstance(x, Loc)), None)
        node_id = next((x for x in tail if isinstance(x, str)), None)
        op = Op(result=str(_unquote(result, "%")), name=str(name), operands=operands, attrs=attrs,
                type=type_, loc=loc, node_id=node_id)
        return "op", op, _here(result)

    def operands(self, *values: Token) -> tuple[str, ...]:
        return tuple(str(_unquote(v, "%")) for v in values)

    def output_def(self, keyword: Token, symbol: Token, value: Token, attrs: "_Attrs | None" = None):
        fields = dict(attrs.items) if attrs else {}
        inputs = fields.get("inputs", ())
        if not isinstance(inputs, tuple) or not all(isinstance(v, _ValueRef) for v in inputs):
            raise _FailAt(symbol, f"output {symbol}: inputs must be a list of value names like [%a, %b]")
        bad = next((k for k, v in fields.items() if k != "inputs" and _has_ref(v)), None)
        tags = fields.get("tags", ())
        if not all(isinstance(t, str) for t in tags):
            raise _FailAt(symbol, f"output {symbol}: tags must be a list of strings")
        if bad is not None:
            raise _FailAt(symbol, f"output {symbol}: attribute {bad!r} cannot name a value")
        for key, expected in _OUTPUT_ATTRS.items():
            if key in fields and (type(fields[key]) is not expected):
                raise _FailAt(symbol, f"output attribute {key!r} must be {expected.__name__}, "
                                      f"got {fields[key]!r}")
        unknown = sorted(set(fields) - set(_OUTPUT_ATTRS))
        missing = [k for k in ("interval", "period") if k not in fields]
        if unknown or missing:
            problem = f"unknown attribute {unknown[0]!r}" if unknown else f"missing attribute {missing[0]!r}"
            raise _FailAt(symbol, f"output {symbol}: {problem} (outputs take interval, period, kind, reason, inputs, tags)")
        out = Output(name=str(_unquote(symbol, "@")), value=str(_unquote(value, "%")),
                     period=fields["period"], interval=fields["interval"],
                     kind=fields.get("kind", "traced"), reason=fields.get("reason", ""),
                     inputs=tuple(v.name for v in inputs), tags=tuple(sorted(set(tags))))
        return "output", out, _here(keyword)

    def attr_dict(self, *attrs: tuple[Token, Any]) -> "_Attrs":
        seen: set[str] = set()
        for key, _ in attrs:
            if str(key) in seen:
                raise _FailAt(key, f"attribute {str(key)!r} given twice")
            seen.add(str(key))
        return _Attrs(tuple(sorted(((str(k), v) for k, v in attrs), key=lambda kv: kv[0])))

    def attr(self, key: Token, value: Any) -> tuple[Token, Any]:
        return key, value

    def name(self, tok: Token) -> Token:
        return _unquote(tok)

    # attribute values
    def int_value(self, tok: Token) -> int:
        return _int(tok)

    def float_value(self, tok: Token) -> float:
        return float(tok)

    def string_value(self, tok: Token) -> str:
        return _string(tok)

    def true_value(self) -> bool:
        return True

    def false_value(self) -> bool:
        return False

    def none_value(self) -> None:
        return None

    def value_ref(self, tok: Token) -> "_ValueRef":
        return _ValueRef(str(_unquote(tok, "%")))

    def list_value(self, bracket: Token, *items: Any) -> tuple:
        # Deeper nesting would make printing, hashing and verifying recurse past Python's limit.
        if any(_nesting(x) >= MAX_NESTING for x in items):
            raise _FailAt(bracket, f"lists nested more than {MAX_NESTING} deep")
        return tuple(items)

    # types
    def bars_type(self, _kw: Token) -> Type:
        return Type("bars")

    def opaque_type(self, _kw: Token) -> Type:
        return Type("opaque")

    def series_type(self, kw: Token, dtype: Token) -> Type:
        return _numeric_type(kw, dtype)

    def scalar_type(self, kw: Token, dtype: Token) -> Type:
        return _numeric_type(kw, dtype)

    def frame_type(self, _kw: Token, *cols: tuple[str, str]) -> Type:
        return Type("frame", None, tuple(cols))

    def frame_col(self, col: Token, dtype: Token) -> tuple[str, str]:
        return str(col), str(dtype)

    # trailers
    def loc(self, kw: Token, file: Token, line: Token, col: Token | None = None) -> Loc:
        return Loc(_string(file), _int(line), _int(col) if col is not None else 0)

    def node_id(self, tok: Token) -> str:
        return _string(tok) if tok.type == "STRING" else str(tok)


@dataclass(frozen=True, slots=True)
class _Attrs:
    """Marks a parsed ``{…}`` so ``op_def`` can tell it from the optional parts that follow."""

    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class _ValueRef:
    """A ``%x`` inside an attribute list: legal only in an output's ``inputs``."""

    name: str


def _has_ref(value: Any) -> bool:
    if isinstance(value, _ValueRef):
        return True
    return isinstance(value, tuple) and any(_has_ref(x) for x in value)


def _nesting(value: Any) -> int:
    """How deep tuples nest in ``value`` (children are already checked, so this stays shallow)."""
    if not isinstance(value, tuple):
        return 0
    return 1 + max((_nesting(x) for x in value), default=0)


def _numeric_type(kw: Token, dtype: Token) -> Type:
    try:
        return Type(str(kw), str(dtype))
    except ValueError as e:
        raise _FailAt(dtype, str(e)) from None


def _here(tok: Token) -> Loc:
    return Loc("", tok.line or 0, tok.column or 0)
