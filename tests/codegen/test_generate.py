"""The generated module's text and the build cache."""

from __future__ import annotations

import ast
import importlib

from qmtl import codegen
from qmtl.codegen.plan import PyStep, plan

from .modules import Builder, momentum


def test_generated_source_is_valid_python_naming_each_node_above_its_kernel():
    src = codegen.generate(momentum())
    ast.parse(src)
    assert "# kernel 0 (level 0): emits node momentum_signal" in src
    assert "@numba.njit(**JIT)" in src and '"cache": True' in src
    assert "def build_flow(" in src and "op.stateful(" in src


def test_only_py_call_runs_per_tick_and_traced_ops_after_it_run_in_kernels():
    b = Builder("o")
    src = b.source()
    dev = b.op("py_call", src, code_hash="h", period=4, reason="calls apply")
    b.out("dev", dev, 4)
    b.out("m", b.op("rolling_mean", b.op("column", src, name="close"), window=3), 4)
    after = b.op("rolling_mean", b.op("column", dev, name="x"), window=2)
    b.out("after", after, 2)
    p = plan(b.module())
    assert [s.op.result for s in p.steps if isinstance(s, PyStep)] == [dev]
    kernel_ops = {op.name: k.level for k in p.kernels for op in k.ops}
    assert kernel_ops["rolling_mean"] in (0, 1)
    assert any(op.result == after for k in p.kernels if k.level == 1 for op in k.ops)
    text = codegen.generate(b.module())
    assert f'rt.py_call("{dev}", n)' in text and "calls apply" in text


def test_build_cache_writes_once_per_module_and_reuses_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("QMTL_HOME", str(tmp_path))
    cache = importlib.import_module("qmtl.codegen.cache")
    monkeypatch.setattr(cache, "_LOADED", {})
    module = momentum(period=12)
    gen = codegen.load(module)
    path = codegen.module_path(module)
    assert path.parent == tmp_path / "build" / "gen" and path.exists()
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(cache, "_LOADED", {})  # as a new process would: file exists, import it again
    again = codegen.load(module)
    assert path.stat().st_mtime_ns == mtime  # not rewritten, so Numba's on-disk cache stays valid
    assert again.DIGEST == gen.DIGEST
    other = codegen.module_path(momentum(period=13))
    assert other != path  # a different period is a different warm-up gate: a different module
