"""Lowering the IR to a generated Python module: fused Numba kernels plus a Bytewax dataflow.

``generate(module) -> str`` is the source text (what ``qmtl compile --emit py`` prints);
``load(module)`` returns the imported module from the build cache; ``plan(module)`` says which op
runs in which kernel and which node (only opaque ``py_call`` ones) runs per tick.
"""

from .cache import load, module_path
from .generate import digest, generate
from .plan import Plan, plan
from .split import Split, split

__all__ = ["generate", "load", "module_path", "digest", "plan", "Plan", "split", "Split"]
