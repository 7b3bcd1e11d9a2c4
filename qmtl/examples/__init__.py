"""Example strategies shipped with the package, so `qmtl demo` works outside a checkout.

`momentum.py` is a copy of the checkout's `examples/momentum.py` (a test keeps them identical).
"""
