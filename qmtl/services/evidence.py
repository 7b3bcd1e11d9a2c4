"""Is this data evidence a decision may rest on?  One check, used by the world service (when it records
and when it resolves a decision) and by the gateway (when it routes a submission).

A decision is only as good as the data behind it, so both labels the runtime attaches to a replay are
checked for *form*, not just presence:

* ``as_of`` — the last bar's time, ISO 8601 with a timezone (``Runner`` writes ``...+00:00``).  It must
  parse, and must not lie in the future beyond ``MAX_AS_OF_SKEW_S`` (clocks differ a little; data from
  next year does not exist).
* ``dataset_fingerprint`` — ``blake3:`` and 64 lowercase hex digits, the form
  ``qmtl.runner.runner.dataset_fingerprint`` produces.  A blank or free-form label proves nothing.

Synthetic data (``Runner.submit`` without data replays seeded bars) is well-formed but is never evidence:
``synthetic_cap`` is the mode such a replay can reach at most.
"""

from __future__ import annotations

import re
from datetime import datetime

# fullmatch, never match with ``$``: ``$`` also matches before a trailing newline, which would let
# "blake3:<hex>\n" (not a form the runtime writes) pass as evidence.
FINGERPRINT_RE = re.compile(r"blake3:[0-9a-f]{64}")
#: How far past the reference time an ``as_of`` may lie before it is taken for a made-up date.
MAX_AS_OF_SKEW_S = 300.0
#: The best mode a decision over synthetic bars can reach: validate (backtest, orders gated).
SYNTHETIC_CAP = "validate"


def parse_as_of(as_of: str | None) -> float | None:
    """``as_of`` as epoch seconds, or None when it is missing, blank, unparsable or has no timezone."""
    if not isinstance(as_of, str) or not as_of.strip():
        return None
    try:
        when = datetime.fromisoformat(as_of.strip())
    except ValueError:
        return None
    if when.tzinfo is None or when.utcoffset() is None:
        return None
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def evidence_problem(as_of: str | None, fingerprint: str | None, now: float) -> str | None:
    """Why ``as_of``/``dataset_fingerprint`` cannot back a decision made at ``now``; None if they can.

    The message names the field and what is wrong with it, so it can go into a decision's reason.
    """
    if as_of is None or (isinstance(as_of, str) and not as_of.strip()):
        return "as_of is missing"
    when = parse_as_of(as_of)
    if when is None:
        return f"as_of {as_of[:64]!r} is not an ISO 8601 time with a timezone"
    if when > now + MAX_AS_OF_SKEW_S:
        return f"as_of {as_of[:64]!r} lies in the future (more than {MAX_AS_OF_SKEW_S:g}s ahead)"
    if fingerprint is None or (isinstance(fingerprint, str) and not fingerprint.strip()):
        return "dataset_fingerprint is missing"
    if not isinstance(fingerprint, str) or not FINGERPRINT_RE.fullmatch(fingerprint):
        return (f"dataset_fingerprint {str(fingerprint)[:80]!r} is not of the form the runtime produces "
                "('blake3:' and 64 hex digits)")
    return None
