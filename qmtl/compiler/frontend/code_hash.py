"""``code_hash`` of an opaque compute function (DESIGN.md "Identity").

The hash covers the function's normalised AST — ``ast.dump`` without positions, docstring,
annotations, decorators or the function's own name, so formatting and comments do not matter — with
every free name replaced by what it is bound to:

* an SDK node → its NodeID (renaming the variable cannot move an ID);
* a constant (number, string, bool, None, or a tuple/list/dict/set of constants) → its value;
* a module → its name; a function → recursively its code hash; a class/builtin → its qualified name;
* anything else has no canonical form: the hash records only its type and the function is marked
  non-deterministic (lint reports E111).

Default argument values are hashed the same way.  When the source is unavailable (code built with
``exec``), the bytecode stands in for the AST: deterministic for one Python version only.
"""

from __future__ import annotations

import ast
import copy
import enum
import functools
import inspect
import json
import os
import sys
import sysconfig
import linecache
import textwrap
import types
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from qmtl.ir.nodeid import canonical_bytes, canonical_value, digest
from qmtl.runtime.sdk.expr import Expr
from qmtl.runtime.sdk.nodes import Node


@dataclass(frozen=True)
class CodeHash:
    value: str
    deterministic: bool
    # free names / defaults whose values have no canonical form, for the lint message
    problems: tuple[str, ...] = ()


@dataclass
class _Context:
    node_identity: Callable[[Node], str | None]
    problems: list[str] = field(default_factory=list)
    visiting: set[int] = field(default_factory=set)


def code_hash(fn: Callable[..., Any], node_identity: Callable[[Node], str | None]) -> CodeHash:
    """Hash ``fn``; ``node_identity(node)`` gives an SDK node's NodeID (``None`` if not known yet).

    A hash that misses part of what the function reads (``deterministic`` False) is made unique to
    this call: two such functions must never share a NodeID — their values may differ — so nothing
    merges them, reuses a stored value of one for the other, or calls one in the other's place."""
    ctx = _Context(node_identity)
    value = _callable_hash(fn, ctx)
    if ctx.problems:
        value = digest(canonical_bytes({"unstable": value, "nonce": uuid.uuid4().hex}))
    return CodeHash(value, not ctx.problems, tuple(dict.fromkeys(ctx.problems)))


def _callable_hash(fn: Any, ctx: _Context) -> str:
    """Plain functions by their code; a bound method by its function and its instance (whose state
    has no canonical form unless it is a plain value); ``functools.partial`` by its function and
    bound arguments; any other callable object is noted as unhashable."""
    if isinstance(fn, types.FunctionType):
        return _function_hash(fn, ctx)
    if isinstance(fn, types.MethodType):
        owner = _canonical(fn.__self__, ctx, f"the instance {fn.__func__.__name__} is bound to")
        return digest(canonical_bytes({"method": _callable_hash(fn.__func__, ctx), "self": owner}))
    if isinstance(fn, functools.partial):
        return digest(canonical_bytes({"partial": _callable_hash(fn.func, ctx),
                                       "args": [_canonical(a, ctx, "partial argument") for a in fn.args],
                                       "kwargs": {k: _canonical(v, ctx, f"partial argument {k}")
                                                  for k, v in sorted(fn.keywords.items())}}))
    ctx.problems.append(f"the callable object {type(fn).__name__} (its state is not hashed)")
    return digest(canonical_bytes({"callable": _qualname(type(fn))}))


def _function_hash(fn: Any, ctx: _Context) -> str:
    ctx.visiting.add(id(fn))
    try:
        code = fn.__code__
        bindings = _free_bindings(fn)
        local_names = _local_names(code)
        tree = _function_ast(fn)
        used: dict[str, Any] = {}
        if tree is not None:
            body = _Substitute(bindings, local_names, ctx, fn.__name__).visit(tree)
            shape = ast.dump(body, include_attributes=False)
        else:
            shape = _bytecode_shape(code)
            used = {name: _canonical(bindings[name], ctx, name)
                    for name in sorted(bindings) if name not in local_names}
        payload = {
            "ast": shape, "bindings": used,
            "defaults": [_canonical(v, ctx, f"{fn.__name__} default") for v in (fn.__defaults__ or ())],
            "kwdefaults": {k: _canonical(v, ctx, f"{fn.__name__} default {k}")
                           for k, v in sorted((fn.__kwdefaults__ or {}).items())},
        }
        return digest(canonical_bytes(payload))
    finally:
        ctx.visiting.discard(id(fn))


