"""Running a strategy end to end for a user: ``Runner.submit`` compiles it (``qmtl.compiler``), replays
it (``qmtl.runtime``), computes its metrics and asks the world (``qmtl.services``) what it may do.

It sits above the pipeline (sdk → compiler → ir → codegen → runtime → services) because it uses all
of it; nothing in the pipeline imports it.  ``qmtl.runtime.sdk.Runner`` is the same class, resolved on
first use so that declaring a strategy loads none of this.
"""

from .results import SubmitResult
from .runner import Runner, dataset_fingerprint

__all__ = ["Runner", "SubmitResult", "dataset_fingerprint"]
