"""``CacheView``: what a compute function reads at run time — each input's window of recent bars.

The runtime builds it as ``CacheView(windows)`` with ``windows[node_id][interval]`` a pandas
``DataFrame`` (bars, frames) or ``Series`` (series values).  Keys may be node objects (resolved through
``node.node_id``, stamped by the compiler), NodeID strings or node names (given ``names=``).

``align_frames`` aligns on timestamps: a ``ts`` column when the frame has one, else the index; the
aligned frames are indexed by those common timestamps, so ``pd.concat(..., axis=1)`` lines them up.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from .errors import MissingColumnsError
from .intervals import parse_interval

Window = pd.DataFrame | pd.Series


class FrameWrapper:
    """A window as a DataFrame plus a column check that fails with the names that are missing."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def validate_columns(self, columns: Sequence[str]) -> "FrameWrapper":
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise MissingColumnsError(missing, [str(c) for c in self.frame.columns])
        return self

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def __repr__(self) -> str:
        return f"FrameWrapper({len(self.frame)} rows × {list(self.frame.columns)})"


class NodeWindows(Mapping[int, Window]):
    """``view[node]``: one node's windows by interval (``60`` or ``"1m"``)."""

    def __init__(self, label: str, windows: Mapping[int, Window]):
        self._label, self._windows = label, windows

    def __getitem__(self, interval: int | str) -> Window:
        seconds = parse_interval(interval)
        if seconds not in self._windows:
            have = ", ".join(map(str, self._windows)) or "none"
            raise KeyError(f"no window for node {self._label} at interval {seconds}s (available: {have})")
        return self._windows[seconds]

    def __iter__(self) -> Iterator[int]:
        return iter(self._windows)

    def __len__(self) -> int:
        return len(self._windows)


class CacheView(Mapping[str, NodeWindows]):
    """Read-only windows of a node's inputs; iterating yields upstream NodeIDs."""

    def __init__(self, windows: dict[str, dict[int, Window]], names: Mapping[str, str] | None = None):
        self._windows = windows
        self._names = dict(names or {})

    def _resolve(self, key: Any) -> str:
        node_id = getattr(key, "node_id", None) if not isinstance(key, str) else key
        if node_id is None and not isinstance(key, str):
            node_id = self._names.get(getattr(key, "name", None) or "")
            if node_id is None:
                raise KeyError(f"node {getattr(key, 'name', key)!r} has no node_id (compile the strategy first)")
        if node_id in self._windows:
            return node_id
        if node_id in self._names and self._names[node_id] in self._windows:
            return self._names[node_id]
        known = ", ".join(sorted(self._names)) or ", ".join(self._windows) or "none"
        raise KeyError(f"{node_id!r} is not an input of this node (inputs: {known})")

    def __getitem__(self, key: Any) -> NodeWindows:
        node_id = self._resolve(key)
        return NodeWindows(repr(key if isinstance(key, str) else getattr(key, "name", node_id)),
                           self._windows[node_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows)

    def __len__(self) -> int:
        return len(self._windows)

    def __contains__(self, key: object) -> bool:
        try:
            self._resolve(key)
        except KeyError:
            return False
        return True

    def as_frame(self, node: Any, interval: int | str, columns: Sequence[str] | None = None) -> FrameWrapper:
        """The window as a DataFrame (a Series becomes one column); ``columns`` selects and checks."""
        window = self[node][interval]
        frame = window.to_frame() if isinstance(window, pd.Series) else window
        wrapper = FrameWrapper(frame)
        if columns is not None:
            wrapper.validate_columns(columns)
            wrapper = FrameWrapper(frame[list(columns)])
        return wrapper

    def align_frames(self, requests: Sequence[tuple[Any, int | str]], window: int | None = None) -> list[FrameWrapper]:
        """Frames of several inputs on their common timestamps (the last ``window`` of them)."""
        frames = [_indexed_by_ts(self.as_frame(node, interval).frame) for node, interval in requests]
        if not frames:
            return []
        common = frames[0].index
        for frame in frames[1:]:
            common = common.intersection(frame.index)
        common = common.sort_values()
        if window is not None:
            common = common[-window:] if window > 0 else common[:0]
        return [FrameWrapper(frame.loc[common]) for frame in frames]


def _indexed_by_ts(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.set_index("ts") if "ts" in frame.columns else frame
    return out[~out.index.duplicated(keep="last")]
