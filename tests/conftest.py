"""Suite-wide test setup: hypothesis profiles, and the repository root on ``sys.path``.

Profiles (select with ``HYPOTHESIS_PROFILE``, default ``dev``): ``dev`` runs 50 examples per property,
``ci`` 100.  The machine is shared, so neither is larger; a test that needs fewer says so itself.

The root goes on ``sys.path`` so suites can share strategies as ``from tests.ir.gen import modules``
whatever directory pytest was started from.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile("dev", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