class _Substitute(ast.NodeTransformer):
    """Free names → ``Name(id="$<canonical JSON of the bound value>")``."""

    def __init__(self, bindings: dict[str, Any], local_names: set[str], ctx: _Context, fn_name: str):
        self._bindings, self._locals, self._ctx, self._fn = bindings, local_names, ctx, fn_name

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        """``module.NAME``: a plain value (``cfg.THRESH``, ``np.pi``) is hashed by value; in the user's
        own modules (not the standard library or installed packages) anything else is hashed as a
        free name would be — a function by its code, a class by its source, other objects are noted
        (E111) — so editing a helper module changes the NodeIDs that use it.  A library's functions
        and classes stay names (``pd.concat``: the library's code is not the strategy's)."""
        base = node.value
        if isinstance(base, ast.Name) and base.id not in self._locals and \
                isinstance(self._bindings.get(base.id), types.ModuleType):
            module = self._bindings[base.id]
            value = getattr(module, node.attr, None)
            if _is_plain(value) or (_is_user_code(module) and not isinstance(value, types.ModuleType)):
                canon = _canonical(value, self._ctx, f"{base.id}.{node.attr}")
                return ast.Name(id="$" + json.dumps(canon, sort_keys=True, separators=(",", ":")), ctx=node.ctx)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self._locals or node.id not in self._bindings:
            return node
        canon = _canonical(self._bindings[node.id], self._ctx, node.id)
        return ast.Name(id="$" + json.dumps(canon, sort_keys=True, separators=(",", ":")), ctx=node.ctx)


# the standard library, installed packages and qmtl itself: code identified by its name
_LIBRARY_PATHS = tuple(sorted({os.path.realpath(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                                for p in [sysconfig.get_paths().get(key)] if p}
                               | {os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))}))


def _is_user_code(obj: Any) -> bool:
    """Whether ``obj`` (a module, class or function) comes from the user's files rather than the
    standard library or an installed package (whose code is identified by its name)."""
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if not path:
        return False  # built in, or made with exec: nothing on disk to differ
    real = os.path.realpath(path)
    return not any(real.startswith(lib + os.sep) for lib in _LIBRARY_PATHS)


def _source_hash(cls: type, ctx: _Context, where: str) -> str:
    """A user class by its source text (methods, class attributes and all)."""
    try:
        return digest(textwrap.dedent(inspect.getsource(cls)).encode())
    except (OSError, TypeError):
        ctx.problems.append(f"{where} (class {cls.__qualname__} without source)")
        return "no-source"


def _is_plain(value: Any) -> bool:
    """A number, string, bool or None, or a tuple/list/frozenset/dict of those."""
    if value is None or isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)):
        return True
    if isinstance(value, (tuple, list, frozenset, set)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _canonical(value: Any, ctx: _Context, where: str) -> Any:
    """A JSON-able stand-in for a bound value; values without one are noted in ``ctx.problems``."""
    if isinstance(value, Node):
        node_id = ctx.node_identity(value)
        return ["node", node_id] if node_id else ["node", value.kind, value.name]
    if isinstance(value, Expr):
        return ["expr", _expr_shape(value, ctx)]
    if isinstance(value, enum.Enum):
        return ["enum", _qualname(type(value)), _canonical(value.value, ctx, where)]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return canonical_value(value)
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return canonical_value(value.item())
    if isinstance(value, (tuple, list)):
        return [_canonical(v, ctx, where) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_canonical(v, ctx, where) for v in value]
        return ["set", sorted(items, key=lambda x: json.dumps(x, sort_keys=True))]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _canonical(v, ctx, where) for k, v in value.items()}
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, types.FunctionType):
        if id(value) in ctx.visiting:
            return ["recursive", value.__qualname__]
        return ["function", _function_hash(value, ctx)]
    if isinstance(value, type) and _is_user_code(value):
        return ["class", _qualname(value), _source_hash(value, ctx, where)]
    if isinstance(value, (types.BuiltinFunctionType, np.ufunc, type)):
        return ["builtin", _qualname(value)]
    ctx.problems.append(f"{where} ({type(value).__name__})")
    return ["opaque", _qualname(type(value))]


