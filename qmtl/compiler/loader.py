"""``load_strategy(path, name)``: import a strategy file and pick its ``Strategy`` class.

The file is imported as a module of its own (a unique name derived from its path, so two files named
``strategy.py`` never collide), with its directory on ``sys.path`` during the import so sibling
helpers import.  Every failure is a ``CompileError`` pointing into the user's file:

* E301 — the file does not parse (file:line:col of the SyntaxError);
* E302 — importing it raised (file:line of the innermost frame in the file, exception type and text);
* E304 — an SDK argument was wrong while importing (a module-level node with a bad interval, …),
  or the code the argument's error class carries (E310 look-ahead, E106 operand type);
* E303 — no ``Strategy`` subclass defined in the file, several and no ``name``, or ``name`` not found.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from blake3 import blake3

from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.ir.module import Loc
from qmtl.runtime.sdk.errors import SDKArgumentError
from qmtl.runtime.sdk.source_location import display_path, traceback_location
from qmtl.runtime.sdk.strategy import Strategy


def load_strategy(path: Path, name: str | None = None) -> type[Strategy]:
    """The ``Strategy`` subclass defined in ``path`` (the one called ``name`` when given)."""
    path = Path(path).resolve()
    shown = display_path(path)
    source = _read(path)
    try:
        code = compile(source, shown, "exec")
    except SyntaxError as err:
        raise CompileError(Diagnostic(
            "E301", f"syntax error: {err.msg}", Loc(shown, err.lineno or 1, err.offset or 0))) from None
    module = _execute(path, code)
    return _pick(path, module, name)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CompileError(Diagnostic("E302", f"cannot read strategy file: {err}", Loc(display_path(path), 0))) from None


def _module_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"qmtl_strategy_{stem}_{blake3(str(path).encode()).hexdigest()[:12]}"


def _execute(path: Path, code: object) -> ModuleType:
    module_name = _module_name(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses, pickling and typing look the module up by name
    directory = str(path.parent)
    sys.path.insert(0, directory)
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the user's strategy file is the point
    except SDKArgumentError as err:
        sys.modules.pop(module_name, None)
        raise CompileError(Diagnostic(err.code, err.reason, err.loc)) from None
    except Exception as err:
        sys.modules.pop(module_name, None)
        shown = display_path(path)
        loc = traceback_location(err.__traceback__, shown) or Loc(shown, 0)
        raise CompileError(Diagnostic(
            "E302", f"{type(err).__name__}: {err} (while importing {path.name})", loc)) from None
    finally:
        if directory in sys.path:
            sys.path.remove(directory)
    return module


def _pick(path: Path, module: ModuleType, name: str | None) -> type[Strategy]:
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, Strategy) and obj is not Strategy
             and obj.__module__ == module.__name__]
    names = ", ".join(cls.__name__ for cls in found)
    if name is not None:
        for cls in found:
            if cls.__name__ == name:
                return cls
        raise CompileError(Diagnostic(
            "E303", f"no Strategy named {name!r} in {path.name} (found: {names or 'none'})",
            Loc(display_path(path), 1)))
    if not found:
        raise CompileError(Diagnostic(
            "E303", f"no Strategy subclass is defined in {path.name}", Loc(display_path(path), 1)))
    if len(found) > 1:
        raise CompileError(Diagnostic(
            "E303", f"{path.name} defines several strategies ({names}); choose one with "
                    f"--strategy NAME (qmtl.compile(path, strategy=NAME) in Python)",
            Loc(display_path(path), _line_of(found[1]))))
    return found[0]


def _line_of(cls: type) -> int:
    try:
        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return 1
