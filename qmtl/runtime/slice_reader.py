"""One partition's timeline, read and built a stretch at a time, so memory follows the batch size and
not the length of an instrument's history.

A partition's sources are read as streams of record batches (``data.scan``: its own symbol for each
fanned-out source, the broadcast symbol for a single-stream one).  Chunk ``k`` holds the ticks whose
close time lies in ``[limit_k, limit_k+1)``; the limits are multiples of every source's interval, so
every bucket of raw bars (``binding.bucket``) falls whole into one chunk: source ``v`` contributes its
raw rows with ``ts < limit - I_v``.  Each chunk is put on the key's timeline by
``key_runtime.key_timeline``, and since that join is local in time (a union of close times, each
source padded at its own), the chunks laid end to end are exactly the timeline of the whole history.

Pieces (Parquet row groups, other files whole) are ordered by their ``ts`` statistics (``data.scan``),
so memory is bounded by the largest piece of one instrument plus a chunk.  When their order cannot be
told (overlapping ranges, no statistics), the partition reads its key whole instead
(``partitions.load_partition``) — before it has handed anything out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .binding import bucket
from .data import DataError, Stream, scan
from .key_runtime import KeyTimeline, key_timeline
from .partitions import PartitionPlan, empty_stream


class OutOfOrder(Exception):
    """A source's pieces cannot be put in time order from their statistics: the partition reads its
    key whole instead (raised before any of its chunks is handed out)."""


class _SourceReader:
    """One source's raw bars for one partition: pulled a record batch at a time, handed out bucketed
    up to a close limit, the rest (at most an incomplete stretch) held back."""

    def __init__(self, pieces: Iterator[Stream] | None, interval: int, symbol: str | None) -> None:
        self.pieces = pieces if pieces is not None else iter(())
        self.interval, self.symbol = interval, symbol
        self.held: dict[str, np.ndarray] | None = None
        self.last_ts: int | None = None
        self.done = False

    def first_close(self) -> int | None:
        """When this source's first bucket closes (None: it has no bars)."""
        self._fill(None)
        return self.next_close()

    def until(self, limit: int) -> Stream | None:
        """Bucketed bars whose bucket closes before ``limit`` (raw ``ts < limit - interval``); None
        when this source has no row left at all."""
        cut = limit - self.interval
        self._fill(cut)
        if self.held is None:
            return None
        n = int(np.searchsorted(self.held["ts"], cut, side="left"))
        taken = {c: a[:n] for c, a in self.held.items()}
        self.held = {c: a[n:] for c, a in self.held.items()}
        if not len(self.held["ts"]) and self.done:
            self.held = None if not n else self.held
        return bucket(Stream(taken, self.symbol, (self.symbol,) if self.symbol is not None else ()), self.interval)

    def next_close(self) -> int | None:
        """When the bucket of the first raw row not handed out yet closes (None: none held)."""
        if self.held is None or not len(self.held["ts"]):
            return None
        return int(self.held["ts"][0]) // self.interval * self.interval + self.interval

    def _fill(self, cut: int | None) -> None:
        """Read pieces until a row at or past ``cut`` is held (None: at least one row), or the end."""
        while not self.done and (self.held is None or not len(self.held["ts"])
                                 or (cut is not None and self.held["ts"][-1] < cut)):
            piece = next(self.pieces, None)
            if piece is None:
                self.done = True
                break
            ts = piece.ts
            if self.last_ts is not None and ts[0] <= self.last_ts:  # the statistics said otherwise
                raise DataError("E502", str(self.symbol), f"bars at ts={int(ts[0])} follow ts={self.last_ts} "
                                "across the data's files or row groups; bars must be strictly increasing in time")
            self.last_ts = int(ts[-1])
            cols = dict(piece.columns)
            self.held = cols if self.held is None else {c: np.concatenate([self.held[c], cols[c]]) for c in cols}


@dataclass(frozen=True)
class ChunkPosition:
    """Where a partition is (its recovery snapshot): ticks handed out, and the close time the next
    chunk starts at (None: from the beginning), or ``whole`` when it reads its key whole."""

    pos: int = 0
    limit: int | None = None
    whole: bool = False


def timeline_chunks(plan: PartitionPlan, key: Any, batch: int, start: ChunkPosition) -> Iterator[tuple[KeyTimeline, int]]:
    """Partition ``key``'s timeline in chunks of about ``batch`` ticks, from ``start``; each with the
    close time where the next one starts.  Raises ``OutOfOrder`` (before yielding anything out of
    order) when a source's files are not in time order."""
    slices = plan.slices[key]
    intervals = {v: s.interval for v, s in slices.items()}
    step = math.lcm(*intervals.values())
    width = max(step, -(-batch * min(intervals.values()) // step) * step)
    readers = {v: _SourceReader(None if s.empty else _pieces(plan, s.symbol, None if start.limit is None
                                                                else start.limit - s.interval),
                                s.interval, s.symbol)
               for v, s in slices.items()}
    limit = start.limit
    if limit is None:
        firsts = [c for c in (r.first_close() for r in readers.values()) if c is not None]
        if not firsts:
            return
        limit = (min(firsts) // step) * step  # no bucket closes before it
    while True:
        limit += width
        streams = {v: r.until(limit) for v, r in readers.items()}
        if all(s is None for s in streams.values()):
            return
        tl = key_timeline({v: s if s is not None else empty_stream(plan, v) for v, s in streams.items()}, intervals)
        if len(tl.close):
            yield tl, limit
            continue
        ahead = [c for c in (r.next_close() for r in readers.values()) if c is not None]
        if ahead:  # a gap (a weekend, a halt): jump to the stretch holding the next bar
            limit = max(limit, (min(ahead) // step) * step)


def _pieces(plan: PartitionPlan, symbol: str | None, since: int | None) -> Iterator[Stream]:
    pieces = scan(plan.location, plan.fields, symbol, since)
    if pieces is None:
        raise OutOfOrder()  # cannot be read in pieces: read whole
    return pieces

