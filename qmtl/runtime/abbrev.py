"""Lists that stay readable when they are long: an error naming what is available must not print
500 symbols.  Shows the first ``limit`` items (sorted), then how many more, and — when a wanted name
was given — the available items closest to it, so a typo is still found at once."""

from __future__ import annotations

import difflib
from typing import Iterable

#: how many items an error message lists before it abbreviates
LIMIT = 20


def abbreviated(items: Iterable[object], wanted: Iterable[str] = (), limit: int = LIMIT) -> str:
    """``['A', 'B']`` when short; ``['A', …, 'T'] and 480 more (closest to 'btcusd': 'BTC-USD')``."""
    names = sorted({str(x) for x in items if x is not None})
    if len(names) <= limit:
        return repr(names)
    text = repr(names[:limit])[:-1] + f", …] and {len(names) - limit} more"
    folded = {n.casefold(): n for n in names}
    close: list[str] = []
    for w in wanted:
        for hit in difflib.get_close_matches(str(w).casefold(), list(folded), n=3, cutoff=0.6):
            if folded[hit] not in close:
                close.append(folded[hit])
    if close:
        text += " (closest to " + ", ".join(repr(str(w)) for w in wanted) + ": " + ", ".join(map(repr, close)) + ")"
    return text