def _expr_shape(e: Expr, ctx: _Context) -> Any:
    if e.op == "node_ref":
        return _canonical(e.node, ctx, "expression")
    return [e.op, canonical_value({k: v for k, v in e.attrs.items()}),
            [_expr_shape(a, ctx) for a in e.args]]


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or ''}.{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"


# --- what the function's free names are bound to --------------------------------------------------

def _free_bindings(fn: types.FunctionType) -> dict[str, Any]:
    out: dict[str, Any] = {}
    builtins = fn.__globals__.get("__builtins__", {})
    builtins = builtins.__dict__ if isinstance(builtins, types.ModuleType) else builtins
    for name in _global_names(fn.__code__):
        if name in fn.__globals__:
            out[name] = fn.__globals__[name]
        elif name in builtins:
            out[name] = builtins[name]
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            out[name] = cell.cell_contents
        except ValueError:
            out[name] = None
    return out


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _local_names(code: types.CodeType) -> set[str]:
    """Names bound inside the function or any function/comprehension nested in it."""
    names = set(code.co_varnames) | set(code.co_cellvars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _local_names(const)
    return names


# --- the function's own source -----------------------------------------------------------------------

def _function_ast(fn: types.FunctionType) -> ast.AST | None:
    """The normalised AST of ``fn``'s definition, or ``None`` when its source is unavailable."""
    found = _find_definition(fn)
    if found is None:
        return None
    node = copy.deepcopy(found)  # the module tree is cached: normalise a copy
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.name = "_"
        node.decorator_list = []
        node.returns = None
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    for arg in ast.walk(node.args):
        if isinstance(arg, ast.arg):
            arg.annotation = None
    return node


def _find_definition(fn: types.FunctionType) -> ast.AST | None:
    code = fn.__code__
    index = _definitions(code.co_filename)
    if index is None:
        return _standalone_ast(fn)
    candidates = index.get((code.co_name, code.co_firstlineno), [])
    argnames = list(code.co_varnames[:code.co_argcount])
    for node in candidates:
        if [a.arg for a in node.args.args] == argnames:  # type: ignore[attr-defined]
            return node
    return candidates[0] if candidates else None


# (function name or "<lambda>", first line) → definitions there, in ``ast.walk`` order
_DefinitionIndex = dict[tuple[str, int], list[ast.AST]]

# filename → (the linecache line list it was built from, that file's definition index).  Built once
# per file version: walking the whole module for every opaque function made hashing n functions of
# one file cost O(n × file size).  linecache hands back the same list object until the file changes.
_INDEX_CACHE: dict[str, tuple[list[str], _DefinitionIndex | None]] = {}


def _definitions(filename: str) -> _DefinitionIndex | None:
    lines = linecache.getlines(filename)
    if not lines:
        return None
    cached = _INDEX_CACHE.get(filename)
    if cached is not None and cached[0] is lines:
        return cached[1]
    try:
        tree: ast.Module | None = ast.parse("".join(lines))
    except SyntaxError:
        tree = None
    index = _index_definitions(tree) if tree is not None else None
    _INDEX_CACHE[filename] = (lines, index)
    return index


def _index_definitions(tree: ast.Module) -> _DefinitionIndex:
    index: _DefinitionIndex = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            index.setdefault(("<lambda>", node.lineno), []).append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            for line in dict.fromkeys((first, node.lineno)):
                index.setdefault((node.name, line), []).append(node)
    return index


def _standalone_ast(fn: types.FunctionType) -> ast.AST | None:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return node
    return None


def _bytecode_shape(code: types.CodeType) -> Any:
    consts = [_bytecode_shape(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return ["bytecode", code.co_code.hex(), consts, list(code.co_names), list(code.co_varnames)]
